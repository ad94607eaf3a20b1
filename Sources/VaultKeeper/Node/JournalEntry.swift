// SPDX-License-Identifier: Apache-2.0
import Logging

/// A journal line a node decision asks for. The loop writes it, adding the node's address
/// (`vault.addr`) and the MESSAGE_ID; deciding what to say stays free of I/O.
public struct JournalEntry: Sendable, Equatable {
  public var level: Logger.Level
  public var message: String
  /// Nil for plain informational lines that nobody alerts on.
  public var id: MessageID?
  /// Journal fields beyond the address, e.g. `vault.state`, `vault.unseal_shares`.
  public var fields: [String: String]

  public init(level: Logger.Level, message: String, id: MessageID? = nil, fields: [String: String] = [:]) {
    self.level = level
    self.message = message
    self.id = id
    self.fields = fields
  }

  /// An operator event, with the node's state and version when they belong to it.
  public init(_ event: OperatorEvent, state: NodeState? = nil, version: String? = nil, fields: [String: String] = [:]) {
    var all = fields
    if let state { all["vault.state"] = state.name }
    if let version { all["vault.version"] = version }
    self.init(level: event.level, message: event.message, id: event.id, fields: all)
  }
}
