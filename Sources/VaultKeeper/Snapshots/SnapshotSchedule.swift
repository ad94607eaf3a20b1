// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// When the next scheduled snapshot is due. Pure: the last good snapshot's time comes from the
/// state directory, `now` and the random factor are passed in.
///
/// - `interval` alone: due `interval` after the last good snapshot.
/// - `dailyAt` alone (UTC `HH:MM`): due at the first such time after the last good snapshot.
/// - both: whichever comes first.
/// - Never taken (or the due time already passed, e.g. after downtime): due now, plus the
///   random delay. One catch-up, never a burst: the next due time is computed from the new
///   last-good time, not from the missed slots.
public struct SnapshotSchedule: Sendable, Equatable {
  public struct TimeOfDay: Sendable, Equatable, CustomStringConvertible {
    public var hour: Int
    public var minute: Int

    public init?(_ text: String) {
      let parts = text.split(separator: ":", omittingEmptySubsequences: false)
      guard parts.count == 2, parts[0].count == 2, parts[1].count == 2, let h = Int(parts[0]), let m = Int(parts[1]),
        (0..<24).contains(h), (0..<60).contains(m)
      else { return nil }
      hour = h
      minute = m
    }

    public var description: String {
      (hour < 10 ? "0" : "") + "\(hour):" + (minute < 10 ? "0" : "") + "\(minute)"
    }

    /// Seconds after midnight UTC.
    var secondOfDay: Int { hour * 3600 + minute * 60 }
  }

  public var interval: Duration?
  public var dailyAt: TimeOfDay?
  /// Up to this much random delay is added to every due time (spreads several clusters'
  /// snapshots over time, like systemd's RandomizedDelaySec=).
  public var randomizedDelay: Duration

  public init(interval: Duration?, dailyAt: TimeOfDay?, randomizedDelay: Duration) {
    self.interval = interval
    self.dailyAt = dailyAt
    self.randomizedDelay = randomizedDelay
  }

  /// - Parameter random: a number in 0...1 choosing the random delay.
  public func nextDue(lastSuccess: Date?, now: Date, random: Double) -> Date {
    let delay = randomizedDelay.seconds * min(max(random, 0), 1)
    guard let last = lastSuccess, last <= now else { return now.addingTimeInterval(delay) }
    var candidates: [Date] = []
    if let interval { candidates.append(last.addingTimeInterval(interval.seconds)) }
    if let dailyAt { candidates.append(Self.nextOccurrence(of: dailyAt, after: last)) }
    guard let due = candidates.min() else { return .distantFuture }
    if due <= now { return now.addingTimeInterval(delay) }  // missed while we were down: catch up once
    return due.addingTimeInterval(delay)
  }

  /// The first UTC `HH:MM` strictly after `date`.
  static func nextOccurrence(of time: TimeOfDay, after date: Date) -> Date {
    let seconds = Int(date.timeIntervalSince1970.rounded(.down))
    let dayStart = seconds - ((seconds % 86400) + 86400) % 86400
    var candidate = dayStart + time.secondOfDay
    if Double(candidate) <= date.timeIntervalSince1970 { candidate += 86400 }
    return Date(timeIntervalSince1970: Double(candidate))
  }
}
