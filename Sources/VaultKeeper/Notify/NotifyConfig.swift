// SPDX-License-Identifier: Apache-2.0

/// One `[[notify]]` entry: where messages go (a webhook or a command), which ones, and the
/// hygiene that keeps routine blips out of them.
public struct NotifyConfig: Sendable, Equatable {
  public enum Target: Sendable, Equatable {
    case webhook(WebhookConfig)
    /// argv, run without a shell; the message's JSON on stdin.
    case command([String])
  }

  /// Names the target in the journal, metrics and `notify test`: `name`, else the webhook's
  /// host or the command's file name.
  public var name: String
  public var target: Target
  public var policy: AlertGate.Policy
  /// One delivery attempt: the HTTP request, or the command's run.
  public var timeout: Duration
  /// Messages waiting for this target; beyond it the oldest is dropped (and counted).
  public var queueSize: Int

  public static let defaultTimeout: Duration = .seconds(10)
  public static let defaultQueueSize = 100

  public init(name: String, target: Target, policy: AlertGate.Policy = .init(), timeout: Duration = defaultTimeout, queueSize: Int = defaultQueueSize) {
    self.name = name
    self.target = target
    self.policy = policy
    self.timeout = timeout
    self.queueSize = queueSize
  }
}

/// A webhook target's settings.
public struct WebhookConfig: Sendable, Equatable {
  public var url: WebhookURL
  public var format: NotifyFormat
  /// The only trust anchor for the receiver's certificate when set; the system's CAs otherwise.
  public var caFile: String?
  /// Extra request headers (`Name: value` lines), read at each delivery: tokens live there,
  /// not in the configuration.
  public var headers: SnapshotConfig.Credential?

  public init(url: WebhookURL, format: NotifyFormat = .json, caFile: String? = nil, headers: SnapshotConfig.Credential? = nil) {
    self.url = url
    self.format = format
    self.caFile = caFile
    self.headers = headers
  }

  /// Where the POST goes: the URL itself, or for ntfy the server root (the topic goes in the body).
  public var postURL: String { format == .ntfy ? url.ntfyRoot : url.text }
}

/// A webhook URL, checked: `https://`, or `http://` to loopback only (a token in a header must
/// not cross a network in the clear), no user name or password in it.
///
/// The path and query of a webhook URL are often its secret (Slack's `/services/T…/B…/x…`), so
/// messages and the journal show only `display` (`https://hooks.slack.com/…`).
public struct WebhookURL: Sendable, Equatable {
  public var text: String
  public var scheme: String
  public var host: String
  /// Everything after the authority, `/` at least.
  public var path: String
  /// Scheme, host and port, as the transport connects to them.
  public var origin: VaultAddress

  public init?(_ text: String) {
    guard WebhookURL.problem(text) == nil, let parsed = WebhookURL.split(text) else { return nil }
    self.text = text
    (scheme, host, path) = parsed
    let authority = text.dropFirst(parsed.0.count + 3).prefix { $0 != "/" && $0 != "?" && $0 != "#" }
    guard case .success(let origin) = VaultAddress.parse("\(parsed.0)://\(authority)") else { return nil }
    self.origin = origin
  }

  /// `https://hooks.slack.com/…`: no path, no query.
  public var display: String { "\(scheme)://\(hostAndPort)\(path == "/" ? "/" : "/…")" }

  var hostAndPort: String {
    let afterScheme = text.dropFirst(scheme.count + 3)
    return String(afterScheme.prefix { $0 != "/" && $0 != "?" && $0 != "#" })
  }

  /// ntfy: `https://ntfy.sh/alerts` publishes to topic `alerts` at `https://ntfy.sh/`.
  public var ntfyTopic: String { String(path.split(separator: "/").last ?? "") }
  public var ntfyRoot: String {
    var segments = path.split(separator: "/")
    if !segments.isEmpty { segments.removeLast() }
    return "\(scheme)://\(hostAndPort)/" + segments.map { "\($0)/" }.joined()
  }

  private static func split(_ text: String) -> (String, String, String)? {
    guard let colon = text.firstIndex(of: ":") else { return nil }
    let scheme = text[..<colon].lowercased()
    let rest = text[colon...].dropFirst(3)
    let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
    var path = String(rest.dropFirst(authority.count))
    if path.isEmpty || !path.hasPrefix("/") { path = "/" + path }
    var host = Substring(authority)
    if host.hasPrefix("[") {
      guard let close = host.firstIndex(of: "]") else { return nil }
      host = host[host.index(after: host.startIndex)..<close]
    } else if let portColon = host.lastIndex(of: ":") {
      host = host[..<portColon]
    }
    return (scheme, host.lowercased(), path)
  }

  /// Why `text` is not a usable webhook URL; nil when it is.
  public static func problem(_ text: String) -> String? {
    guard text.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value != 0x7F }) else {
      return "must not contain spaces or control characters"
    }
    let lower = text.lowercased()
    guard lower.hasPrefix("https://") || lower.hasPrefix("http://") else { return "must start with https://" }
    guard let (scheme, host, _) = split(text), !host.isEmpty else { return "names no host" }
    let authority = text.dropFirst(scheme.count + 3).prefix { $0 != "/" && $0 != "?" && $0 != "#" }
    if authority.contains("@") {
      return "must not carry a user name or password: put an Authorization header in headers_file or headers_credential"
    }
    if let portColon = authority.lastIndex(of: ":"), !authority.hasSuffix("]") {
      guard let port = Int(authority[authority.index(after: portColon)...]), (1...65535).contains(port) else { return "has a bad port" }
    }
    if case .failure(let failure) = VaultAddress.parse("\(scheme)://\(authority)") { return failure.reason }
    if scheme == "http", !VaultAddress.isLoopbackHost(host) {
      return "must use https:// (plain http:// only to this machine's loopback): a webhook's URL and headers carry its secret"
    }
    return nil
  }
}

extension TableReaderKeys {
  static let notify = [
    "name", "webhook", "command", "format", "ca_file", "headers_file", "headers_credential", "events", "min_severity", "min_failures",
    "min_duration", "timeout", "queue_size",
  ]
}

extension TableReader {
  /// Parses the `[[notify]]` array of tables; empty when there is none.
  func notify(_ value: TOMLValue?) throws(ConfigError) -> [NotifyConfig] {
    guard let value else { return [] }
    guard let array = value.array else { throw error("notify", "must be an array of tables, written [[notify]]") }
    var entries: [NotifyConfig] = []
    for index in 0..<array.count {
      let at = "notify[\(index)]"
      guard let table = array[index].table else { throw error(at, "must be a table") }
      entries.append(try notifyEntry(table, at: at))
    }
    var seen: Set<String> = []
    for (index, entry) in entries.enumerated() where !seen.insert(entry.name).inserted {
      let key = array[index].table?["name"] != nil ? "notify[\(index)].name" : "notify[\(index)]"
      throw error(key, "another [[notify]] is also called \"\(entry.name)\": give each a distinct name")
    }
    return entries
  }

  private func notifyEntry(_ table: TOMLTable, at: String) throws(ConfigError) -> NotifyConfig {
    try allowOnly(table, keys: TableReaderKeys.notify, at: at)
    let webhook = try string(table, "webhook", at: at)
    let command = try strings(table, "command", at: at)
    let target: NotifyConfig.Target
    var defaultName: String
    switch (webhook, command) {
    case (.some, .some): throw error("\(at).command", "set webhook or command, not both")
    case (nil, nil): throw error(at, "needs webhook = \"https://…\" or command = [\"/path/to/program\", …]")
    case (.some(let text), nil):
      if let problem = WebhookURL.problem(text) { throw error("\(at).webhook", problem) }
      guard let url = WebhookURL(text) else { throw error("\(at).webhook", "is not a URL") }
      var format = NotifyFormat.json
      if let name = try string(table, "format", at: at) {
        guard let known = NotifyFormat(rawValue: name) else {
          throw error("\(at).format", "must be one of \(NotifyFormat.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")), got \"\(name)\"")
        }
        format = known
      }
      if format == .ntfy {
        // The topic goes into the JSON body and the POST to the server root: a query (ntfy's
        // ?auth=) would end up in the topic, and be lost for the authentication.
        guard !text.contains("?"), !text.contains("#") else {
          throw error("\(at).webhook", "an ntfy URL is https://ntfy.example/TOPIC, without ?…: put an access token in headers_file (Authorization: Bearer …)")
        }
        guard !url.ntfyTopic.isEmpty else { throw error("\(at).webhook", "an ntfy URL names its topic: https://ntfy.example/TOPIC") }
      }
      let caFile = try trustedFile(table, "ca_file", at: at, decides: "which receivers get the notifications and their headers")
      let headers = try credential(table, "headers_file", "headers_credential", at: at)
      target = .webhook(WebhookConfig(url: url, format: format, caFile: caFile, headers: headers))
      defaultName = url.host
    case (nil, .some(let argv)):
      for key in ["format", "ca_file", "headers_file", "headers_credential"] where table[key] != nil {
        throw error("\(at).\(key)", "only applies to a webhook")
      }
      guard argv[0].hasPrefix("/") else { throw error("\(at).command", "the program must be an absolute path, got \"\(argv[0])\"") }
      switch FileAccess.kind(path: argv[0]) {
      case .regular: break
      case .missing: throw error("\(at).command", "\(argv[0]) does not exist")
      case .other: throw error("\(at).command", "\(argv[0]) is not a regular file")
      case .inaccessible(let reason): throw error("\(at).command", "cannot access \(argv[0]): \(reason)")
      }
      target = .command(argv)
      defaultName = String(argv[0].split(separator: "/").last ?? "command")
    }
    if let name = try string(table, "name", at: at) {
      guard !name.isEmpty, name.count <= 64, name.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F }) else {
        throw error("\(at).name", "must be 1 to 64 printable characters")
      }
      defaultName = name
    }

    var policy = AlertGate.Policy()
    if let names = try strings(table, "events", at: at) {
      var events: Set<AlertEvent> = []
      let allowed = AlertEvent.allCases.filter { $0 != .test }
      for name in names {
        guard let event = AlertEvent(rawValue: name), event != .test else {
          throw error("\(at).events", "unknown event \"\(name)\" (known: \(allowed.map(\.rawValue).joined(separator: ", ")))")
        }
        events.insert(event)
      }
      policy.events = events
    }
    if let name = try string(table, "min_severity", at: at) {
      guard let severity = AlertSeverity(rawValue: name) else {
        throw error("\(at).min_severity", "must be \"info\", \"warning\" or \"critical\", got \"\(name)\"")
      }
      policy.minSeverity = severity
    }
    policy.minFailures = try int(table, "min_failures", at: at, range: 1...10_000) ?? policy.minFailures
    policy.minDuration = try duration(table, "min_duration", at: at, minimum: .zero) ?? policy.minDuration
    let timeout = try duration(table, "timeout", at: at, minimum: .milliseconds(100)) ?? NotifyConfig.defaultTimeout
    let queueSize = try int(table, "queue_size", at: at, range: 1...10_000) ?? NotifyConfig.defaultQueueSize
    return NotifyConfig(name: defaultName, target: target, policy: policy, timeout: timeout, queueSize: queueSize)
  }
}
