// SPDX-License-Identifier: Apache-2.0
import Logging

/// A journal-worthy event: what to say, how loud, and the fixed MESSAGE_ID to alert on.
public struct OperatorEvent: Sendable, Equatable {
  public var level: Logger.Level
  public var message: String
  public var id: MessageID

  public init(level: Logger.Level, message: String, id: MessageID) {
    self.level = level
    self.message = message
    self.id = id
  }
}

/// Decides which state changes are worth a journal line. Pure. One line per *transition*
/// (never per healthy poll), at the priority an operator would choose: sealed is a warning,
/// unreachable becomes an error once it persists (`escalate`, decided by the caller: at least
/// `unreachable_error_after` failures in a row *and* longer than a restart takes, so a routine
/// Vault restart stays a warning), recovery is a notice.
public enum TransitionReport {
  public static func event(node: String, previous: NodeState?, observation: HealthObservation, consecutiveFailures: Int, escalate: Bool)
    -> OperatorEvent?
  {
    let state = observation.state
    let version = observation.version.map { " (\($0))" } ?? ""
    let problem = observation.problem.map { ": \($0)" } ?? ""
    if state.isFailure {
      let id: MessageID = state == .unreachable ? .unreachable : .protocolError
      let what = state == .unreachable ? "is unreachable" : "gave an answer that is not Vault's"
      if previous != state {
        return OperatorEvent(level: escalate ? .error : .warning, message: "vault at \(node) \(what)\(problem)", id: id)
      }
      if escalate {
        return OperatorEvent(level: .error, message: "vault at \(node) \(what) for \(consecutiveFailures) checks in a row\(problem)", id: id)
      }
      return nil
    }
    guard previous != state else { return nil }
    if let previous, previous.isFailure {
      return OperatorEvent(level: .notice, message: "vault at \(node) answers again: \(state.name)\(version)", id: .recovered)
    }
    switch state {
    case .sealed:
      return OperatorEvent(level: .warning, message: "vault at \(node) is sealed\(version)", id: .sealed)
    case .uninitialized:
      return OperatorEvent(level: .warning, message: "vault at \(node) is not initialized; nothing to unseal until `vault operator init` has run (a Raft node joining with retry_join: until its join reaches the leader)", id: .stateChanged)
    case .removed:
      return OperatorEvent(level: .error, message: "vault at \(node) was removed from the Raft cluster", id: .stateChanged)
    case .standbyUnhealthy:
      return OperatorEvent(level: .warning, message: "vault at \(node) is a standby that lost contact with the active node", id: .stateChanged)
    default:
      let verb = previous == nil ? "is" : "is now"
      return OperatorEvent(level: previous == nil ? .info : .notice, message: "vault at \(node) \(verb) \(state.name)\(version)", id: .stateChanged)
    }
  }
}
