// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// How a webhook wants its body (`[[notify]] format`).
public enum NotifyFormat: String, Sendable, Equatable, CaseIterable {
  /// Our own schema (`AlertPayload.Document`, docs/notifications.md).
  case json
  /// `{"text": …}`: Slack, Mattermost and Rocket.Chat incoming webhooks.
  case slack
  /// ntfy's JSON publishing: the topic URL's server root gets `{"topic", "title", "message", …}`.
  case ntfy
}

/// A message made ready for a target: the body and its content type.
public struct AlertPayload: Sendable, Equatable {
  public var body: [UInt8]
  public var contentType: String

  /// Our own JSON schema, version 1. Also what a `command` target reads on stdin.
  public struct Document: Sendable, Equatable, Codable {
    public var version = 1
    public var event: AlertEvent
    public var status: AlertStatus
    public var severity: AlertSeverity
    /// One line for people, without the status prefix.
    public var summary: String
    /// `[CRITICAL] summary`, `[RESOLVED] summary`, …
    public var title: String
    /// Names the problem: every message about it carries the same key.
    public var key: String
    public var node: String?
    /// The machine vaultkeeper runs on.
    public var host: String
    /// When the problem was first seen, and this message's time (RFC 3339, UTC).
    public var since: String
    public var time: String
    /// How long the problem has lasted (for `resolved`: how long it lasted).
    public var durationSeconds: Int
    /// Messages dropped from this target's queue before this one (it was full).
    public var droppedBefore: Int

    enum CodingKeys: String, CodingKey {
      case version, event, status, severity, summary, title, key, node, host, since, time
      case durationSeconds = "duration_seconds"
      case droppedBefore = "dropped_before"
    }

    public init(_ message: AlertMessage, host: String) {
      event = message.event
      status = message.status
      severity = message.severity
      summary = message.summary
      title = message.title
      key = message.key
      node = message.node
      self.host = host
      since = Date(timeIntervalSince1970: message.since).formatted(.iso8601)
      time = Date(timeIntervalSince1970: message.time).formatted(.iso8601)
      durationSeconds = Int(max(message.time - message.since, 0).rounded())
      droppedBefore = message.droppedBefore
    }
  }

  /// The lines under the title: where, since when, what was dropped.
  static func detailLines(_ message: AlertMessage, host: String) -> [String] {
    var lines: [String] = []
    let lasted = DurationParsing.humanize(.seconds(max(message.time - message.since, 0)))
    switch message.status {
    case .resolved: lines.append("lasted \(lasted), on \(host)")
    case .reminder: lines.append("for \(lasted) now, on \(host)")
    case .problem, .info: lines.append("on \(host)")
    }
    if message.droppedBefore > 0 {
      lines.append("(\(message.droppedBefore) earlier message\(message.droppedBefore == 1 ? "" : "s") dropped: this target's queue was full)")
    }
    return lines
  }

  public static func render(_ message: AlertMessage, format: NotifyFormat, host: String, ntfyTopic: String? = nil) -> AlertPayload {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    switch format {
    case .json:
      return AlertPayload(body: encode(Document(message, host: host), encoder), contentType: "application/json")
    case .slack:
      let text = ([message.title] + detailLines(message, host: host)).joined(separator: "\n")
      return AlertPayload(body: encode(["text": text], encoder), contentType: "application/json")
    case .ntfy:
      let publish = NtfyPublish(
        topic: ntfyTopic ?? "", title: message.title, message: detailLines(message, host: host).joined(separator: "\n"),
        priority: ntfyPriority(message), tags: [ntfyTag(message)])
      return AlertPayload(body: encode(publish, encoder), contentType: "application/json")
    }
  }

  private struct NtfyPublish: Encodable {
    var topic: String
    var title: String
    var message: String
    var priority: Int
    var tags: [String]
  }

  /// ntfy's 1–5: a critical problem is urgent (5), a warning high (4), the rest default (3).
  static func ntfyPriority(_ message: AlertMessage) -> Int {
    guard message.status == .problem || message.status == .reminder else { return 3 }
    switch message.severity {
    case .critical: return 5
    case .warning: return 4
    case .info: return 3
    }
  }

  /// An emoji short code ntfy shows before the title.
  static func ntfyTag(_ message: AlertMessage) -> String {
    if message.status == .resolved { return "white_check_mark" }
    switch message.severity {
    case .critical: return "rotating_light"
    case .warning: return "warning"
    case .info: return "information_source"
    }
  }

  private static func encode(_ value: some Encodable, _ encoder: JSONEncoder) -> [UInt8] {
    // Strings, numbers and enums only: encoding cannot fail.
    (try? encoder.encode(value)).map { Array($0) } ?? Array("{}".utf8)
  }
}
