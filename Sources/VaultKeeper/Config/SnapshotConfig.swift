/// `[snapshot]`: scheduled Raft snapshots (issue #4). Parsed and validated with the rest of the
/// configuration; the scheduled duty uses it, and so does `vaultkeeper snapshot now`.
public struct SnapshotConfig: Sendable, Equatable {
  public enum Credential: Sendable, Equatable {
    case file(String)
    /// A file in `$CREDENTIALS_DIRECTORY`.
    case credential(String)
  }

  public enum Auth: Sendable, Equatable {
    /// A static token (Vault token with read on sys/storage/raft/snapshot).
    case token(Credential)
    /// AppRole login; the token is renewed before expiry and re-obtained when it cannot be.
    case appRole(roleID: Credential, secretID: Credential, mount: String)
  }

  public var enabled: Bool
  public var directory: String
  public var auth: Auth
  public var schedule: SnapshotSchedule
  public var retention: RetentionPolicy
  /// Skip the snapshot (and alert) rather than let the filesystem drop below this.
  public var minFreeBytes: Int64
  /// Alert when the newest good snapshot is older than this.
  public var staleAfter: Duration
  /// Upper bound for one download (none by default: stalls are caught by the low-speed limit).
  public var maxDuration: Duration?
  /// `[snapshot.s3]`: upload every verified snapshot to object storage too.
  public var s3: S3Config? = nil
}

extension TableReaderKeys {
  static let snapshot = [
    "enabled", "directory", "interval", "daily_at", "randomized_delay", "keep_last", "keep_daily", "keep_weekly", "keep_monthly",
    "max_age", "min_free_space", "stale_after", "max_duration", "token_file", "token_credential", "role_id_file", "role_id_credential",
    "secret_id_file", "secret_id_credential", "approle_mount", "s3",
  ]
}

/// Names of keys per table, kept next to the parsers that read them.
enum TableReaderKeys {}

/// Parses sizes such as `"512MiB"`, `"2GiB"`, `"1GB"`, `"0"` into bytes.
public enum SizeParsing {
  public static func parse(_ text: String) -> Int64? {
    let trimmed = text.trimmingWhitespace()
    let digits = trimmed.prefix { $0.isNumber || $0 == "." }
    guard !digits.isEmpty, let value = Double(digits), value >= 0 else { return nil }
    let unit = trimmed.dropFirst(digits.count).trimmingWhitespace()
    let factors: [String: Double] = [
      "": 1, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "KiB": 1024, "MiB": 1_048_576, "GiB": 1_073_741_824,
      "TiB": 1_099_511_627_776,
    ]
    guard let factor = factors[unit] else { return nil }
    let bytes = value * factor
    guard bytes.isFinite, bytes < 9e18 else { return nil }
    return Int64(bytes)
  }
}
