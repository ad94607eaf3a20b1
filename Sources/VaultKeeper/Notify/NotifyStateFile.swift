// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A problem a target was told about and has not heard "resolved" for yet. Kept in
/// `$STATE_DIRECTORY/notify-state.json` so that a restart (a new credential needs one) neither
/// forgets to resolve it nor reports it again.
public struct OpenProblem: Sendable, Equatable, Codable {
  public var key: String
  public var event: AlertEvent
  public var severity: AlertSeverity
  public var summary: String
  public var node: String?
  /// When it was first seen (Unix seconds).
  public var since: Double

  public init(key: String, event: AlertEvent, severity: AlertSeverity, summary: String, node: String?, since: Double) {
    self.key = key
    self.event = event
    self.severity = severity
    self.summary = summary
    self.node = node
    self.since = since
  }
}

/// The file of open problems by target name. Read once at start; written (atomically, from a
/// thread of its own) whenever what is open changes. A file that cannot be read is a fresh start:
/// the worst case is a problem reported again, never a secret lost (it holds summaries only).
public struct NotifyStateFile: Sendable {
  public var path: String

  public init(path: String) {
    self.path = path
  }

  /// `$STATE_DIRECTORY/notify-state.json`; nil without a state directory (a run by hand).
  public static func path(environment: [String: String]) -> String? {
    guard let state = environment["STATE_DIRECTORY"]?.split(separator: ":").first, !state.isEmpty else { return nil }
    return "\(state)/notify-state.json"
  }

  struct Contents: Codable {
    var version = 1
    var targets: [String: [OpenProblem]]
  }

  public func load() -> [String: [OpenProblem]] {
    guard let bytes = try? FileAccess.readBytes(path: path, limit: 1 << 20),
      let contents = try? JSONDecoder().decode(Contents.self, from: Data(bytes)), contents.version == 1
    else { return [:] }
    return contents.targets
  }

  public func save(_ open: [String: [OpenProblem]]) throws(FileAccess.Failure) {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    let data = (try? encoder.encode(Contents(targets: open))) ?? Data("{}".utf8)
    try FileAccess.writeAtomically(path: path, bytes: Array(data) + [0x0A], mode: 0o600, durable: true)
  }
}
