#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// What the snapshot duty must remember across restarts, persisted in the state directory
/// (`$STATE_DIRECTORY/snapshot-state.json`, or `[snapshot] state_file`): the last good snapshot,
/// so a restart neither retakes one early nor forgets a missed one (catch-up), and since when
/// the duty has been waiting for its first one (the reference for "stale" when none exists).
public struct SnapshotLedger: Sendable, Equatable, Codable {
  public struct Success: Sendable, Equatable, Codable {
    public var time: Double
    public var file: String
    public var raftIndex: UInt64
    public var bytes: Int64
    public var durationSeconds: Double

    enum CodingKeys: String, CodingKey {
      case time, file, bytes
      case raftIndex = "raft_index"
      case durationSeconds = "duration_seconds"
    }
  }

  public struct Failure: Sendable, Equatable, Codable {
    public var time: Double
    public var reason: String
    public var message: String
  }

  public var lastSuccess: Success?
  public var lastFailure: Failure?
  public var trackingSince: Double

  enum CodingKeys: String, CodingKey {
    case lastSuccess = "last_success"
    case lastFailure = "last_failure"
    case trackingSince = "tracking_since"
  }

  public init(lastSuccess: Success? = nil, lastFailure: Failure? = nil, trackingSince: Double) {
    self.lastSuccess = lastSuccess
    self.lastFailure = lastFailure
    self.trackingSince = trackingSince
  }

  /// The ledger's file: `[snapshot] state_file`, else `$STATE_DIRECTORY` (set by systemd's
  /// `StateDirectory=`), else the unit's default state directory when it exists, else a hidden
  /// file next to the snapshots. `vaultkeeper check` resolves it the same way.
  public static func path(config: SnapshotConfig, environment: [String: String]) -> String {
    if let file = config.stateFile { return file }
    if let state = environment["STATE_DIRECTORY"]?.split(separator: ":").first, !state.isEmpty { return "\(state)/snapshot-state.json" }
    if FileAccess.isDirectory(path: "/var/lib/vaultkeeper") { return "/var/lib/vaultkeeper/snapshot-state.json" }
    return "\(config.directory)/.vaultkeeper-snapshot-state.json"
  }

  /// nil when the file is missing or unreadable (the caller starts a new ledger).
  public static func load(path: String) -> SnapshotLedger? {
    guard let bytes = try? FileAccess.readBytes(path: path, limit: 1 << 16) else { return nil }
    return try? JSONDecoder().decode(SnapshotLedger.self, from: Data(bytes))
  }

  public func save(path: String) throws(FileAccess.Failure) {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    guard let data = try? encoder.encode(self) else { throw FileAccess.Failure(errno: EINVAL, operation: "encode the snapshot state") }
    try FileAccess.writeAtomically(path: path, bytes: Array(data) + [0x0A], mode: 0o600, durable: true)
  }

  /// The last good snapshot's time: the ledger's, or the newest snapshot in the directory when
  /// that is newer (taken by `vaultkeeper snapshot now`, or the ledger was lost). Every file we
  /// name was verified before it got its name.
  public func lastSuccessTime(newestInDirectory: Date?) -> Date? {
    let recorded = lastSuccess.map { Date(timeIntervalSince1970: $0.time) }
    switch (recorded, newestInDirectory) {
    case (let a?, let b?): return max(a, b)
    case (let a?, nil): return a
    case (nil, let b?): return b
    case (nil, nil): return nil
    }
  }
}
