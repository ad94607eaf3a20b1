// SPDX-License-Identifier: Apache-2.0
/// Renders a validated configuration back as TOML with every default filled in, for
/// `vaultkeeper config check`. Key material is never part of the configuration (only paths and
/// credential names); the one secret a configuration can hold, a webhook URL's path, is left
/// out. Everything else reads back as the same configuration.
public enum EffectiveConfig {
  public static func render(_ config: Config) -> String {
    var lines = ["# effective configuration of \(config.sourcePath)"]
    func node(_ header: String, _ n: NodeConfig) {
      lines.append("")
      lines.append(header)
      lines.append("address = \(quote(n.address.display))")
      if let v = n.caFile { lines.append("ca_file = \(quote(v))") }
      if let v = n.serverName { lines.append("server_name = \(quote(v))") }
      if let v = n.clientCertFile { lines.append("client_cert_file = \(quote(v))") }
      if let v = n.clientKeyFile { lines.append("client_key_file = \(quote(v))") }
      if let v = n.unit { lines.append("unit = \(quote(v))") }
      lines.append("timeout = \(quote(DurationParsing.format(n.timeout)))")
      lines.append("connect_timeout = \(quote(DurationParsing.format(n.connectTimeout)))")
    }
    node("[vault]", config.vault)
    lines += ["", "[health]",
      "interval = \(quote(DurationParsing.format(config.health.interval)))",
      "fast_interval = \(quote(DurationParsing.format(config.health.fastInterval)))",
      "max_backoff = \(quote(DurationParsing.format(config.health.maxBackoff)))",
      "unreachable_error_after = \(config.health.unreachableErrorAfter)"]
    lines += ["", "[unseal]", "enabled = \(config.unseal.enabled)"]
    switch config.unseal.keySource {
    case .file(let path): lines.append("key_file = \(quote(path))")
    case .credential(let name): lines.append("credential = \(quote(name))")
    case nil: break
    }
    lines += [
      "after = \(quote(config.unseal.after.rawValue))",
      "foreign_progress_grace = \(quote(DurationParsing.format(config.unseal.foreignProgressGrace)))",
      "wrong_key_backoff = \(quote(DurationParsing.format(config.unseal.wrongKeyBackoff)))"]
    for peer in config.peers { node("[[peer]]", peer) }
    if let dir = config.metrics.textfileDirectory { lines += ["", "[metrics]", "textfile_dir = \(quote(dir))"] }
    if let snapshot = config.snapshot { lines += snapshotLines(snapshot) }
    if let certificate = config.certificate { lines += certificateLines(certificate) }
    for entry in config.notify { lines += notifyLines(entry) }
    return lines.joined(separator: "\n")
  }

  static func snapshotLines(_ s: SnapshotConfig) -> [String] {
    var lines = ["", "[snapshot]", "enabled = \(s.enabled)", "directory = \(quote(s.directory))"]
    switch s.auth {
    case .token(let c): lines.append(credential(c, "token"))
    case .appRole(let role, let secret, let mount):
      lines += [credential(role, "role_id"), credential(secret, "secret_id"), "approle_mount = \(quote(mount))"]
    }
    if let interval = s.schedule.interval { lines.append("interval = \(quote(DurationParsing.format(interval)))") }
    if let at = s.schedule.dailyAt { lines.append("daily_at = \(quote(at.description))") }
    lines.append("randomized_delay = \(quote(DurationParsing.format(s.schedule.randomizedDelay)))")
    lines += retentionLines(s.retention)
    lines.append("min_free_space = \(quote("\(s.minFreeBytes)"))")
    lines.append("stale_after = \(quote(DurationParsing.format(s.staleAfter)))")
    if let max = s.maxDuration { lines.append("max_duration = \(quote(DurationParsing.format(max)))") }
    lines.append("transfer_timeout = \(quote(DurationParsing.format(s.transfers.minimum)))")
    lines.append("transfer_min_rate = \(quote("\(s.transfers.minBytesPerSecond)"))")
    if let file = s.stateFile { lines.append("state_file = \(quote(file))") }
    if let encryption = s.encryption {
      if !encryption.listed.isEmpty {
        lines.append("age_recipients = [\(encryption.listed.map { quote($0.description) }.joined(separator: ", "))]")
      }
      if let file = encryption.recipientsFile {
        lines.append("age_recipients_file = \(quote(file))")
        lines.append("# encrypting to \(encryption.recipients.count) age recipient\(encryption.recipients.count == 1 ? "" : "s")")
      }
    }
    if let s3 = s.s3 { lines += s3Lines(s3) }
    if let drill = s.drill { lines += drillLines(drill) }
    return lines
  }

  static func drillLines(_ d: SnapshotDrillConfig) -> [String] {
    var lines = ["", "[snapshot.drill]", "enabled = \(d.enabled)", "interval = \(quote(DurationParsing.format(d.interval)))"]
    lines.append(d.binary.map { "binary = \(quote($0))" } ?? "# binary: the one [vault] unit's ExecStart runs, else bao, then vault, on PATH")
    lines += ["timeout = \(quote(DurationParsing.format(d.timeout)))", "stale_after = \(quote(DurationParsing.format(d.staleAfter)))"]
    return lines
  }

  static func credential(_ c: SnapshotConfig.Credential, _ base: String) -> String {
    switch c {
    case .file(let path): return "\(base)_file = \(quote(path))"
    case .credential(let name): return "\(base)_credential = \(quote(name))"
    }
  }

  static func s3Lines(_ s: S3Config) -> [String] {
    var lines = ["", "[snapshot.s3]", "endpoint = \(quote(s.endpoint.display))", "region = \(quote(s.region))", "bucket = \(quote(s.bucket))",
      "prefix = \(quote(s.prefix))", "path_style = \(s.pathStyle)", credential(s.accessKeyID, "access_key_id"),
      credential(s.secretAccessKey, "secret_access_key")]
    if let ca = s.caFile { lines.append("ca_file = \(quote(ca))") }
    if let proxy = s.proxy { lines.append("proxy = \(quote(proxy.display))") }
    lines += ["timeout = \(quote(DurationParsing.format(s.timeout)))", "verify_etag = \(s.verifyETag)",
      "multipart_threshold = \(quote("\(s.multipartThreshold)"))", "part_size = \(quote("\(s.partSize)"))"]
    if s.ownRetention {
      lines += retentionLines(s.retention)
    } else {
      lines.append("# retention: as in [snapshot]")
    }
    return lines
  }

  static func retentionLines(_ r: RetentionPolicy) -> [String] {
    var lines: [String] = []
    if let n = r.keepLast { lines.append("keep_last = \(n)") }
    if let n = r.keepDaily { lines.append("keep_daily = \(n)") }
    if let n = r.keepWeekly { lines.append("keep_weekly = \(n)") }
    if let n = r.keepMonthly { lines.append("keep_monthly = \(n)") }
    if let age = r.maxAge { lines.append("max_age = \(quote(DurationParsing.format(age)))") }
    return lines
  }

  static func certificateLines(_ c: CertificateConfig) -> [String] {
    var lines = ["", "[certificate]", "enabled = \(c.enabled)", "cert_file = \(quote(c.certFile))", "key_file = \(quote(c.keyFile))"]
    if let ca = c.caFile { lines.append("ca_file = \(quote(ca))") }
    lines += [
      "names = [\(c.names.map(quote).joined(separator: ", "))]", "warn_days = \(c.warnDays)", "critical_days = \(c.criticalDays)",
      "reload = \(quote(c.reload.name))",
    ]
    switch c.reload {
    case .systemd(let unit), .signal(let unit): lines.append("unit = \(quote(unit))")
    case .command(let argv): lines.append("reload_command = [\(argv.map(quote).joined(separator: ", "))]")
    }
    lines += [
      "reload_timeout = \(quote(DurationParsing.format(c.reloadTimeout)))",
      "check_interval = \(quote(DurationParsing.format(c.checkInterval)))",
      "verify_window = \(quote(DurationParsing.format(c.verifyWindow)))",
    ]
    return lines
  }

  static func notifyLines(_ n: NotifyConfig) -> [String] {
    var lines = ["", "[[notify]]", "name = \(quote(n.name))"]
    switch n.target {
    case .webhook(let webhook):
      // The path (and query) of a webhook URL is often its secret, and this output gets pasted
      // into bug reports: shown as a comment, which also means this entry cannot be pasted back.
      lines += [
        "# webhook = \(quote(webhook.url.display)) (the path is not shown: it is often the webhook's secret)",
        "format = \(quote(webhook.format.rawValue))",
      ]
      if let ca = webhook.caFile { lines.append("ca_file = \(quote(ca))") }
      if let headers = webhook.headers { lines.append(credential(headers, "headers")) }
    case .command(let argv):
      lines.append("command = [\(argv.map(quote).joined(separator: ", "))]")
    }
    let events = AlertEvent.allCases.filter { n.policy.events.contains($0) }
    lines += [
      "events = [\(events.map { quote($0.rawValue) }.joined(separator: ", "))]", "min_severity = \(quote(n.policy.minSeverity.rawValue))",
      "min_failures = \(n.policy.minFailures)", "min_duration = \(quote(DurationParsing.format(n.policy.minDuration)))",
      "timeout = \(quote(DurationParsing.format(n.timeout)))", "queue_size = \(n.queueSize)",
    ]
    return lines
  }

  static func quote(_ text: String) -> String {
    var out = "\""
    for c in text.unicodeScalars {
      switch c {
      case "\"": out += "\\\""
      case "\\": out += "\\\\"
      case "\n": out += "\\n"
      case "\r": out += "\\r"
      case "\t": out += "\\t"
      // TOML allows no other control character in a basic string: written as \uXXXX (found by
      // fuzzing: a `\r` escape in an address made `config check`'s output unreadable).
      case "\u{00}"..."\u{1F}", "\u{7F}":
        let hex = String(c.value, radix: 16, uppercase: true)
        out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
      default: out.unicodeScalars.append(c)
      }
    }
    return out + "\""
  }
}
