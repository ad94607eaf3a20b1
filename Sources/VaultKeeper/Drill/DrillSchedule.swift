// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// When the daemon runs its next restore drill (issue #12). Pure: fed events with the wall time
/// they happened (seconds since the epoch, from the duty's clock), never reading a clock.
///
/// - A drill needs a snapshot newer than the one the last drill used: drilling the same file
///   twice proves nothing new.
/// - After a pass, the next drill is due `interval` after it.
/// - After a failure, the next try waits for a snapshot newer than the failed one and at least
///   `retryDelay` (an hour, or the interval when that is shorter): a broken drill must not run
///   back to back, and a new snapshot is what a retry should prove. `retryNow()` (a reload or a
///   restart: the runbook's fix after a rekey is new shares and `systemctl reload`, or `restart`
///   for an encrypted credential) lifts that wait once, so the fix is proven on the snapshot
///   that failed.
/// - Only the active node drills (its daemon takes the snapshots); a standby does nothing.
public struct DrillSchedule: Sendable, Equatable {
  public enum Decision: Sendable, Equatable {
    /// Drill this snapshot now.
    case drill(SnapshotMark)
    /// Nothing to do until `until` (nil: until a new snapshot is committed).
    case wait(until: Double?)
    /// Not this node's job.
    case standby
  }

  /// A committed snapshot: its file name and the time in the name.
  public struct SnapshotMark: Sendable, Equatable {
    public var file: String
    public var time: Double

    public init(file: String, time: Double) {
      self.file = file
      self.time = time
    }
  }

  public static let maxRetryDelay: Duration = .seconds(3600)

  public let interval: Duration
  public private(set) var ledger: DrillLedger
  /// The newest snapshot committed (nil until the snapshot duty reports one).
  public private(set) var newest: SnapshotMark?
  private var retryAtOnce = false

  public init(interval: Duration, ledger: DrillLedger) {
    self.interval = interval
    self.ledger = ledger
  }

  public var retryDelay: Duration { min(interval, Self.maxRetryDelay) }

  /// The snapshot duty committed `mark` (or reports it as its last good one at start-up).
  public mutating func snapshotCommitted(_ mark: SnapshotMark) {
    if let newest, newest.time > mark.time || newest == mark { return }
    newest = mark
  }

  /// A drill of `mark` finished at `now`; `failure` nil when it passed.
  public mutating func drillFinished(_ mark: SnapshotMark, at now: Double, duration: Duration, failure: DrillFailure?) {
    let run = DrillLedger.Run(
      time: now, file: mark.file, snapshotTime: mark.time, durationSeconds: duration.seconds, failure: failure.map(DrillLedger.Failure.init))
    ledger.lastRun = run
    if failure == nil { ledger.lastPassed = run }
    retryAtOnce = false
  }

  /// The next drill may use the snapshot the last one failed on, now (once).
  public mutating func retryNow() {
    if ledger.lastRun?.failure != nil { retryAtOnce = true }
  }

  /// The earliest time the next drill may start, whatever snapshots exist.
  public func earliest(now: Double) -> Double {
    guard let last = ledger.lastRun else { return ledger.trackingSince }
    // A drill recorded in the future (a clock that was ahead, a ledger edited by hand) is not
    // believed, passed or failed: due now, or it would hold every drill back until then.
    if RetentionPolicy.isFuture(Date(timeIntervalSince1970: last.time), now: Date(timeIntervalSince1970: now)) { return now }
    if last.failure != nil {
      return retryAtOnce ? last.time : last.time + retryDelay.seconds
    }
    return last.time + interval.seconds
  }

  public func decide(now: Double, active: Bool) -> Decision {
    guard active else { return .standby }
    let earliest = earliest(now: now)
    guard let newest else { return .wait(until: nil) }
    if let last = ledger.lastRun, newest.time <= last.snapshotTime {
      // Only a failed drill may be retried on the same snapshot, and only after a reload or restart.
      guard last.failure != nil, retryAtOnce, newest.time == last.snapshotTime else { return .wait(until: nil) }
    }
    return now >= earliest ? .drill(newest) : .wait(until: earliest)
  }
}
