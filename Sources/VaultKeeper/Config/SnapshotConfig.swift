// SPDX-License-Identifier: Apache-2.0
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
  /// Upper bound for one download, below its transfer deadline (none by default).
  public var maxDuration: Duration?
  /// Where the duty remembers its last good snapshot (nil: `SnapshotLedger.path` decides).
  public var stateFile: String?
  /// age encryption at rest; nil writes plain `.snap` files.
  public var encryption: SnapshotEncryption? = nil
  /// `[snapshot.s3]`: upload every verified snapshot to object storage too.
  public var s3: S3Config? = nil
  /// `transfer_timeout` and `transfer_min_rate`: the deadline of every download, upload and
  /// restore, from its size.
  public var transfers: TransferDeadline = .standard
  /// `[snapshot.drill]`: restore drills (nil when the table is absent).
  public var drill: SnapshotDrillConfig? = nil
}

/// `age_recipients` / `age_recipients_file`: snapshots are written as age v1 files (`.snap.age`)
/// that only the holders of the matching identities can read. Recipients are public keys; the
/// identities never need to be on this host.
public struct SnapshotEncryption: Sendable, Equatable {
  /// `age_recipients`, as written.
  public var listed: [AgeRecipient]
  /// `age_recipients_file`, read when the configuration is loaded (and on reload).
  public var recipientsFile: String?
  /// Everyone a snapshot is encrypted to: the listed ones, then the file's, each once.
  public var recipients: [AgeRecipient]

  public init(listed: [AgeRecipient], recipientsFile: String?, fileRecipients: [AgeRecipient]) {
    self.listed = listed
    self.recipientsFile = recipientsFile
    var all: [AgeRecipient] = []
    for recipient in listed + fileRecipients where !all.contains(recipient) { all.append(recipient) }
    recipients = all
  }
}

extension TableReaderKeys {
  static let snapshot = [
    "enabled", "directory", "interval", "daily_at", "randomized_delay", "keep_last", "keep_daily", "keep_weekly", "keep_monthly",
    "max_age", "min_free_space", "stale_after", "max_duration", "token_file", "token_credential", "role_id_file", "role_id_credential",
    "secret_id_file", "secret_id_credential", "approle_mount", "state_file", "age_recipients", "age_recipients_file", "s3",
    "transfer_timeout", "transfer_min_rate", "drill",
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
