// SPDX-License-Identifier: Apache-2.0
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
public struct SnapshotLedger: DurableLedger, Equatable, Codable {
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

  /// The recorded last good snapshot's time, unless it is dated later than `now` (plus the
  /// tolerated skew): then the clock was ahead when it was written, and when the snapshot
  /// really happened is unknown. Staleness and the schedule go by this, never by file names.
  public func believedLastSuccess(now: Date) -> Date? {
    guard let recorded = lastSuccess.map({ Date(timeIntervalSince1970: $0.time) }), !RetentionPolicy.isFuture(recorded, now: now) else { return nil }
    return recorded
  }

  /// Whether the recorded last success is dated in the future (to be reported; not believed).
  public func recordsFutureSuccess(now: Date) -> Bool {
    lastSuccess.map { RetentionPolicy.isFuture(Date(timeIntervalSince1970: $0.time), now: now) } ?? false
  }

  /// Since when the duty has been waiting for its first snapshot; a time in the future (a clock
  /// that was ahead) is taken as `now`, so it cannot put off the stale alert.
  public func believedTrackingSince(now: Date) -> Date {
    let since = Date(timeIntervalSince1970: trackingSince)
    return since > now ? now : since
  }

  /// The newer of the ledger's time and the newest snapshot name in the directory. No longer
  /// used to judge staleness (names are not evidence: a clock that was ahead, or anyone who may
  /// write the directory, can put any time in one); kept for callers that only display it.
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
