// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The snapshot part of `vaultkeeper check`: how old the last good snapshot is against the
/// warning and critical ages. Pure; `CheckVerdict.evaluate` folds it into the verdict.
public enum SnapshotCheck {
  public struct Result: Sendable, Equatable {
    public var code: Int
    public var line: String
    /// For perfdata: the age in seconds, with the thresholds (nil when not judged).
    public var ageSeconds: Double?
    public var warnSeconds: Double
    public var critSeconds: Double
  }

  public enum Knowledge: Sendable, Equatable {
    /// The last good snapshot's time (nil: none), and since when the duty has been waiting
    /// for one (nil: unknown).
    case known(lastSuccess: Date?, trackingSince: Date?)
    /// Neither the state file nor the directory could be read.
    case unreadable(String)
  }

  public static func evaluate(_ knowledge: Knowledge, localState: NodeState, now: Date, warnAfter: Duration, critAfter: Duration) -> Result {
    let warn = warnAfter.seconds
    let crit = critAfter.seconds
    if case .standby = SnapshotPlan.role(localState: localState) {
      return Result(code: 0, line: "OK: snapshots are taken by the active node (this node is \(localState.name))", warnSeconds: warn, critSeconds: crit)
    }
    switch knowledge {
    case .unreadable(let why):
      return Result(code: 3, line: "UNKNOWN: snapshots: \(why)", warnSeconds: warn, critSeconds: crit)
    case .known(let last?, _):
      let age = max(now.timeIntervalSince(last), 0)
      let code = age > crit ? 2 : (age > warn ? 1 : 0)
      let text = "last good snapshot \(DurationParsing.humanize(.seconds(age))) old"
      let limit = code == 2 ? " (critical after \(DurationParsing.format(critAfter)))" : (code == 1 ? " (warning after \(DurationParsing.format(warnAfter)))" : "")
      return Result(code: code, line: "\(CheckVerdict.words[code]): snapshots: \(text)\(limit)", ageSeconds: age, warnSeconds: warn, critSeconds: crit)
    case .known(nil, let since):
      // A new installation is given the warning age to take its first snapshot.
      let waited = since.map { max(now.timeIntervalSince($0), 0) }
      let code = waited.map { $0 > crit ? 2 : ($0 > warn ? 1 : 0) } ?? 2
      let text = waited.map { "no good snapshot yet (waiting for \(DurationParsing.humanize(.seconds($0))))" } ?? "no good snapshot found"
      return Result(code: code, line: "\(CheckVerdict.words[code]): snapshots: \(text)", warnSeconds: warn, critSeconds: crit)
    }
  }
}
