// SPDX-License-Identifier: Apache-2.0
/// What the snapshot duty reports: rendered into STATUS, the state file and metrics next to the
/// nodes (`DaemonReport.snapshot`).
public struct SnapshotReport: Sendable, Equatable, Codable {
  public var phase: SnapshotPhase
  public var waitingFor: String?
  public var lastSuccess: Double?
  public var lastFile: String?
  public var lastRaftIndex: UInt64?
  public var lastBytes: Int64?
  public var lastDurationSeconds: Double?
  public var lastFailure: Double?
  public var lastFailureReason: String?
  public var consecutiveFailures: Int
  /// Failures since start, by `SnapshotError.Reason`.
  public var failures: [String: Int]
  public var nextDue: Double?
  public var stale: Bool
  public var staleAfterSeconds: Double
  public var retentionDeleted: Int
  public var lastUpload: Double?
  public var uploadFailures: Int
  /// The last failed upload, and why (cleared as a problem by a later `lastUpload`).
  public var lastUploadFailure: Double?
  public var lastUploadFailureReason: String?
  /// Since when the duty has been waiting for its first good snapshot (the ledger's).
  public var trackingSince: Double?
  /// Snapshot names dated in the future seen by the last look at the directory and the bucket
  /// (a clock that was ahead, or a forgery): never counted, never deleted, reported.
  public var futureDated: Int?
  /// Whether an upload to object storage is under way (uploads run beside the schedule).
  public var uploading: Bool?

  public init(phase: SnapshotPhase, staleAfterSeconds: Double) {
    self.phase = phase
    self.consecutiveFailures = 0
    self.failures = [:]
    self.stale = false
    self.staleAfterSeconds = staleAfterSeconds
    self.retentionDeleted = 0
    self.uploadFailures = 0
  }

  enum CodingKeys: String, CodingKey {
    case phase, stale, failures
    case waitingFor = "waiting_for"
    case lastSuccess = "last_success"
    case lastFile = "last_file"
    case lastRaftIndex = "last_raft_index"
    case lastBytes = "last_bytes"
    case lastDurationSeconds = "last_duration_seconds"
    case lastFailure = "last_failure"
    case lastFailureReason = "last_failure_reason"
    case consecutiveFailures = "consecutive_failures"
    case nextDue = "next_due"
    case staleAfterSeconds = "stale_after_seconds"
    case retentionDeleted = "retention_deleted"
    case lastUpload = "last_upload"
    case uploadFailures = "upload_failures"
    case lastUploadFailure = "last_upload_failure"
    case lastUploadFailureReason = "last_upload_failure_reason"
    case trackingSince = "tracking_since"
    case futureDated = "future_dated"
    case uploading
  }

  /// The STATUS fragment, e.g. `snapshot 23m ago`, `snapshot running`,
  /// `backups STALE: last snapshot 26h ago`. Nil on a standby (not its job).
  public func statusFragment(now: Double) -> String? {
    func ago(_ time: Double) -> String { DurationParsing.humanize(.seconds(max(now - time, 0))) + " ago" }
    if phase == .standby { return nil }
    if stale {
      return "backups STALE: " + (lastSuccess.map { "last snapshot \(ago($0))" } ?? "no snapshot yet")
    }
    if phase == .running { return "snapshot running" }
    var text = lastSuccess.map { "snapshot \(ago($0))" } ?? "no snapshot yet"
    if consecutiveFailures > 0, let reason = lastFailureReason { text += " (last attempt failed: \(reason))" }
    return text
  }
}

/// Where the snapshot duty is, as written to the state file.
public enum SnapshotPhase: String, Sendable, Equatable, Codable {
  /// Waiting for the next due time.
  case idle
  case running
  /// A standby: the active node's vaultkeeper takes the snapshots.
  case standby
  /// No snapshot possible now (vault sealed, unreachable, …; see `waitingFor`).
  case waiting
}
