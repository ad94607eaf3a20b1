// SPDX-License-Identifier: Apache-2.0
/// `[certificate]`: watching Vault's TLS certificate (issue #5). The files are the ones Vault's
/// listener is configured with (`tls_cert_file`, `tls_key_file`); vaultkeeper validates them
/// before reloading Vault, then checks that Vault serves the new certificate.
public struct CertificateConfig: Sendable, Equatable {
  /// How Vault is told to re-read its certificate.
  public enum Reload: Sendable, Equatable {
    /// systemd `ReloadUnit` over D-Bus (Vault's unit has `ExecReload=kill -HUP $MAINPID`).
    case systemd(unit: String)
    /// SIGHUP to the unit's MainPID, for units without `ExecReload=`.
    case signal(unit: String)
    /// A program run directly (argv, no shell); argv[0] is an absolute path.
    case command([String])

    public var name: String {
      switch self {
      case .systemd: return "systemd"
      case .signal: return "signal"
      case .command: return "command"
      }
    }
  }

  public var enabled: Bool
  /// The certificate Vault serves: the leaf first, then intermediates (certbot's fullchain.pem
  /// or cert.pem). Must exist when the configuration is loaded.
  public var certFile: String
  /// Its private key. Must exist; whether vaultkeeper may read it is reported by the inspection.
  public var keyFile: String
  /// Roots the chain must validate to; nil skips chain validation.
  public var caFile: String?
  /// Names (DNS names or IP literals) the certificate's SANs must cover.
  public var names: [String]
  /// Less than this many days left: warning.
  public var warnDays: Int
  /// Less than this many days left: critical.
  public var criticalDays: Int
  public var reload: Reload
  /// Upper bound for one reload (the systemd job, the command).
  public var reloadTimeout: Duration
  /// Slow re-check of the files and the served certificate, besides inotify.
  public var checkInterval: Duration
  /// How long after a reload the served certificate is re-checked before alerting.
  public var verifyWindow: Duration

  public init(enabled: Bool = true, certFile: String, keyFile: String, caFile: String? = nil, names: [String], warnDays: Int = 21,
    criticalDays: Int = 7, reload: Reload, reloadTimeout: Duration = .seconds(30), checkInterval: Duration = .seconds(3600),
    verifyWindow: Duration = .seconds(10))
  {
    self.enabled = enabled
    self.certFile = certFile
    self.keyFile = keyFile
    self.caFile = caFile
    self.names = names
    self.warnDays = warnDays
    self.criticalDays = criticalDays
    self.reload = reload
    self.reloadTimeout = reloadTimeout
    self.checkInterval = checkInterval
    self.verifyWindow = verifyWindow
  }
}

extension TableReaderKeys {
  static let certificate = [
    "enabled", "cert_file", "key_file", "ca_file", "names", "warn_days", "critical_days", "reload", "reload_command", "reload_timeout",
    "unit", "check_interval", "verify_window",
  ]
}

extension CertificateConfig {
  /// The names to expect when `names` is not given: `[vault] server_name`, else the address's
  /// host when it is a DNS name. IP addresses and unix sockets say nothing about the name
  /// clients use, so then `names` must be written out.
  static func defaultNames(for vault: NodeConfig) -> [String]? {
    if let serverName = vault.serverName { return [serverName.lowercased()] }
    guard vault.address.scheme != .unix, !vault.address.host.isEmpty, IPAddressText.parse(vault.address.host) == nil else { return nil }
    return [vault.address.host]
  }
}
