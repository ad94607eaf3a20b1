// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Which snapshots to keep, in the manner of restic/borg `forget`: a snapshot survives if any
/// rule keeps it. Pure and table-tested.
///
/// - `keepLast` N: the N newest.
/// - `keepDaily`/`keepWeekly`/`keepMonthly` N: the newest snapshot of each of the N most recent
///   UTC days / ISO weeks / months that have one.
/// - `maxAge`: anything older goes, whatever the rules above say.
/// - With no keep rule at all, everything younger than `maxAge` is kept.
/// - Whatever the policy says, the newest *verified* snapshot is never deleted: a policy typo
///   must not be able to remove the last good backup. Nor is a name in `protecting` (the
///   snapshot just written or uploaded).
/// - A name dated later than `now + futureSkew` is not believed: it counts for no rule (so it
///   can never push real snapshots out of `keepLast` or be "the newest"), and it is never
///   deleted either; it comes back in `Decision.future` so the caller reports it. Such names
///   come from a clock that was ahead, or from someone else who may write to the directory
///   or bucket.
public struct RetentionPolicy: Sendable, Equatable {
  public var keepLast: Int?
  public var keepDaily: Int?
  public var keepWeekly: Int?
  public var keepMonthly: Int?
  public var maxAge: Duration?

  public init(keepLast: Int? = nil, keepDaily: Int? = nil, keepWeekly: Int? = nil, keepMonthly: Int? = nil, maxAge: Duration? = nil) {
    self.keepLast = keepLast
    self.keepDaily = keepDaily
    self.keepWeekly = keepWeekly
    self.keepMonthly = keepMonthly
    self.maxAge = maxAge
  }

  public struct Item: Sendable, Equatable {
    public var name: String
    public var time: Date
    public var verified: Bool

    public init(name: String, time: Date, verified: Bool) {
      self.name = name
      self.time = time
      self.verified = verified
    }
  }

  public struct Decision: Sendable, Equatable {
    public var keep: [String]
    /// Names to delete, with the reason (for the journal entry).
    public var delete: [(name: String, reason: String)]
    /// Names dated later than `now + futureSkew`: neither counted nor deleted; to be reported.
    public var future: [String] = []

    public static func == (a: Decision, b: Decision) -> Bool {
      a.keep == b.keep && a.delete.map(\.name) == b.delete.map(\.name) && a.delete.map(\.reason) == b.delete.map(\.reason)
        && a.future == b.future
    }
  }

  /// How far a name may be dated after `now` and still be believed: clocks of the hosts that
  /// write and judge differ a little (NTP keeps them well within this).
  public static let futureSkew = Duration.seconds(300)

  /// Whether `time` is later than `now` plus the tolerated skew.
  public static func isFuture(_ time: Date, now: Date) -> Bool {
    time.timeIntervalSince(now) > futureSkew.seconds
  }

  var hasKeepRule: Bool { keepLast != nil || keepDaily != nil || keepWeekly != nil || keepMonthly != nil }

  public func apply(to items: [Item], now: Date) -> Decision {
    apply(to: items, now: now, protecting: [])
  }

  /// - Parameter protecting: names kept whatever the policy says (the snapshot just written).
  public func apply(to items: [Item], now: Date, protecting: Set<String>) -> Decision {
    let future = items.filter { Self.isFuture($0.time, now: now) }
    let sorted = items.filter { !Self.isFuture($0.time, now: now) }
      .sorted { $0.time != $1.time ? $0.time > $1.time : $0.name > $1.name }  // newest first
    var kept = Set<String>()
    if let n = keepLast { for item in sorted.prefix(max(n, 0)) { kept.insert(item.name) } }
    func keepNewestPer(_ count: Int?, bucket: (Date) -> String) {
      guard let count, count > 0 else { return }
      var seen: [String] = []
      for item in sorted {
        let key = bucket(item.time)
        if seen.contains(key) { continue }
        seen.append(key)
        kept.insert(item.name)
        if seen.count == count { break }
      }
    }
    keepNewestPer(keepDaily) { Self.utc.string(from: $0, format: .day) }
    keepNewestPer(keepWeekly) { Self.utc.string(from: $0, format: .isoWeek) }
    keepNewestPer(keepMonthly) { Self.utc.string(from: $0, format: .month) }
    if !hasKeepRule { for item in sorted { kept.insert(item.name) } }

    let newestVerified = sorted.first { $0.verified }?.name
    var decision = Decision(keep: [], delete: [], future: future.sorted { $0.time != $1.time ? $0.time > $1.time : $0.name > $1.name }.map(\.name))
    for item in sorted {
      let tooOld = maxAge.map { now.timeIntervalSince(item.time) > $0.seconds } ?? false
      if item.name == newestVerified || protecting.contains(item.name) {
        decision.keep.append(item.name)
      } else if tooOld {
        decision.delete.append((item.name, "older than max_age \(DurationParsing.format(maxAge ?? .zero))"))
      } else if kept.contains(item.name) {
        decision.keep.append(item.name)
      } else {
        decision.delete.append((item.name, "not kept by any keep_* rule"))
      }
    }
    return decision
  }

  /// UTC calendar buckets, computed with plain arithmetic (no locale, no ICU calendar).
  static let utc = UTCBuckets()

  struct UTCBuckets: Sendable {
    enum Format { case day, isoWeek, month }

    func string(from date: Date, format: Format) -> String {
      let seconds = Int64(date.timeIntervalSince1970.rounded(.down))
      let days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400
      switch format {
      case .day:
        return "d\(days)"
      case .month:
        let (y, m, _) = SnapshotName.civil(fromDays: days)
        return "\(y)-\(m)"
      case .isoWeek:
        // ISO 8601: weeks start on Monday and belong to the year of their Thursday.
        let weekday = ((days % 7) + 7 + 3) % 7  // 0 = Monday (1970-01-01 was a Thursday)
        let thursday = days - weekday + 3
        let (year, _, _) = SnapshotName.civil(fromDays: thursday)
        let week = (thursday - SnapshotName.daysFromCivil(year, 1, 1)) / 7 + 1
        return "\(year)-W\(week)"
      }
    }
  }
}
