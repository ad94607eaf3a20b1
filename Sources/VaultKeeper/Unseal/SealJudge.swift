/// Tells a deliberate seal from a restart. Sealing Vault is an operator's emergency brake: if
/// a node becomes sealed while its Vault process kept running, we must not undo it.
///
/// Evidence, strongest first:
/// 1. systemd's MainPID of the Vault unit (over D-Bus): same PID as when we last saw it
///    unsealed → the process kept running → deliberate.
/// 2. Without a PID: the sealed answer came over the same kept-alive connection, and there was
///    no unreachable period or closed connection since the node was last unsealed →
///    deliberate. Anything else means Vault went away in between → restart.
public struct SealJudge: Sendable, Equatable {
  public enum Verdict: Sendable, Equatable {
    /// Not seen unsealed since we started (or since the last restart): unseal.
    case startup
    case restart
    case deliberate
    /// `unseal.after = "always"`.
    case always
  }

  public var after: UnsealConfig.After
  /// We have seen this node unsealed since we started.
  private(set) var seenUnsealed = false
  /// Vault's main PID when last seen unsealed (0 = unknown).
  private(set) var pidWhenUnsealed = 0
  /// The connection broke or the node was unreachable since it was last seen unsealed.
  private(set) var interrupted = false

  public init(after: UnsealConfig.After) { self.after = after }

  /// Feed every health observation, with the unit's main PID when known (0 otherwise).
  public mutating func observe(_ observation: HealthObservation, mainPID: Int) {
    switch observation.state {
    case .unreachable, .protocolError:
      interrupted = true
    case .sealed, .uninitialized:
      break
    default:
      seenUnsealed = true
      pidWhenUnsealed = mainPID
      interrupted = false
    }
  }

  /// The connection to the node was closed by the server, or systemd restarted the unit.
  public mutating func connectionLost() { interrupted = true }

  /// The judgement for a sealed observation.
  public func verdict(sealedObservation: HealthObservation, mainPID: Int) -> Verdict {
    if after == .always { return .always }
    guard seenUnsealed else { return .startup }
    if pidWhenUnsealed > 0 && mainPID > 0 {
      return pidWhenUnsealed == mainPID ? .deliberate : .restart
    }
    if interrupted || sealedObservation.newConnection { return .restart }
    return .deliberate
  }
}
