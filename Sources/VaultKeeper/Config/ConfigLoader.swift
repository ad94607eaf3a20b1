// SPDX-License-Identifier: Apache-2.0

#if canImport(Glibc)
import Glibc
#endif

/// Turns a TOML file into a validated `Config`. Every error names the file, the key and the
/// line, and the first error found is reported (fix-and-rerun is how operators work with
/// `vaultkeeper config check`, like `nginx -t`).
public struct ConfigLoader: Sendable {
  public static let defaultPath = "/etc/vaultkeeper/vaultkeeper.toml"

  public init() {}

  /// Reads and validates the file at `path`. A file others may write is refused (`TrustedFile`).
  public func load(path: String) throws(ConfigError) -> Config {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else {
      let failure = FileAccess.Failure(errno: errno, operation: "open \(path)")
      throw ConfigError(file: path, key: nil, line: nil, message: "cannot read the configuration file: \(failure)")
    }
    defer { close(fd) }
    if let problem = TrustedFile.problem(fd: fd) {
      throw ConfigError(
        file: path, key: nil, line: nil,
        message: "the configuration file " + TrustedFile.message(problem, path: path, decides: "where the unseal keys and snapshots go"),
        insecure: true)
    }
    let bytes: [UInt8]
    do {
      bytes = try FileAccess.readAll(fd: fd, path: path, limit: 1 << 20)
    } catch {
      throw ConfigError(file: path, key: nil, line: nil, message: "cannot read the configuration file: \(error)")
    }
    // The bytes as they are: a file that is not UTF-8 is a located error, not replacement characters.
    return try parse(bytes: bytes, path: path)
  }

  /// Validates configuration text; `path` is used for messages.
  public func parse(_ text: String, path: String) throws(ConfigError) -> Config {
    try parse(bytes: Array(text.utf8), path: path)
  }

  func parse(bytes: [UInt8], path: String) throws(ConfigError) -> Config {
    let root: TOMLTable
    do throws(TOMLError) {
      root = try TOMLParser.parse(bytes)
    } catch {
      throw ConfigError(file: path, key: nil, line: error.line, message: "TOML syntax error: \(error.message) (column \(error.column))")
    }
    let reader = TableReader(file: path, lines: TOMLKeyLines(root))
    try reader.allowOnly(root, keys: ["vault", "peer", "health", "unseal", "metrics", "snapshot", "certificate", "notify"], at: nil)

    guard let vaultTable = try reader.table(root, "vault", at: nil) else {
      throw ConfigError(file: path, key: "vault", line: nil, message: "the [vault] table is required (at least `address`)")
    }
    let vault = try reader.node(vaultTable, at: "vault", defaults: nil)

    var peers: [NodeConfig] = []
    if let value = root["peer"] {
      guard let array = value.array else {
        throw reader.error("peer", "must be an array of tables, written [[peer]]")
      }
      for index in 0..<array.count {
        let key = "peer[\(index)]"
        guard let table = array[index].table else { throw reader.error(key, "must be a table") }
        peers.append(try reader.node(table, at: key, defaults: vault))
      }
    }
    var seen: Set<String> = [vault.address.display]
    for (index, peer) in peers.enumerated() where !seen.insert(peer.address.display).inserted {
      throw reader.error("peer[\(index)].address", "\(peer.address.display) is listed twice")
    }

    let health = try reader.health(try reader.table(root, "health", at: nil))
    let unseal = try reader.unseal(try reader.table(root, "unseal", at: nil))
    let metrics = try reader.metrics(try reader.table(root, "metrics", at: nil))
    let snapshot = try reader.snapshot(try reader.table(root, "snapshot", at: nil))
    let certificate = try reader.certificate(try reader.table(root, "certificate", at: nil), vault: vault)
    let notify = try reader.notify(root["notify"])
    return Config(
      sourcePath: path, vault: vault, peers: peers, health: health, unseal: unseal, metrics: metrics, snapshot: snapshot,
      certificate: certificate, notify: notify)
  }
}

/// Typed access to TOML tables that turns every mismatch into a located `ConfigError`.
/// Internal (not private) so table parsers can live next to their config types.
struct TableReader {
  let file: String
  let lines: TOMLKeyLines

  init(file: String, lines: TOMLKeyLines) {
    self.file = file
    self.lines = lines
  }

  func error(_ key: String, _ message: String) -> ConfigError {
    ConfigError(file: file, key: key, line: lines.line(of: key), message: message)
  }

  private func path(_ prefix: String?, _ key: String) -> String {
    prefix.map { "\($0).\(key)" } ?? key
  }

  func allowOnly(_ table: TOMLTable, keys allowed: [String], at prefix: String?) throws(ConfigError) {
    for key in table.keys where !allowed.contains(key) {
      throw error(path(prefix, key), "unknown key (allowed here: \(allowed.joined(separator: ", ")))")
    }
  }

  func table(_ table: TOMLTable, _ key: String, at prefix: String?) throws(ConfigError) -> TOMLTable? {
    guard let value = table[key] else { return nil }
    guard let sub = value.table else { throw error(path(prefix, key), "must be a table, written [\(path(prefix, key))]") }
    return sub
  }

  func string(_ table: TOMLTable, _ key: String, at prefix: String?) throws(ConfigError) -> String? {
    guard let value = table[key] else { return nil }
    guard let text = value.string else { throw error(path(prefix, key), "must be a string, got \(value.typeName)") }
    return text
  }

  func bool(_ table: TOMLTable, _ key: String, at prefix: String?) throws(ConfigError) -> Bool? {
    guard let value = table[key] else { return nil }
    guard let flag = value.bool else { throw error(path(prefix, key), "must be true or false, got \(value.typeName)") }
    return flag
  }

  func int(_ table: TOMLTable, _ key: String, at prefix: String?, range: ClosedRange<Int>) throws(ConfigError) -> Int? {
    guard let value = table[key] else { return nil }
    guard let number = value.int else { throw error(path(prefix, key), "must be an integer, got \(value.typeName)") }
    guard range.contains(number) else {
      throw error(path(prefix, key), "must be between \(range.lowerBound) and \(range.upperBound)")
    }
    return number
  }

  func duration(_ table: TOMLTable, _ key: String, at prefix: String?, minimum: Duration = .milliseconds(1)) throws(ConfigError) -> Duration? {
    guard let value = table[key] else { return nil }
    guard let text = value.string else {
      throw error(path(prefix, key), "must be a duration string such as \"250ms\", \"5s\" or \"1h\", got \(value.typeName)")
    }
    guard let duration = DurationParsing.parse(text) else {
      throw error(path(prefix, key), "\"\(text)\" is not a duration (use a number with ms, s, m, h or d, like \"250ms\" or \"1m30s\")")
    }
    guard duration >= minimum else {
      throw error(path(prefix, key), "must be at least \(DurationParsing.format(minimum))")
    }
    return duration
  }

  /// A file the daemon will read later: must exist and be a regular file now.
  func existingFile(_ table: TOMLTable, _ key: String, at prefix: String?) throws(ConfigError) -> String? {
    guard let file = try string(table, key, at: prefix) else { return nil }
    guard file.hasPrefix("/") else { throw error(path(prefix, key), "must be an absolute path, got \"\(file)\"") }
    switch FileAccess.kind(path: file) {
    case .regular: return file
    case .missing: throw error(path(prefix, key), "\(file) does not exist")
    case .other: throw error(path(prefix, key), "\(file) is not a regular file")
    case .inaccessible(let reason): throw error(path(prefix, key), "cannot access \(file): \(reason)")
    }
  }

  /// An existing file whose content decides where shares or backups go: refused (exit 77) when
  /// others may write it (`TrustedFile`). `decides` completes "whoever can change it decides …".
  func trustedFile(_ table: TOMLTable, _ key: String, at prefix: String?, decides role: String) throws(ConfigError) -> String? {
    guard let file = try existingFile(table, key, at: prefix) else { return nil }
    if let problem = TrustedFile.problem(path: file) {
      let full = path(prefix, key)
      throw ConfigError(file: self.file, key: full, line: lines.line(of: full), message: TrustedFile.message(problem, path: file, decides: role), insecure: true)
    }
    return file
  }

  /// The `keep_*` and `max_age` keys of a table (`[snapshot]`, `[snapshot.s3]`).
  func retention(_ table: TOMLTable, at prefix: String) throws(ConfigError) -> RetentionPolicy {
    RetentionPolicy(
      keepLast: try int(table, "keep_last", at: prefix, range: 0...100_000),
      keepDaily: try int(table, "keep_daily", at: prefix, range: 0...100_000),
      keepWeekly: try int(table, "keep_weekly", at: prefix, range: 0...100_000),
      keepMonthly: try int(table, "keep_monthly", at: prefix, range: 0...100_000),
      maxAge: try duration(table, "max_age", at: prefix, minimum: .seconds(3600)))
  }

  /// A secret read at use time: `FILE_KEY` (an absolute path) or `CREDENTIAL_KEY` (a name in
  /// `$CREDENTIALS_DIRECTORY`), one of them or neither.
  func credential(_ table: TOMLTable, _ fileKey: String, _ credentialKey: String, at prefix: String) throws(ConfigError) -> SnapshotConfig.Credential? {
    let file = try string(table, fileKey, at: prefix)
    let name = try string(table, credentialKey, at: prefix)
    switch (file, name) {
    case (.some, .some): throw error("\(prefix).\(credentialKey)", "set \(fileKey) or \(credentialKey), not both")
    case (.some(let path), nil):
      guard path.hasPrefix("/") else { throw error("\(prefix).\(fileKey)", "must be an absolute path") }
      if case .missing = FileAccess.kind(path: path) { throw error("\(prefix).\(fileKey)", "\(path) does not exist") }
      return .file(path)
    case (nil, .some(let credential)):
      guard !credential.isEmpty, !credential.contains("/") else { throw error("\(prefix).\(credentialKey)", "must be a credential name, not a path") }
      return .credential(credential)
    case (nil, nil): return nil
    }
  }

  func node(_ table: TOMLTable, at prefix: String, defaults: NodeConfig?) throws(ConfigError) -> NodeConfig {
    try allowOnly(
      table,
      keys: ["address", "ca_file", "server_name", "client_cert_file", "client_key_file", "unit", "timeout", "connect_timeout"],
      at: prefix)
    guard let addressText = try string(table, "address", at: prefix) else {
      throw error("\(prefix).address", "is required, e.g. \"https://127.0.0.1:8200\" or \"unix:///run/vault/vault.sock\"")
    }
    let address: VaultAddress
    switch VaultAddress.parse(addressText) {
    case .success(let parsed): address = parsed
    case .failure(let failure): throw error("\(prefix).address", "\"\(addressText)\": \(failure.reason)")
    }
    if address.scheme == .http && !address.isLocal {
      throw error(
        "\(prefix).address",
        "plain http is only allowed for loopback addresses and unix sockets; unseal keys are never sent elsewhere without verified TLS (use https://)")
    }
    // Peers inherit TLS settings and timeouts from [vault]: one cluster usually shares one CA.
    let caFile = try trustedFile(table, "ca_file", at: prefix, decides: "which servers get the unseal keys and tokens") ?? defaults?.caFile
    let serverName = try string(table, "server_name", at: prefix)
    if let serverName, serverName.isEmpty || serverName.contains(" ") {
      throw error("\(prefix).server_name", "must be a DNS name")
    }
    let clientCert = try existingFile(table, "client_cert_file", at: prefix)
    let clientKey = try existingFile(table, "client_key_file", at: prefix)
    if (clientCert == nil) != (clientKey == nil) {
      throw error("\(prefix).\(clientCert == nil ? "client_cert_file" : "client_key_file")",
        "client_cert_file and client_key_file go together (mTLS needs both)")
    }
    if address.scheme != .https && (serverName != nil || clientCert != nil) {
      throw error("\(prefix).\(serverName != nil ? "server_name" : "client_cert_file")", "only applies to https:// addresses")
    }
    let unit = try string(table, "unit", at: prefix)
    if let unit, unit.isEmpty || unit.contains("/") || unit.contains(" ") {
      throw error("\(prefix).unit", "must be a systemd unit name such as \"vault.service\"")
    }
    let timeout = try duration(table, "timeout", at: prefix, minimum: .milliseconds(100)) ?? defaults?.timeout ?? .seconds(5)
    let connectTimeout = try duration(table, "connect_timeout", at: prefix, minimum: .milliseconds(50))
      ?? defaults?.connectTimeout ?? min(timeout, .seconds(2))
    return NodeConfig(
      address: address, caFile: caFile, serverName: serverName,
      clientCertFile: clientCert ?? (clientKey == nil ? defaults?.clientCertFile : nil),
      clientKeyFile: clientKey ?? (clientCert == nil ? defaults?.clientKeyFile : nil),
      unit: unit ?? (defaults == nil ? "vault.service" : nil),
      timeout: timeout, connectTimeout: min(connectTimeout, timeout))
  }

  func health(_ table: TOMLTable?) throws(ConfigError) -> HealthConfig {
    var config = HealthConfig(interval: .seconds(5), fastInterval: .milliseconds(250), maxBackoff: .seconds(30), unreachableErrorAfter: 3)
    guard let table else { return config }
    try allowOnly(table, keys: ["interval", "fast_interval", "max_backoff", "unreachable_error_after"], at: "health")
    config.interval = try duration(table, "interval", at: "health", minimum: .milliseconds(1)) ?? config.interval
    config.fastInterval = try duration(table, "fast_interval", at: "health", minimum: .milliseconds(1)) ?? config.fastInterval
    config.maxBackoff = try duration(table, "max_backoff", at: "health", minimum: .milliseconds(1)) ?? max(config.maxBackoff, config.interval)
    config.unreachableErrorAfter = try int(table, "unreachable_error_after", at: "health", range: 1...1000) ?? config.unreachableErrorAfter
    if config.fastInterval > config.interval {
      throw error("health.fast_interval", "must not be longer than health.interval (\(DurationParsing.format(config.interval)))")
    }
    if config.maxBackoff < config.fastInterval {
      throw error("health.max_backoff", "must not be shorter than health.fast_interval")
    }
    return config
  }

  func unseal(_ table: TOMLTable?) throws(ConfigError) -> UnsealConfig {
    var config = UnsealConfig(enabled: false, keySource: nil, foreignProgressGrace: .seconds(30), after: .restart, wrongKeyBackoff: .seconds(600))
    guard let table else { return config }
    try allowOnly(table, keys: ["enabled", "key_file", "credential", "foreign_progress_grace", "after", "wrong_key_backoff"], at: "unseal")
    let keyFile = try string(table, "key_file", at: "unseal")
    let credential = try string(table, "credential", at: "unseal")
    config.enabled = try bool(table, "enabled", at: "unseal") ?? (keyFile != nil || credential != nil)
    switch (keyFile, credential) {
    case (.some, .some):
      throw error("unseal.credential", "set either unseal.key_file or unseal.credential, not both")
    case (.some(let file), nil):
      guard file.hasPrefix("/") else { throw error("unseal.key_file", "must be an absolute path, got \"\(file)\"") }
      switch FileAccess.kind(path: file) {
      case .missing: throw error("unseal.key_file", "\(file) does not exist")
      case .other: throw error("unseal.key_file", "\(file) is not a regular file")
      case .regular, .inaccessible: break  // permission problems are reported by the key loader (exit 77)
      }
      config.keySource = .file(file)
    case (nil, .some(let name)):
      guard !name.isEmpty, !name.contains("/"), name != ".", name != ".." else {
        throw error("unseal.credential", "must be a credential name (a file name in $CREDENTIALS_DIRECTORY), not a path")
      }
      config.keySource = .credential(name)
    case (nil, nil):
      if config.enabled { throw error("unseal.enabled", "unsealing needs unseal.key_file or unseal.credential") }
    }
    if let after = try string(table, "after", at: "unseal") {
      guard let parsed = UnsealConfig.After(rawValue: after) else {
        throw error("unseal.after", "must be \"restart\" (respect a deliberate seal) or \"always\", got \"\(after)\"")
      }
      config.after = parsed
    }
    config.foreignProgressGrace = try duration(table, "foreign_progress_grace", at: "unseal", minimum: .zero) ?? config.foreignProgressGrace
    config.wrongKeyBackoff = try duration(table, "wrong_key_backoff", at: "unseal", minimum: .seconds(10)) ?? config.wrongKeyBackoff
    return config
  }

  func metrics(_ table: TOMLTable?) throws(ConfigError) -> MetricsConfig {
    guard let table else { return MetricsConfig(textfileDirectory: nil) }
    try allowOnly(table, keys: ["textfile_dir"], at: "metrics")
    guard let dir = try string(table, "textfile_dir", at: "metrics") else { return MetricsConfig(textfileDirectory: nil) }
    guard dir.hasPrefix("/") else { throw error("metrics.textfile_dir", "must be an absolute path") }
    switch FileAccess.kind(path: dir) {
    case .missing: throw error("metrics.textfile_dir", "\(dir) does not exist")
    case .regular: throw error("metrics.textfile_dir", "\(dir) is a file, not a directory")
    case .other, .inaccessible: break
    }
    return MetricsConfig(textfileDirectory: dir)
  }

  /// A directory that must exist. One this user cannot look into (the unit's 0700 state
  /// directory, seen by `vaultkeeper check` running as a monitoring user) is accepted: the
  /// daemon, which can, reports problems with it when it uses it.
  private func existingDirectory(_ path: String, key: String) throws(ConfigError) {
    switch FileAccess.kind(path: path) {
    case .missing: throw error(key, "\(path) is not an existing directory")
    case .regular: throw error(key, "\(path) is a file, not a directory")
    case .other: guard FileAccess.isDirectory(path: path) else { throw error(key, "\(path) is not a directory") }
    case .inaccessible: break
    }
  }

  private func stateFile(_ table: TOMLTable) throws(ConfigError) -> String? {
    guard let path = try string(table, "state_file", at: "snapshot") else { return nil }
    guard path.hasPrefix("/"), !path.hasSuffix("/") else { throw error("snapshot.state_file", "must be an absolute file path") }
    let parent = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
    if !parent.isEmpty { try existingDirectory(parent, key: "snapshot.state_file") }
    return path
  }

  func snapshot(_ table: TOMLTable?) throws(ConfigError) -> SnapshotConfig? {
    guard let table else { return nil }
    let at = "snapshot"
    try allowOnly(table, keys: TableReaderKeys.snapshot, at: at)
    guard let directory = try string(table, "directory", at: at) else {
      throw error("snapshot.directory", "is required: where snapshots are written (e.g. \"/var/lib/vaultkeeper/snapshots\")")
    }
    guard directory.hasPrefix("/") else { throw error("snapshot.directory", "must be an absolute path") }
    try existingDirectory(directory, key: "snapshot.directory")

    func credential(_ fileKey: String, _ credentialKey: String) throws(ConfigError) -> SnapshotConfig.Credential? {
      try self.credential(table, fileKey, credentialKey, at: at)
    }
    let token = try credential("token_file", "token_credential")
    let roleID = try credential("role_id_file", "role_id_credential")
    let secretID = try credential("secret_id_file", "secret_id_credential")
    let auth: SnapshotConfig.Auth
    switch (token, roleID, secretID) {
    case (.some(let token), nil, nil):
      auth = .token(token)
    case (nil, .some(let role), .some(let secret)):
      let mount = try string(table, "approle_mount", at: at) ?? "approle"
      guard !mount.isEmpty, mount.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "/" }) else {
        throw error("snapshot.approle_mount", "must be an auth mount path such as \"approle\"")
      }
      auth = .appRole(roleID: role, secretID: secret, mount: mount)
    case (nil, nil, nil):
      throw error("snapshot", "needs credentials: token_file/token_credential, or role_id_* and secret_id_* for AppRole")
    case (.some, _, _):
      throw error("snapshot.token_file", "use either a token or AppRole (role_id_*/secret_id_*), not both")
    default:
      throw error(roleID == nil ? "snapshot.role_id_file" : "snapshot.secret_id_file", "AppRole needs both a role ID and a secret ID")
    }

    // Below a minute only tests want it (the daemon warns), like health.interval's test grades.
    let interval = try duration(table, "interval", at: at, minimum: .seconds(1))
    var dailyAt: SnapshotSchedule.TimeOfDay?
    if let text = try string(table, "daily_at", at: at) {
      guard let time = SnapshotSchedule.TimeOfDay(text) else { throw error("snapshot.daily_at", "must be a UTC time of day as \"HH:MM\", got \"\(text)\"") }
      dailyAt = time
    }
    let schedule = SnapshotSchedule(
      interval: interval ?? (dailyAt == nil ? .seconds(3600) : nil), dailyAt: dailyAt,
      randomizedDelay: try duration(table, "randomized_delay", at: at, minimum: .zero) ?? .zero)
    let retention = try retention(table, at: at)
    var minFree: Int64 = 1 << 30
    if let text = try string(table, "min_free_space", at: at) {
      guard let bytes = SizeParsing.parse(text) else { throw error("snapshot.min_free_space", "\"\(text)\" is not a size (use e.g. \"512MiB\", \"2GiB\")") }
      minFree = bytes
    }
    let cadence = interval ?? (dailyAt == nil ? .seconds(3600) : .seconds(86400))
    var transfers = TransferDeadline.standard
    if let minimum = try duration(table, "transfer_timeout", at: at, minimum: .seconds(1)) { transfers.minimum = minimum }
    if let text = try string(table, "transfer_min_rate", at: at) {
      guard let bytes = SizeParsing.parse(text), bytes >= 1024 else {
        throw error("snapshot.transfer_min_rate", "\"\(text)\" is not a rate of at least 1KiB (bytes per second, e.g. \"256KiB\", \"1MiB\")")
      }
      transfers.minBytesPerSecond = bytes
    }
    var s3 = try s3(try self.table(table, "s3", at: at), local: retention)
    s3?.transfers = transfers
    var config = SnapshotConfig(
      enabled: try bool(table, "enabled", at: at) ?? true, directory: directory, auth: auth, schedule: schedule, retention: retention,
      minFreeBytes: minFree, staleAfter: try duration(table, "stale_after", at: at, minimum: .seconds(1)) ?? cadence * 3,
      maxDuration: try duration(table, "max_duration", at: at, minimum: .seconds(10)), stateFile: try stateFile(table),
      encryption: try snapshotEncryption(table), s3: s3)
    config.transfers = transfers
    config.drill = try snapshotDrill(try self.table(table, "drill", at: at))
    return config
  }

  /// `age_recipients = ["age1…"]` and/or `age_recipients_file = "/path"` (age's recipients-file
  /// format: one `age1…` per line, `#` comments). Neither: plain snapshots.
  private func snapshotEncryption(_ table: TOMLTable) throws(ConfigError) -> SnapshotEncryption? {
    var listed: [AgeRecipient]?
    if let value = table["age_recipients"] {
      let key = "snapshot.age_recipients"
      guard let array = value.array else { throw error(key, "must be an array of \"age1…\" strings, got \(value.typeName)") }
      guard array.count > 0 else { throw error(key, "is empty: list at least one \"age1…\" recipient, or remove the key") }
      var recipients: [AgeRecipient] = []
      for index in 0..<array.count {
        guard let text = array[index].string else { throw error(key, "entry \(index + 1) must be a string, got \(array[index].typeName)") }
        do {
          recipients.append(try AgeRecipient(text.trimmingWhitespace()))
        } catch {
          // The entry itself is not quoted: a pasted identity (secret) would end up in the journal.
          throw self.error(key, "entry \(index + 1): \(error.message)")
        }
      }
      listed = recipients
    }
    var fromFile: [AgeRecipient] = []
    let file = try trustedFile(table, "age_recipients_file", at: "snapshot", decides: "who can decrypt the snapshots")
    if let file {
      let key = "snapshot.age_recipients_file"
      let text: String
      do {
        text = try FileAccess.readText(path: file, limit: 1 << 20)
      } catch {
        throw self.error(key, "cannot read \(file): \(error)")
      }
      do {
        fromFile = try AgeRecipient.parseFile(text)
      } catch {
        throw self.error(key, "\(file):\(error.line): \(error.message)")
      }
      guard !fromFile.isEmpty else { throw self.error(key, "\(file) lists no \"age1…\" recipient") }
    }
    guard listed != nil || file != nil else { return nil }
    return SnapshotEncryption(listed: listed ?? [], recipientsFile: file, fileRecipients: fromFile)
  }
  /// A non-empty array of strings (`names`, `reload_command`).
  func strings(_ table: TOMLTable, _ key: String, at prefix: String) throws(ConfigError) -> [String]? {
    guard let value = table[key] else { return nil }
    let full = path(prefix, key)
    guard let array = value.array else { throw error(full, "must be an array of strings, got \(value.typeName)") }
    guard array.count > 0 else { throw error(full, "is empty") }
    var items: [String] = []
    for index in 0..<array.count {
      guard let text = array[index].string else { throw error(full, "entry \(index + 1) must be a string, got \(array[index].typeName)") }
      items.append(text)
    }
    return items
  }

  func certificate(_ table: TOMLTable?, vault: NodeConfig) throws(ConfigError) -> CertificateConfig? {
    guard let table else { return nil }
    let at = "certificate"
    try allowOnly(table, keys: TableReaderKeys.certificate, at: at)
    guard let certFile = try existingFile(table, "cert_file", at: at) else {
      throw error("certificate.cert_file", "is required: the certificate Vault's listener uses (tls_cert_file), e.g. \"/etc/letsencrypt/live/vault/fullchain.pem\"")
    }
    guard let keyFile = try string(table, "key_file", at: at) else {
      throw error("certificate.key_file", "is required: the private key Vault's listener uses (tls_key_file)")
    }
    guard keyFile.hasPrefix("/") else { throw error("certificate.key_file", "must be an absolute path, got \"\(keyFile)\"") }
    switch FileAccess.kind(path: keyFile) {
    case .missing: throw error("certificate.key_file", "\(keyFile) does not exist")
    case .other: throw error("certificate.key_file", "\(keyFile) is not a regular file")
    case .regular, .inaccessible: break  // whether we may read it is reported by the inspection (a critical problem)
    }
    let caFile = try trustedFile(table, "ca_file", at: at, decides: "which CAs Vault's certificate may come from")

    var names: [String]
    if let listed = try strings(table, "names", at: at) {
      names = []
      for (index, name) in listed.enumerated() {
        let lower = name.lowercased()
        guard CertificateNames.isValidExpectedName(lower) else {
          throw error("certificate.names", "entry \(index + 1) \"\(name)\" is not a DNS name or IP address (wildcards belong in the certificate, not here)")
        }
        if !names.contains(lower) { names.append(lower) }
      }
    } else if let derived = CertificateConfig.defaultNames(for: vault) {
      names = derived
    } else {
      throw error("certificate.names", "is required: [vault] address has no DNS name (and no server_name) to expect in the certificate")
    }

    let warnDays = try int(table, "warn_days", at: at, range: 1...3650) ?? 21
    let criticalDays = try int(table, "critical_days", at: at, range: 0...3650) ?? 7
    guard criticalDays < warnDays else {
      throw error("certificate.critical_days", "must be less than certificate.warn_days (\(warnDays))")
    }

    let method = try string(table, "reload", at: at) ?? "systemd"
    let command = try strings(table, "reload_command", at: at)
    let unit = try string(table, "unit", at: at)
    if let unit, unit.isEmpty || unit.contains("/") || unit.contains(" ") {
      throw error("certificate.unit", "must be a systemd unit name such as \"vault.service\"")
    }
    let reload: CertificateConfig.Reload
    switch method {
    case "systemd", "signal":
      if command != nil { throw error("certificate.reload_command", "only applies with reload = \"command\"") }
      guard let target = unit ?? vault.unit else {
        throw error("certificate.unit", "is required with reload = \"\(method)\": the unit Vault runs as")
      }
      reload = method == "systemd" ? .systemd(unit: target) : .signal(unit: target)
    case "command":
      guard let argv = command else {
        throw error("certificate.reload_command", "is required with reload = \"command\": an argv array such as [\"/usr/local/bin/vault-reload\"]")
      }
      guard let program = argv.first, program.hasPrefix("/") else {
        throw error("certificate.reload_command", "the program (first entry) must be an absolute path; the command runs without a shell")
      }
      if unit != nil { throw error("certificate.unit", "only applies with reload = \"systemd\" or \"signal\"") }
      reload = .command(argv)
    default:
      throw error("certificate.reload", "must be \"systemd\", \"signal\" or \"command\", got \"\(method)\"")
    }

    return CertificateConfig(
      enabled: try bool(table, "enabled", at: at) ?? true, certFile: certFile, keyFile: keyFile, caFile: caFile, names: names,
      warnDays: warnDays, criticalDays: criticalDays, reload: reload,
      reloadTimeout: try duration(table, "reload_timeout", at: at, minimum: .seconds(1)) ?? .seconds(30),
      checkInterval: try duration(table, "check_interval", at: at, minimum: .seconds(1)) ?? .seconds(3600),
      verifyWindow: try duration(table, "verify_window", at: at, minimum: .seconds(1)) ?? .seconds(10))
  }
}
