// SPDX-License-Identifier: Apache-2.0
/// Tells a deliberate seal from a restart. Sealing Vault is an operator's emergency brake: if
/// a node becomes sealed while its Vault process kept running, we must not undo it.
///
/// A seal seen after the node was seen unsealed is deliberate unless there is evidence of a
/// *new* Vault process since then, strongest first:
/// 1. systemd's MainPID of the Vault unit (over D-Bus), known both when last seen unsealed and
///    now: the same PID means the process kept running (deliberate), another means a restart.
/// 2. Otherwise only what the server itself did: it refused a connection (its listener went
///    away), closed or reset our connection, or systemd reported a new main PID.
///
/// Never evidence: a timeout (a frozen process or a partition looks the same), a TLS failure, an
/// HTTP answer of any kind (the listener is alive), or an answer over a new connection (after a
/// timeout libcurl closes the old one itself). So a deliberate seal holds through freezes and
/// partitions; it ends only with the override, the node seen unsealed, or such evidence.
public struct SealJudge: Sendable, Equatable {
  public enum Verdict: Sendable, Equatable {
    /// Not seen unsealed since we started (or since the last restart): unseal.
    case startup
    case restart
    case deliberate
    /// `unseal.after = "always"`.
    case always
  }

  /// A sign that the Vault process went away; the value is the `vault.restart_evidence` field.
  public enum Evidence: String, Sendable, Equatable {
    /// systemd reports another main PID for the Vault unit (stopped, started, restarted).
    case newMainPID = "new-main-pid"
    /// A connection was refused: nothing listens on Vault's port.
    case connectionRefused = "connection-refused"
    /// The server closed or reset our connection (idle or during a request).
    case connectionClosed = "connection-closed"
  }

  public var after: UnsealConfig.After
  /// We have seen this node unsealed since we started.
  private(set) var seenUnsealed = false
  /// Vault's main PID when last seen unsealed (0 = unknown).
  private(set) var pidWhenUnsealed = 0
  /// The first sign of a new Vault process since the node was last seen unsealed.
  public private(set) var evidence: Evidence?

  public init(after: UnsealConfig.After) { self.after = after }

  /// Feed every health observation, with the unit's main PID when known (0 otherwise).
  public mutating func observe(_ observation: HealthObservation, mainPID: Int) {
    switch observation.state {
    case .unreachable:
      switch observation.serverAction {
      case .refused: notice(.connectionRefused)
      case .closed: notice(.connectionClosed)
      case nil: break  // a timeout or a TLS failure: nothing about the process
      }
    case .protocolError, .sealed, .uninitialized:
      break  // answered: the listener is still there
    default:
      seenUnsealed = true
      pidWhenUnsealed = mainPID
      evidence = nil
    }
  }

  /// Our own unseal request was answered "unsealed": that answer is as good as a health check
  /// seeing the node unsealed. Without it, a seal (or a restart) before the next health check
  /// would be judged as if we had never seen the node open: an operator's brake pulled in that
  /// window would be undone as "sealed at start-up".
  public mutating func unsealedByUs(mainPID: Int) {
    seenUnsealed = true
    pidWhenUnsealed = mainPID
    evidence = nil
  }

  /// Evidence from outside the health checks: the transport saw the server close the kept-alive
  /// connection, or systemd reported a new main PID. The first one since the node was last seen
  /// unsealed is kept.
  public mutating func notice(_ sign: Evidence) {
    if evidence == nil { evidence = sign }
  }

  /// The judgement for a sealed observation.
  public func verdict(sealedObservation: HealthObservation, mainPID: Int) -> Verdict {
    if after == .always { return .always }
    guard seenUnsealed else { return .startup }
    if pidWhenUnsealed > 0 && mainPID > 0 {
      return pidWhenUnsealed == mainPID ? .deliberate : .restart
    }
    return evidence == nil ? .deliberate : .restart
  }

  /// What a `.restart` verdict rests on, for the journal.
  public func restartEvidence(mainPID: Int) -> Evidence? {
    if pidWhenUnsealed > 0 && mainPID > 0 && pidWhenUnsealed != mainPID { return .newMainPID }
    return evidence
  }
}
