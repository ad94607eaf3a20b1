/// Renders a validated configuration back as TOML with every default filled in, for
/// `vaultkeeper config check`. Key material is never part of the configuration (only paths and
/// credential names), so nothing here can leak a secret.
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
    return lines.joined(separator: "\n")
  }

  static func quote(_ text: String) -> String {
    var out = "\""
    for c in text.unicodeScalars {
      switch c {
      case "\"": out += "\\\""
      case "\\": out += "\\\\"
      case "\n": out += "\\n"
      default: out.unicodeScalars.append(c)
      }
    }
    return out + "\""
  }
}
