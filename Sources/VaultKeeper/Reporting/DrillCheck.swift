// SPDX-License-Identifier: Apache-2.0
/// The restore drill part of `vaultkeeper check`. Pure; `CheckVerdict.evaluate` folds it in.
///
/// CRITICAL: the last drill failed on the shares (a rekey or another cluster's snapshot: a real
/// recovery would stop at the unseal). WARNING: no drill passed within `stale_after` (counted
/// from when tracking began, before the first pass), or the last drill failed at another stage.
/// UNKNOWN: no drill state to be read. A standby is OK: the active node's vaultkeeper drills.
public enum DrillCheck {
  public struct Result: Sendable, Equatable {
    public var code: Int
    public var line: String
    /// For perfdata: the age of the last passed drill (nil when none), and the stale age.
    public var ageSeconds: Double?
    public var staleSeconds: Double
  }

  public enum Knowledge: Sendable, Equatable {
    case known(DrillDutyReport)
    case unreadable(String)
  }

  public static func evaluate(_ knowledge: Knowledge, localState: NodeState, now: Double, staleAfter: Duration) -> Result {
    let stale = staleAfter.seconds
    if case .standby = SnapshotPlan.role(localState: localState) {
      return Result(code: 0, line: "OK: restore drills are run by the active node (this node is \(localState.name))", staleSeconds: stale)
    }
    guard case .known(let report) = knowledge else {
      if case .unreadable(let why) = knowledge { return Result(code: 3, line: "UNKNOWN: restore drill: \(why)", staleSeconds: stale) }
      return Result(code: 3, line: "UNKNOWN: restore drill", staleSeconds: stale)
    }
    func ago(_ time: Double) -> String { DurationParsing.humanize(.seconds(max(now - time, 0))) }
    let age = report.lastPassed.map { max(now - $0, 0) }
    let passed = report.lastPassed.map { "last passed \(ago($0)) ago" } ?? "none passed yet"
    if report.lastResult == .failed {
      let stage = report.lastFailureStage?.rawValue ?? "unknown stage"
      let why = report.lastFailureMessage.map { ": \($0)" } ?? ""
      let when = report.lastRun.map { " \(ago($0)) ago" } ?? ""
      if report.lastFailureAboutShares == true {
        return Result(
          code: 2, line: "CRITICAL: restore drill failed on the shares\(when)\(why); a restore would stay sealed (\(passed))", ageSeconds: age,
          staleSeconds: stale)
      }
      return Result(code: 1, line: "WARNING: restore drill failed at \(stage)\(when)\(why) (\(passed))", ageSeconds: age, staleSeconds: stale)
    }
    let reference = report.lastPassed ?? report.trackingSince
    if now - reference > stale {
      let text = report.lastPassed == nil ? "no restore drill passed in \(ago(reference)) of tracking" : "restore drill \(passed)"
      return Result(code: 1, line: "WARNING: \(text) (stale after \(DurationParsing.humanize(staleAfter)))", ageSeconds: age, staleSeconds: stale)
    }
    return Result(code: 0, line: "OK: restore drill \(passed)", ageSeconds: age, staleSeconds: stale)
  }
}
