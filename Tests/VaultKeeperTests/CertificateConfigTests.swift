// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
@testable import VaultKeeper

@Suite struct CertificateConfigTests {
  let directory: String

  init() throws {
    directory = NSTemporaryDirectory() + "vk-certconfig-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: directory + "/sub", withIntermediateDirectories: true)
    for name in ["cert.pem", "key.pem", "ca.pem"] {
      _ = FileManager.default.createFile(atPath: "\(directory)/\(name)", contents: Data("x".utf8))
    }
  }

  /// `[vault]` (address given) followed by `[certificate]` with cert_file and key_file, then `extra`.
  func text(address: String = "https://vault.example.com:8200", vaultExtra: String = "", _ extra: String) -> String {
    """
    [vault]
    address = "\(address)"
    \(vaultExtra)
    [certificate]
    cert_file = "\(directory)/cert.pem"
    key_file = "\(directory)/key.pem"
    \(extra)
    """
  }

  func parse(_ text: String) throws(ConfigError) -> Config {
    try ConfigLoader().parse(text, path: "/etc/vk.toml")
  }

  func error(_ text: String) -> ConfigError? {
    do {
      _ = try parse(text)
      return nil
    } catch {
      return error
    }
  }

  @Test func defaults() throws {
    let config = try parse(text(""))
    let cert = try #require(config.certificate)
    #expect(cert.enabled)
    #expect(cert.certFile == "\(directory)/cert.pem")
    #expect(cert.keyFile == "\(directory)/key.pem")
    #expect(cert.caFile == nil)
    #expect(cert.names == ["vault.example.com"])
    #expect(cert.warnDays == 21)
    #expect(cert.criticalDays == 7)
    #expect(cert.reload == .systemd(unit: "vault.service"))
    #expect(cert.reloadTimeout == .seconds(30))
    #expect(cert.checkInterval == .seconds(3600))
    #expect(cert.verifyWindow == .seconds(10))
  }

  @Test func absentTableIsNil() throws {
    #expect(try parse("[vault]\naddress = \"https://127.0.0.1:8200\"\n").certificate == nil)
  }

  @Test func everyKey() throws {
    let config = try parse(
      text(
        """
        enabled = false
        ca_file = "\(directory)/ca.pem"
        names = ["Vault.Example.com", "vault", "10.0.0.1", "vault"]
        warn_days = 30
        critical_days = 10
        reload = "command"
        reload_command = ["/usr/local/bin/reload-vault", "--now"]
        reload_timeout = "5s"
        check_interval = "10m"
        verify_window = "20s"
        """))
    let cert = try #require(config.certificate)
    #expect(!cert.enabled)
    #expect(cert.caFile == "\(directory)/ca.pem")
    #expect(cert.names == ["vault.example.com", "vault", "10.0.0.1"])
    #expect(cert.warnDays == 30 && cert.criticalDays == 10)
    #expect(cert.reload == .command(["/usr/local/bin/reload-vault", "--now"]))
    #expect(cert.reloadTimeout == .seconds(5))
    #expect(cert.checkInterval == .seconds(600))
    #expect(cert.verifyWindow == .seconds(20))
  }

  @Test func namesDefaultToServerName() throws {
    let config = try parse(text(address: "https://127.0.0.1:8200", vaultExtra: "server_name = \"Vault.Internal\"", ""))
    #expect(config.certificate?.names == ["vault.internal"])
  }

  @Test func signalUsesTheVaultUnitOrItsOwn() throws {
    let inherited = try parse(text(vaultExtra: "unit = \"openbao.service\"", "reload = \"signal\""))
    #expect(inherited.certificate?.reload == .signal(unit: "openbao.service"))
    let own = try parse(text("reload = \"systemd\"\nunit = \"vault-tls.service\""))
    #expect(own.certificate?.reload == .systemd(unit: "vault-tls.service"))
  }

  @Test func effectiveConfigRendersTheTable() throws {
    let config = try parse(text("ca_file = \"\(directory)/ca.pem\"\nreload = \"command\"\nreload_command = [\"/bin/true\"]"))
    let rendered = EffectiveConfig.render(config)
    #expect(rendered.contains("[certificate]"))
    #expect(rendered.contains("cert_file = \"\(directory)/cert.pem\""))
    #expect(rendered.contains("ca_file = \"\(directory)/ca.pem\""))
    #expect(rendered.contains("names = [\"vault.example.com\"]"))
    #expect(rendered.contains("reload = \"command\""))
    #expect(rendered.contains("reload_command = [\"/bin/true\"]"))
    #expect(rendered.contains("warn_days = 21"))
    #expect(rendered.contains("verify_window = \"10s\""))
    // What it renders parses back to the same configuration.
    let again = try ConfigLoader().parse(rendered, path: "/etc/vk.toml")
    #expect(again.certificate == config.certificate)
  }

  /// Each mistake, the key it is reported under, the line, and a phrase of the message.
  @Test(arguments: [
    ("", "certificate.cert_file", "is required", nil),
    ("cert_file = \"relative.pem\"", "certificate.cert_file", "absolute path", 7),
    ("cert_file = \"/nonexistent/cert.pem\"", "certificate.cert_file", "does not exist", 7),
    ("cert_file = \"DIR/sub\"", "certificate.cert_file", "not a regular file", 7),
    ("cert_file = \"DIR/cert.pem\"", "certificate.key_file", "is required", nil),
    ("cert_file = \"DIR/cert.pem\"\nkey_file = \"key.pem\"", "certificate.key_file", "absolute path", 8),
    ("cert_file = \"DIR/cert.pem\"\nkey_file = \"/nonexistent/key.pem\"", "certificate.key_file", "does not exist", 8),
    ("cert_file = \"DIR/cert.pem\"\nkey_file = \"DIR/sub\"", "certificate.key_file", "not a regular file", 8),
  ] as [(String, String, String, Int?)])
  func fileErrors(body: String, key: String, phrase: String, line: Int?) {
    let source = "[vault]\naddress = \"https://vault.example.com\"\n\n\n\n[certificate]\n" + body.replacingOccurrences(of: "DIR", with: directory)
    let failure = error(source)
    #expect(failure?.key == key, "\(String(describing: failure))")
    #expect(failure?.message.contains(phrase) == true, "\(String(describing: failure))")
    if let line { #expect(failure?.line == line) } else { #expect(failure?.line == 6) }
  }

  @Test(arguments: [
    ("bogus = 1", "certificate.bogus", "unknown key"),
    ("ca_file = \"/nonexistent/ca.pem\"", "certificate.ca_file", "does not exist"),
    ("names = \"vault.example.com\"", "certificate.names", "array of strings"),
    ("names = []", "certificate.names", "is empty"),
    ("names = [1]", "certificate.names", "entry 1 must be a string"),
    ("names = [\"*.example.com\"]", "certificate.names", "not a DNS name or IP address"),
    ("names = [\"bad name\"]", "certificate.names", "not a DNS name or IP address"),
    ("warn_days = 0", "certificate.warn_days", "between 1 and 3650"),
    ("warn_days = \"21\"", "certificate.warn_days", "must be an integer"),
    ("critical_days = -1", "certificate.critical_days", "between 0 and 3650"),
    ("critical_days = 21", "certificate.critical_days", "less than certificate.warn_days (21)"),
    ("warn_days = 5", "certificate.critical_days", "less than certificate.warn_days (5)"),
    ("reload = \"restart\"", "certificate.reload", "\"systemd\", \"signal\" or \"command\""),
    ("reload = \"command\"", "certificate.reload_command", "is required"),
    ("reload = \"command\"\nreload_command = [\"reload-vault\"]", "certificate.reload_command", "absolute path"),
    ("reload = \"command\"\nreload_command = []", "certificate.reload_command", "is empty"),
    ("reload_command = [\"/bin/true\"]", "certificate.reload_command", "only applies with reload = \"command\""),
    ("reload = \"command\"\nreload_command = [\"/bin/true\"]\nunit = \"vault.service\"", "certificate.unit", "only applies"),
    ("unit = \"a/b\"", "certificate.unit", "systemd unit name"),
    ("reload_timeout = \"500ms\"", "certificate.reload_timeout", "at least 1s"),
    ("check_interval = \"soon\"", "certificate.check_interval", "is not a duration"),
    ("verify_window = \"0s\"", "certificate.verify_window", "at least 1s"),
    ("enabled = \"yes\"", "certificate.enabled", "true or false"),
  ])
  func valueErrors(extra: String, key: String, phrase: String) {
    let failure = error(text(extra))
    #expect(failure?.key == key, "\(String(describing: failure))")
    #expect(failure?.message.contains(phrase) == true, "\(String(describing: failure))")
    #expect(failure?.line != nil)
    #expect(failure?.file == "/etc/vk.toml")
  }

  @Test(arguments: ["https://127.0.0.1:8200", "https://[::1]:8200", "unix:///run/vault.sock"])
  func namesAreRequiredWithoutAHostName(address: String) {
    let failure = error(text(address: address, ""))
    #expect(failure?.key == "certificate.names")
    #expect(failure?.message.contains("is required") == true)
  }
}
