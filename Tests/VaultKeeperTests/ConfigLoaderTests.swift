// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
@testable import VaultKeeper

@Suite struct ConfigLoaderTests {
  let directory: String

  init() throws {
    directory = NSTemporaryDirectory() + "vk-config-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    _ = FileManager.default.createFile(atPath: directory + "/ca.pem", contents: Data("x".utf8))
    _ = FileManager.default.createFile(atPath: directory + "/keys.json", contents: Data("x".utf8))
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

  @Test func minimalConfigGetsDefaults() throws {
    let config = try parse("[vault]\naddress = \"https://127.0.0.1:8200\"\n")
    #expect(config.vault.timeout == .seconds(5))
    #expect(config.vault.connectTimeout == .seconds(2))
    #expect(config.vault.unit == "vault.service")
    #expect(config.health.interval == .seconds(5))
    #expect(config.health.fastInterval == .milliseconds(250))
    #expect(config.unseal.enabled == false)
    #expect(config.unseal.after == .restart)
    #expect(config.peers.isEmpty)
  }

  @Test func fullConfig() throws {
    let config = try parse("""
      [vault]
      address = "https://127.0.0.1:8200"
      ca_file = "\(directory)/ca.pem"
      server_name = "vault.example.com"
      timeout = "3s"
      [health]
      interval = "10s"
      fast_interval = "100ms"
      [unseal]
      key_file = "\(directory)/keys.json"
      foreign_progress_grace = "1m"
      after = "always"
      [[peer]]
      address = "https://10.0.0.2:8200"
      [[peer]]
      address = "https://10.0.0.3:8200"
      timeout = "1s"
      """)
    #expect(config.unseal.enabled)
    #expect(config.unseal.keySource == .file("\(directory)/keys.json"))
    #expect(config.unseal.foreignProgressGrace == .seconds(60))
    #expect(config.unseal.after == .always)
    #expect(config.peers.count == 2)
    // Peers inherit the CA and timeout of [vault], but not its unit.
    #expect(config.peers[0].caFile == "\(directory)/ca.pem")
    #expect(config.peers[0].timeout == .seconds(3))
    #expect(config.peers[0].unit == nil)
    #expect(config.peers[1].timeout == .seconds(1))
    #expect(config.nodes.map(\.name) == ["https://127.0.0.1:8200", "https://10.0.0.2:8200", "https://10.0.0.3:8200"])
  }

  @Test func unknownKeyNamesKeyAndLine() {
    let e = error("[vault]\naddress = \"https://127.0.0.1:8200\"\n\n[health]\ninterval = \"5s\"\nintreval = \"1s\"\n")
    #expect(e?.key == "health.intreval")
    #expect(e?.line == 6)
    #expect(e?.file == "/etc/vk.toml")
    #expect(e?.description.hasPrefix("/etc/vk.toml:6: health.intreval: unknown key") == true)
  }

  @Test func badDurationNamesKeyAndLine() {
    let e = error("[vault]\naddress = \"https://127.0.0.1:8200\"\ntimeout = \"5 seconds\"\n")
    #expect(e?.key == "vault.timeout")
    #expect(e?.line == 3)
    #expect(e?.message.contains("not a duration") == true)
  }

  @Test func wrongTypeIsReported() {
    let e = error("[vault]\naddress = \"https://127.0.0.1:8200\"\ntimeout = 5\n")
    #expect(e?.key == "vault.timeout")
    #expect(e?.message.contains("duration string") == true)
  }

  @Test func syntaxErrorHasLine() {
    let e = error("[vault]\naddress = \"https://127.0.0.1:8200\n")
    #expect(e?.line == 2)
    #expect(e?.message.contains("TOML syntax error") == true)
  }

  @Test func plainHTTPOnlyForLoopback() throws {
    #expect(error("[vault]\naddress = \"http://127.0.0.1:8200\"\n") == nil)
    #expect(error("[vault]\naddress = \"unix:///run/vault.sock\"\n") == nil)
    let e = error("[vault]\naddress = \"https://127.0.0.1:8200\"\n[[peer]]\naddress = \"http://10.0.0.2:8200\"\n")
    #expect(e?.key == "peer[0].address")
    #expect(e?.line == 4)
    #expect(e?.message.contains("plain http") == true)
  }

  @Test func missingFilesAreReported() {
    let e = error("[vault]\naddress = \"https://127.0.0.1:8200\"\nca_file = \"/nonexistent/ca.pem\"\n")
    #expect(e?.key == "vault.ca_file")
    #expect(e?.message.contains("does not exist") == true)
    let k = error("[vault]\naddress = \"https://127.0.0.1:8200\"\n[unseal]\nkey_file = \"/nonexistent/keys\"\n")
    #expect(k?.key == "unseal.key_file")
  }

  @Test func vaultTableRequired() {
    #expect(error("[health]\ninterval = \"5s\"\n")?.key == "vault")
    #expect(error("[vault]\ntimeout = \"5s\"\n")?.key == "vault.address")
  }

  @Test func keySourcesAreExclusive() {
    let e = error("[vault]\naddress = \"https://127.0.0.1:8200\"\n[unseal]\nkey_file = \"\(directory)/keys.json\"\ncredential = \"unseal-keys\"\n")
    #expect(e?.key == "unseal.credential")
    #expect(error("[vault]\naddress = \"https://127.0.0.1:8200\"\n[unseal]\nenabled = true\n")?.key == "unseal.enabled")
    #expect(error("[vault]\naddress = \"https://127.0.0.1:8200\"\n[unseal]\ncredential = \"../x\"\n")?.key == "unseal.credential")
  }

  @Test func credentialSource() throws {
    let config = try parse("[vault]\naddress = \"https://127.0.0.1:8200\"\n[unseal]\ncredential = \"unseal-keys\"\n")
    #expect(config.unseal.enabled)
    #expect(config.unseal.keySource == .credential("unseal-keys"))
  }

  @Test func intervalOrdering() {
    #expect(error("[vault]\naddress = \"https://127.0.0.1:8200\"\n[health]\ninterval = \"1s\"\nfast_interval = \"2s\"\n")?.key == "health.fast_interval")
  }

  @Test func duplicatePeer() {
    let e = error("[vault]\naddress = \"https://127.0.0.1:8200\"\n[[peer]]\naddress = \"https://127.0.0.1:8200\"\n")
    #expect(e?.key == "peer[0].address")
  }

  @Test func clientCertNeedsKey() {
    let e = error("[vault]\naddress = \"https://127.0.0.1:8200\"\nclient_cert_file = \"\(directory)/ca.pem\"\n")
    #expect(e?.key == "vault.client_key_file")
  }

  @Test func afterMustBeKnown() {
    #expect(error("[vault]\naddress = \"https://127.0.0.1:8200\"\n[unseal]\nkey_file = \"\(directory)/keys.json\"\nafter = \"never\"\n")?.key == "unseal.after")
  }

  @Test func loadReportsMissingFile() {
    #expect(throws: ConfigError.self) { try ConfigLoader().load(path: "/nonexistent/vaultkeeper.toml") }
  }

  @Test func effectiveConfigRoundTrips() throws {
    let config = try parse("[vault]\naddress = \"https://127.0.0.1:8200\"\n[unseal]\ncredential = \"unseal-keys\"\n[[peer]]\naddress = \"https://10.0.0.2:8200\"\n")
    let rendered = EffectiveConfig.render(config)
    #expect(rendered.contains("credential = \"unseal-keys\""))
    var reparsed = try ConfigLoader().parse(rendered, path: "/etc/vk.toml")
    reparsed.sourcePath = config.sourcePath
    #expect(reparsed == config)
  }
}

@Suite struct SnapshotConfigTests {
  let directory: String

  init() throws {
    directory = NSTemporaryDirectory() + "vk-snapcfg-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    _ = FileManager.default.createFile(atPath: directory + "/role", contents: Data("r".utf8))
  }

  func parse(_ snapshot: String) throws(ConfigError) -> Config {
    try ConfigLoader().parse("[vault]\naddress = \"https://127.0.0.1:8200\"\n[snapshot]\n" + snapshot, path: "/etc/vk.toml")
  }

  @Test func appRoleWithScheduleAndRetention() throws {
    let config = try parse("""
      directory = "\(directory)"
      role_id_file = "\(directory)/role"
      secret_id_credential = "approle-secret"
      interval = "6h"
      daily_at = "03:30"
      randomized_delay = "10m"
      keep_last = 24
      keep_daily = 7
      max_age = "90d"
      min_free_space = "2GiB"
      """)
    let s = try #require(config.snapshot)
    #expect(s.auth == .appRole(roleID: .file("\(directory)/role"), secretID: .credential("approle-secret"), mount: "approle"))
    #expect(s.schedule.interval == .seconds(6 * 3600))
    #expect(s.schedule.dailyAt?.description == "03:30")
    #expect(s.retention == RetentionPolicy(keepLast: 24, keepDaily: 7, maxAge: .seconds(90 * 86400)))
    #expect(s.minFreeBytes == 2 << 30)
    #expect(s.staleAfter == .seconds(3 * 6 * 3600))
    var reparsed = try ConfigLoader().parse(EffectiveConfig.render(config), path: "/etc/vk.toml")
    reparsed.sourcePath = config.sourcePath
    #expect(reparsed == config)
  }

  @Test func defaultsToHourly() throws {
    let s = try #require(try parse("directory = \"\(directory)\"\ntoken_credential = \"vault-token\"\n").snapshot)
    #expect(s.schedule.interval == .seconds(3600))
    #expect(s.auth == .token(.credential("vault-token")))
  }

  @Test func errorsNameTheKey() {
    func key(_ text: String) -> String? {
      do {
        _ = try parse(text)
        return nil
      } catch {
        return error.key
      }
    }
    #expect(key("token_credential = \"t\"\n") == "snapshot.directory")
    #expect(key("directory = \"\(directory)/missing\"\ntoken_credential = \"t\"\n") == "snapshot.directory")
    #expect(key("directory = \"\(directory)\"\n") == "snapshot")
    #expect(key("directory = \"\(directory)\"\nrole_id_file = \"\(directory)/role\"\n") == "snapshot.secret_id_file")
    #expect(key("directory = \"\(directory)\"\ntoken_credential = \"t\"\ndaily_at = \"25:00\"\n") == "snapshot.daily_at")
    #expect(key("directory = \"\(directory)\"\ntoken_credential = \"t\"\nmin_free_space = \"lots\"\n") == "snapshot.min_free_space")
    #expect(key("directory = \"\(directory)\"\ntoken_credential = \"t\"\nkeep_lats = 3\n") == "snapshot.keep_lats")
  }

  @Test(arguments: [("512MiB", Int64(536_870_912)), ("2GiB", Int64(2_147_483_648)), ("1GB", Int64(1_000_000_000)), ("0", Int64(0)), ("10 MiB", Int64(10_485_760))])
  func sizes(text: String, bytes: Int64) {
    #expect(SizeParsing.parse(text) == bytes)
  }

  @Test(arguments: ["", "MiB", "-1GiB", "1 parsec", "1e3"])
  func badSizes(text: String) {
    #expect(SizeParsing.parse(text) == nil)
  }
}

extension ConfigLoaderTests {
  /// Lines come from the parser, so keys written as dotted keys or in inline tables, and keys of
  /// later [[peer]] tables, are located exactly; a missing key points at its table's header.
  @Test(arguments: [
    ("vault.address = \"https://127.0.0.1:8200\"\nvault.timeout = \"soon\"\n", "vault.timeout", 2),
    ("vault = { address = \"https://127.0.0.1:8200\", timeout = 5 }\n", "vault.timeout", 1),
    ("[vault]\naddress = \"https://a:8200\"\n[[peer]]\naddress = \"https://b:8200\"\n\n[[peer]]\n# c\naddress = \"https://b:8200\"\n",
      "peer[1].address", 8),
    ("[vault]\naddress = \"https://127.0.0.1:8200\"\n\n[snapshot]\ninterval = \"1h\"\n", "snapshot.directory", 4),
    ("[vault]\naddress = \"https://127.0.0.1:8200\"\n[health]\n  interval = \"1s\"\n  \"fast_interval\" = \"2s\"\n", "health.fast_interval", 5),
  ])
  func errorsNameTheExactLine(text: String, key: String, line: Int) {
    let e = error(text)
    #expect(e?.key == key, "\(String(describing: e))")
    #expect(e?.line == line, "\(String(describing: e))")
  }

  @Test func aDateTimeWhereAStringIsWantedSaysSo() {
    let e = error("[vault]\naddress = 1979-05-27T07:32:00Z\n")
    #expect(e?.key == "vault.address")
    #expect(e?.line == 2)
    #expect(e?.message == "must be a string, got date-time")
  }

  /// Inputs the former parser (toml++) aborted the process on are syntax errors naming the line.
  @Test(arguments: [("[vault]\naddress = \"https://127.0.0.1:8200\"\n[?t]\n", 3), ("x = [1, }]\n", 1), ("a = 1\n[[ ?x]]\n", 2)])
  func syntaxErrorsNameFileAndLine(text: String, line: Int) {
    let e = error(text)
    #expect(e?.file == "/etc/vk.toml")
    #expect(e?.line == line)
    #expect(e?.key == nil)
    #expect(e?.message.hasPrefix("TOML syntax error: ") == true)
    #expect(e?.description.hasPrefix("/etc/vk.toml:\(line): TOML syntax error: ") == true)
  }

  @Test func aFileThatIsNotUTF8IsALocatedSyntaxError() throws {
    let path = directory + "/latin1.toml"
    let bytes = Array("[vault]\naddress = \"https://127.0.0.1:8200\"\nunit = \"caf".utf8) + [0xE9] + Array("\"\n".utf8)
    _ = FileManager.default.createFile(atPath: path, contents: Data(bytes), attributes: [.posixPermissions: 0o600])
    do {
      _ = try ConfigLoader().load(path: path)
      Issue.record("accepted a file that is not UTF-8")
    } catch {
      #expect(error.line == 3)
      #expect(error.message.contains("not valid UTF-8"))
    }
  }
}
