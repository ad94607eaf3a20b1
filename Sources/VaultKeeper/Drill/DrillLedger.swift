// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// What the scheduled restore drill must remember across restarts, next to the snapshot ledger
/// in the state directory (`drill-state.json`): the last passed drill (the next is due an
/// `interval` after it), the last finished one (which snapshot it used, and why it failed), and
/// since when drills have been tracked (the reference for "stale" before the first pass).
public struct DrillLedger: DurableLedger, Equatable, Codable {
  /// One finished drill.
  public struct Run: Sendable, Equatable, Codable {
    /// When it finished (wall clock, seconds since the epoch).
    public var time: Double
    /// The snapshot's file name and the time in that name (which snapshot it proved).
    public var file: String
    public var snapshotTime: Double
    public var durationSeconds: Double
    /// nil when it passed.
    public var failure: Failure?

    public init(time: Double, file: String, snapshotTime: Double, durationSeconds: Double, failure: Failure? = nil) {
      self.time = time
      self.file = file
      self.snapshotTime = snapshotTime
      self.durationSeconds = durationSeconds
      self.failure = failure
    }

    enum CodingKeys: String, CodingKey {
      case time, file, failure
      case snapshotTime = "snapshot_time"
      case durationSeconds = "duration_seconds"
    }
  }

  public struct Failure: Sendable, Equatable, Codable {
    public var stage: DrillStage
    /// `DrillFailureReason.name`.
    public var reason: String
    public var message: String
    /// The shares we hold do not open the snapshot: a real recovery would fail the same way.
    public var aboutShares: Bool

    public init(_ failure: DrillFailure) {
      stage = failure.stage
      reason = failure.reason.name
      message = failure.reason.message
      aboutShares = failure.reason.isAboutShares
    }

    enum CodingKeys: String, CodingKey {
      case stage, reason, message
      case aboutShares = "about_shares"
    }
  }

  public var lastPassed: Run?
  public var lastRun: Run?
  public var trackingSince: Double

  public init(lastPassed: Run? = nil, lastRun: Run? = nil, trackingSince: Double) {
    self.lastPassed = lastPassed
    self.lastRun = lastRun
    self.trackingSince = trackingSince
  }

  enum CodingKeys: String, CodingKey {
    case lastPassed = "last_passed"
    case lastRun = "last_run"
    case trackingSince = "tracking_since"
  }

  public static let fileName = "drill-state.json"

  /// Next to the snapshot ledger (`SnapshotLedger.path`): the same state directory, so the
  /// daemon, `vaultkeeper check` and `snapshot drill` agree on it.
  public static func path(snapshotLedgerPath: String) -> String {
    "\(directory(of: snapshotLedgerPath))/\(fileName)"
  }

  /// The state directory of a snapshot ledger path (where drills also make their workspace).
  public static func directory(of snapshotLedgerPath: String) -> String {
    let parent = snapshotLedgerPath.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
    return parent.isEmpty ? "/" : parent
  }

  /// nil when the file is missing or unreadable (the caller starts a new ledger).
  public static func load(path: String) -> DrillLedger? {
    guard let bytes = try? FileAccess.readBytes(path: path, limit: 1 << 16) else { return nil }
    return try? JSONDecoder().decode(DrillLedger.self, from: Data(bytes))
  }

  /// Atomic and durable (fsync of file and directory), 0600, like the snapshot ledger.
  public func save(path: String) throws(FileAccess.Failure) {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    guard let data = try? encoder.encode(self) else { throw FileAccess.Failure(errno: EINVAL, operation: "encode the drill state") }
    try FileAccess.writeAtomically(path: path, bytes: Array(data) + [0x0A], mode: 0o600, durable: true)
  }
}

/// Written out by its raw value (`unseal`, `verify`, …), like the metric label.
extension DrillStage: Codable {}
