// SPDX-License-Identifier: Apache-2.0
/// What the scheduled restore drill reports (`DaemonReport.drill`): rendered into STATUS, the
/// state file and metrics, and read back by `vaultkeeper check`.
public struct DrillDutyReport: Sendable, Equatable, Codable {
  public var phase: DrillPhase
  /// The last passed drill: when it finished, and the snapshot it proved.
  public var lastPassed: Double?
  public var lastPassedFile: String?
  /// The last finished drill, passed or failed.
  public var lastResult: DrillResult?
  public var lastRun: Double?
  public var lastFile: String?
  public var lastDurationSeconds: Double?
  /// The last drill's failure, when it failed.
  public var lastFailureStage: DrillStage?
  public var lastFailureReason: String?
  public var lastFailureMessage: String?
  public var lastFailureAboutShares: Bool?
  /// Failed drills since vaultkeeper started, by stage (`DrillStage` raw values).
  public var failures: [String: Int]
  /// The earliest time the next drill may start (it also waits for a new snapshot).
  public var nextDue: Double?
  /// Since when drills have been tracked (the reference for "stale" before the first pass).
  public var trackingSince: Double
  public var staleAfterSeconds: Double
  /// `isStale` as the duty last judged it (for the metric; STATUS and `check` judge it afresh).
  public var stale: Bool

  public init(phase: DrillPhase, trackingSince: Double, staleAfterSeconds: Double) {
    self.phase = phase
    self.failures = [:]
    self.trackingSince = trackingSince
    self.staleAfterSeconds = staleAfterSeconds
    self.stale = false
  }

  enum CodingKeys: String, CodingKey {
    case phase, failures, stale
    case lastPassed = "last_passed"
    case lastPassedFile = "last_passed_file"
    case lastResult = "last_result"
    case lastRun = "last_run"
    case lastFile = "last_file"
    case lastDurationSeconds = "last_duration_seconds"
    case lastFailureStage = "last_failure_stage"
    case lastFailureReason = "last_failure_reason"
    case lastFailureMessage = "last_failure_message"
    case lastFailureAboutShares = "last_failure_about_shares"
    case nextDue = "next_due"
    case trackingSince = "tracking_since"
    case staleAfterSeconds = "stale_after_seconds"
  }

  /// What the drill ledger records, as the report shows it (the daemon at start and after each
  /// drill; `vaultkeeper check` when no daemon report is at hand).
  public mutating func apply(_ ledger: DrillLedger) {
    trackingSince = ledger.trackingSince
    lastPassed = ledger.lastPassed?.time
    lastPassedFile = ledger.lastPassed?.file
    guard let last = ledger.lastRun else { return }
    lastRun = last.time
    lastFile = last.file
    lastDurationSeconds = last.durationSeconds
    lastResult = last.failure == nil ? .passed : .failed
    lastFailureStage = last.failure?.stage
    lastFailureReason = last.failure?.reason
    lastFailureMessage = last.failure?.message
    lastFailureAboutShares = last.failure?.aboutShares
  }

  /// Whether no drill passed within `stale_after` (counted from tracking's start without one).
  public func isStale(now: Double) -> Bool {
    now - (lastPassed ?? trackingSince) > staleAfterSeconds
  }

  /// The STATUS fragment: `restore drill ok 2d ago`, `restore drill FAILED (shares)`,
  /// `restore drill running`, `restore drill STALE: last passed 15d ago`. Nil on a standby.
  public func statusFragment(now: Double) -> String? {
    if phase == .standby { return nil }
    if phase == .running { return "restore drill running" }
    if lastResult == .failed {
      let what = lastFailureAboutShares == true ? "shares" : (lastFailureStage?.rawValue ?? "see the journal")
      return "restore drill FAILED (\(what))"
    }
    func ago(_ time: Double) -> String { DurationParsing.humanize(.seconds(max(now - time, 0))) + " ago" }
    if isStale(now: now) {
      return "restore drill STALE: " + (lastPassed.map { "last passed \(ago($0))" } ?? "none passed yet")
    }
    return lastPassed.map { "restore drill ok \(ago($0))" } ?? "no restore drill yet"
  }
}

public enum DrillPhase: String, Sendable, Equatable, Codable {
  /// Waiting until the next drill is due and a new snapshot exists.
  case idle
  case running
  /// A standby: the active node's vaultkeeper drills the snapshots it takes.
  case standby
}

public enum DrillResult: String, Sendable, Equatable, Codable {
  case passed
  case failed
}
