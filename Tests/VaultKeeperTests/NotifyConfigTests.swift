// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing

@testable import VaultKeeper

@Suite struct NotifyConfigTests {
  static let head = "[vault]\naddress = \"https://127.0.0.1:8200\"\n"

  func notify(_ tables: String) throws(ConfigError) -> [NotifyConfig] {
    try ConfigLoader().parse(Self.head + tables, path: "/etc/vk.toml").notify
  }

  func error(_ tables: String) -> ConfigError? {
    do {
      _ = try notify(tables)
      return nil
    } catch {
      return error
    }
  }

  @Test func defaults() throws {
    let entries = try notify("[[notify]]\nwebhook = \"https://hooks.example.com/services/T0/B0/secret\"\n")
    #expect(entries.count == 1)
    let entry = entries[0]
    #expect(entry.name == "hooks.example.com")
    #expect(entry.policy == AlertGate.Policy())
    #expect(entry.policy.events == Set(AlertEvent.allCases).subtracting([.unsealed, .test]))
    #expect(entry.policy.minSeverity == .warning && entry.policy.minFailures == 3 && entry.policy.minDuration == .seconds(60))
    #expect(entry.timeout == .seconds(10) && entry.queueSize == 100)
    guard case .webhook(let webhook) = entry.target else {
      Issue.record("expected a webhook")
      return
    }
    #expect(webhook.format == .json && webhook.caFile == nil && webhook.headers == nil)
    #expect(webhook.url.display == "https://hooks.example.com/…", "the path is often the webhook's secret")
    #expect(webhook.postURL == "https://hooks.example.com/services/T0/B0/secret")
    #expect(AlertDispatcher.describe(entry) == "https://hooks.example.com/…")
  }

  @Test func everyKey() throws {
    let entries = try notify(
      """
      [[notify]]
      name = "phone"
      webhook = "https://ntfy.example.net:8443/vault-alerts"
      format = "ntfy"
      headers_credential = "ntfy-token"
      events = ["sealed", "unreachable", "unsealed"]
      min_severity = "critical"
      min_failures = 5
      min_duration = "0s"
      timeout = "3s"
      queue_size = 7

      [[notify]]
      command = ["/bin/true", "--flag"]
      """)
    #expect(entries.map(\.name) == ["phone", "true"])
    guard case .webhook(let webhook) = entries[0].target else {
      Issue.record("expected a webhook")
      return
    }
    #expect(webhook.format == .ntfy && webhook.headers == .credential("ntfy-token"))
    #expect(webhook.url.ntfyTopic == "vault-alerts" && webhook.postURL == "https://ntfy.example.net:8443/")
    #expect(webhook.url.origin.port == 8443 && webhook.url.origin.host == "ntfy.example.net")
    #expect(entries[0].policy == AlertGate.Policy(events: [.sealed, .unreachable, .unsealed], minSeverity: .critical, minFailures: 5, minDuration: .zero))
    #expect(entries[0].timeout == .seconds(3) && entries[0].queueSize == 7)
    #expect(entries[1].target == .command(["/bin/true", "--flag"]))
    #expect(AlertDispatcher.describe(entries[1]) == "/bin/true")
  }

  /// `config check` prints the entries; a command reads back the same, a webhook's URL is shown
  /// without its path (often its secret).
  @Test func effectiveConfig() throws {
    let webhook = Self.head + """
      [[notify]]
      webhook = "https://hooks.example.com/services/T0/B0/s3cr3t?token=abc"
      format = "slack"
      headers_file = "/etc/hostname"
      min_duration = "0s"
      """
    let rendered = EffectiveConfig.render(try ConfigLoader().parse(webhook, path: "/etc/vk.toml"))
    #expect(rendered.contains(
      "[[notify]]\nname = \"hooks.example.com\"\n# webhook = \"https://hooks.example.com/…\" (the path is not shown: it is often the webhook's secret)\nformat = \"slack\"\nheaders_file = \"/etc/hostname\""))
    #expect(rendered.contains("min_duration = \"0s\""))
    #expect(!rendered.contains("s3cr3t") && !rendered.contains("token=abc"))

    let command = Self.head + """
      [[notify]]
      name = "pager"
      command = ["/bin/sh", "-c", "cat > /dev/null"]
      events = ["crashed"]
      """
    let config = try ConfigLoader().parse(command, path: "/etc/vk.toml")
    let again = try ConfigLoader().parse(EffectiveConfig.render(config), path: "/etc/vk.toml")
    #expect(again.notify == config.notify)
  }

  @Test(arguments: [
    ("webhook = \"http://hooks.example.com/x\"", "notify[0].webhook", "must use https://"),
    ("webhook = \"https://user:pass@hooks.example.com/x\"", "notify[0].webhook", "must not carry a user name or password"),
    ("webhook = \"ftp://hooks.example.com/x\"", "notify[0].webhook", "must start with https://"),
    ("webhook = \"https://hooks.example.com:99999/x\"", "notify[0].webhook", "bad port"),
    ("webhook = \"https:///x\"", "notify[0].webhook", "names no host"),
    ("webhook = \"https://a b/x\"", "notify[0].webhook", "spaces or control characters"),
    ("webhook = \"https://ntfy.example.net/\"\nformat = \"ntfy\"", "notify[0].webhook", "names its topic"),
    ("webhook = \"https://ntfy.example.net/alerts?auth=s3cr3t\"\nformat = \"ntfy\"", "notify[0].webhook", "put an access token in headers_file"),
    ("webhook = \"https://h.example/x\"\nformat = \"teams\"", "notify[0].format", "must be one of \"json\", \"slack\", \"ntfy\""),
    ("webhook = \"https://h.example/x\"\ncommand = [\"/bin/true\"]", "notify[0].command", "not both"),
    ("name = \"x\"", "notify[0]", "needs webhook"),
    ("command = [\"true\"]", "notify[0].command", "absolute path"),
    ("command = [\"/nonexistent/page-me\"]", "notify[0].command", "does not exist"),
    ("command = []", "notify[0].command", "is empty"),
    ("command = [\"/bin/true\"]\nformat = \"json\"", "notify[0].format", "only applies to a webhook"),
    ("command = [\"/bin/true\"]\nevents = [\"sealed\", \"seald\"]", "notify[0].events", "unknown event \"seald\""),
    ("command = [\"/bin/true\"]\nevents = [\"test\"]", "notify[0].events", "unknown event \"test\""),
    ("command = [\"/bin/true\"]\nmin_severity = \"high\"", "notify[0].min_severity", "must be \"info\", \"warning\" or \"critical\""),
    ("command = [\"/bin/true\"]\nmin_failures = 0", "notify[0].min_failures", "between 1 and 10000"),
    ("command = [\"/bin/true\"]\ntimeout = \"10ms\"", "notify[0].timeout", "at least"),
    ("command = [\"/bin/true\"]\nqueue_size = 0", "notify[0].queue_size", "between 1 and 10000"),
    ("webhook = \"https://h.example/x\"\nheaders_file = \"h\"", "notify[0].headers_file", "absolute path"),
    ("webhook = \"https://h.example/x\"\nca_file = \"/nonexistent/ca.pem\"", "notify[0].ca_file", "does not exist"),
    ("command = [\"/bin/true\"]\ncolour = \"red\"", "notify[0].colour", "unknown key"),
  ])
  func errorsNameTheKeyAndLine(entry: String, key: String, phrase: String) throws {
    let failure = try #require(error("[[notify]]\n" + entry + "\n"))
    #expect(failure.file == "/etc/vk.toml")
    #expect(failure.key == key, "\(failure)")
    #expect(failure.message.contains(phrase), "\(failure.message)")
    #expect(failure.line != nil, "\(failure)")
  }

  @Test func namesAreDistinct() throws {
    let failure = try #require(error("[[notify]]\ncommand = [\"/bin/true\"]\n[[notify]]\ncommand = [\"/bin/true\", \"x\"]\n"))
    #expect(failure.key == "notify[1]" && failure.message.contains("another [[notify]] is also called \"true\""))
    let named = try #require(error("[[notify]]\nname = \"a\"\ncommand = [\"/bin/true\"]\n[[notify]]\nname = \"a\"\ncommand = [\"/bin/true\"]\n"))
    #expect(named.key == "notify[1].name" && named.line == 7)
    #expect(throws: ConfigError.self) { try ConfigLoader().parse("notify = 3\n" + Self.head, path: "/etc/vk.toml") }
    do {
      _ = try ConfigLoader().parse("notify = 3\n" + Self.head, path: "/etc/vk.toml")
    } catch {
      #expect(error.key == "notify" && error.message.contains("array of tables") && error.line == 1)
    }
  }

  /// The secret part of a webhook URL never appears in a configuration error.
  @Test func errorsKeepTheURLPathOut() throws {
    let failure = try #require(error("[[notify]]\nwebhook = \"http://hooks.example.com/services/T0/B0/s3cr3t\"\n"))
    #expect(!"\(failure)".contains("s3cr3t"))
  }

  @Test func loopbackMayUsePlainHTTP() throws {
    for url in ["http://127.0.0.1:8080/hook", "http://[::1]:8080/hook", "http://localhost/hook", "http://127.0.0.53/x"] {
      #expect(try notify("[[notify]]\nwebhook = \"\(url)\"\n").count == 1, "\(url)")
    }
    let v6 = try notify("[[notify]]\nwebhook = \"https://[2001:db8::7]:8443/a/b?c=d\"\n")
    guard case .webhook(let webhook) = v6[0].target else {
      Issue.record("expected a webhook")
      return
    }
    #expect(webhook.url.host == "2001:db8::7" && webhook.url.origin.port == 8443 && webhook.url.display == "https://[2001:db8::7]:8443/…")
  }
}

@Suite struct WebhookHeadersTests {
  @Test func parsesNameValueLines() throws {
    let text = "# tokens\nAuthorization: Bearer abc.def\r\n\n  X-Priority:\t5  \nTitle: Vault\n"
    let headers = try WebhookHeaders.parse(Array(text.utf8)).get()
    #expect(headers.map(\.name) == ["Authorization", "X-Priority", "Title"])
    #expect(headers.map { $0.value.withUnsafeBytes { String(decoding: $0, as: UTF8.self) } } == ["Bearer abc.def", "5", "Vault"])
  }

  @Test(arguments: [
    ("Authorization Bearer s3cr3t", "line 1: expected Name: value"),
    ("Bad Name: s3cr3t", "line 1: not a header name"),
    ("# c\nHost: s3cr3t", "line 2: Host is set by vaultkeeper itself"),
    ("X-Token: s3\u{01}cr3t", "line 1: the value of X-Token holds a control character"),
  ])
  func errorsNameTheLineNotTheValue(text: String, expected: String) {
    guard case .failure(let problem) = WebhookHeaders.parse(Array(text.utf8)) else {
      Issue.record("accepted \(text)")
      return
    }
    #expect(problem.message == "webhook headers, \(expected)")
    #expect(!problem.message.contains("s3cr3t"))
  }

  @Test func aMissingCredentialSaysWhere() {
    guard case .failure(let problem) = WebhookHeaders.read(.credential("hooks"), environment: [:]) else {
      Issue.record("read a credential without $CREDENTIALS_DIRECTORY")
      return
    }
    #expect(problem.message.contains("$CREDENTIALS_DIRECTORY"))
  }
}

@Suite struct AlertPayloadTests {
  let message: AlertMessage = {
    var m = AlertMessage(
      key: "sealed https://10.0.0.2:8200", event: .sealed, status: .resolved, severity: .critical,
      summary: "vault https://10.0.0.2:8200 is sealed and not being unsealed: wrong", node: "https://10.0.0.2:8200", since: 1_800_000_000,
      time: 1_800_000_240)
    m.droppedBefore = 2
    return m
  }()

  func object(_ payload: AlertPayload) throws -> [String: Any] {
    try #require(JSONSerialization.jsonObject(with: Data(payload.body)) as? [String: Any])
  }

  @Test func ourSchema() throws {
    let payload = AlertPayload.render(message, format: .json, host: "vault1")
    #expect(payload.contentType == "application/json")
    let json = try object(payload)
    #expect(Set(json.keys) == [
      "version", "event", "status", "severity", "summary", "title", "key", "node", "host", "since", "time", "duration_seconds", "dropped_before",
    ])
    #expect(json["version"] as? Int == 1 && json["event"] as? String == "sealed" && json["status"] as? String == "resolved")
    #expect(json["title"] as? String == "[RESOLVED] vault https://10.0.0.2:8200 is sealed and not being unsealed: wrong")
    #expect(json["since"] as? String == "2027-01-15T08:00:00Z" && json["time"] as? String == "2027-01-15T08:04:00Z")
    #expect(json["duration_seconds"] as? Int == 240 && json["dropped_before"] as? Int == 2 && json["host"] as? String == "vault1")
    #expect(String(decoding: payload.body, as: UTF8.self).contains("\"node\":\"https://10.0.0.2:8200\""), "slashes unescaped")
  }

  @Test func slackAndNtfy() throws {
    let slack = try object(AlertPayload.render(message, format: .slack, host: "vault1"))
    #expect(slack as? [String: String] == [
      "text": "[RESOLVED] vault https://10.0.0.2:8200 is sealed and not being unsealed: wrong\nlasted 4m, on vault1\n"
        + "(2 earlier messages dropped: this target's queue was full)"
    ])
    var problem = message
    problem.status = .problem
    problem.droppedBefore = 0
    let ntfy = try object(AlertPayload.render(problem, format: .ntfy, host: "vault1", ntfyTopic: "vault-alerts"))
    #expect(ntfy["topic"] as? String == "vault-alerts" && ntfy["priority"] as? Int == 5 && ntfy["tags"] as? [String] == ["rotating_light"])
    #expect(ntfy["title"] as? String == "[CRITICAL] vault https://10.0.0.2:8200 is sealed and not being unsealed: wrong")
    #expect(ntfy["message"] as? String == "on vault1")
    let resolved = try object(AlertPayload.render(message, format: .ntfy, host: "vault1", ntfyTopic: "t"))
    #expect(resolved["priority"] as? Int == 3 && resolved["tags"] as? [String] == ["white_check_mark"])
  }

  @Test func commandEnvironment() {
    #expect(CommandNotifySender.environment(message) == [
      "VAULTKEEPER_EVENT=sealed", "VAULTKEEPER_STATUS=resolved", "VAULTKEEPER_SEVERITY=critical", "VAULTKEEPER_KEY=sealed https://10.0.0.2:8200",
      "VAULTKEEPER_TITLE=[RESOLVED] vault https://10.0.0.2:8200 is sealed and not being unsealed: wrong", "VAULTKEEPER_NODE=https://10.0.0.2:8200",
    ])
  }
}
