// SPDX-License-Identifier: Apache-2.0

#if canImport(Glibc)
import Glibc
#endif

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `[snapshot.drill]`: restore drills, which prove that a snapshot restores into a real server
/// and that the unseal key shares vaultkeeper holds still open it.
public struct SnapshotDrillConfig: Sendable, Equatable {
  /// Scheduled drills (the daemon's); `vaultkeeper snapshot drill` runs whatever this says.
  public var enabled: Bool
  /// How long after the last passed drill the next one is due.
  public var interval: Duration
  /// The Vault or OpenBao server binary as configured; nil: the one the Vault unit's `ExecStart`
  /// runs, else `bao`, then `vault`, on PATH (`DrillBinary.resolve`).
  public var binary: String?
  /// The whole drill, start to cleanup; the server's process group is killed when it runs out.
  public var timeout: Duration
  /// Alert when the last passed drill is older than this.
  public var staleAfter: Duration

  public static let defaultInterval: Duration = .seconds(7 * 86400)
  public static let defaultTimeout: Duration = .seconds(600)

  public init(enabled: Bool = true, interval: Duration = defaultInterval, binary: String? = nil, timeout: Duration = defaultTimeout,
    staleAfter: Duration? = nil)
  {
    self.enabled = enabled
    self.interval = interval
    self.binary = binary
    self.timeout = timeout
    // Two missed drills before the alert: one failed run or a busy week is no emergency.
    self.staleAfter = staleAfter ?? interval * 2 + timeout
  }
}

extension TableReaderKeys {
  static let snapshotDrill = ["enabled", "interval", "binary", "timeout", "stale_after"]
}

extension TableReader {
  /// Parses `[snapshot.drill]`; nil when the table is absent.
  func snapshotDrill(_ table: TOMLTable?) throws(ConfigError) -> SnapshotDrillConfig? {
    guard let table else { return nil }
    let at = "snapshot.drill"
    try allowOnly(table, keys: TableReaderKeys.snapshotDrill, at: at)
    var binary: String?
    if let path = try string(table, "binary", at: at) {
      guard path.hasPrefix("/") else { throw error("snapshot.drill.binary", "must be an absolute path, got \"\(path)\"") }
      switch FileAccess.kind(path: path) {
      case .regular:
        guard access(path, X_OK) == 0 else { throw error("snapshot.drill.binary", "\(path) is not executable") }
      case .missing: throw error("snapshot.drill.binary", "\(path) does not exist")
      case .other: throw error("snapshot.drill.binary", "\(path) is not a regular file")
      case .inaccessible(let reason): throw error("snapshot.drill.binary", "cannot access \(path): \(reason)")
      }
      binary = path
    }
    // Below an hour only tests want it, like [snapshot] interval.
    let interval = try duration(table, "interval", at: at, minimum: .seconds(1)) ?? SnapshotDrillConfig.defaultInterval
    let timeout = try duration(table, "timeout", at: at, minimum: .seconds(1)) ?? SnapshotDrillConfig.defaultTimeout
    let staleAfter = try duration(table, "stale_after", at: at, minimum: .seconds(1))
    if let staleAfter, staleAfter <= interval {
      throw error("snapshot.drill.stale_after", "must be longer than interval (\(DurationParsing.format(interval))): otherwise every drill alerts before the next is due")
    }
    return SnapshotDrillConfig(
      enabled: try bool(table, "enabled", at: at) ?? true, interval: interval, binary: binary, timeout: timeout, staleAfter: staleAfter)
  }
}
