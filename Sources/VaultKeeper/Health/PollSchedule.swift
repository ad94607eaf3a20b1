// SPDX-License-Identifier: Apache-2.0
/// When to look at a node again: a pure function of what the last looks found.
///
/// - Healthy and unchanged: `interval` (5 s by default).
/// - Sealed (and ours to unseal), or just changed state: `fastInterval` (250 ms).
/// - Right after the connection was lost (Vault restarting): every `reconnectInterval` (at most
///   50 ms) for `reconnectWindow`, so a restarted Vault is unsealed a few dozen milliseconds
///   after its listener is back. A refused loopback connect costs microseconds.
/// - Repeated failures after that: exponential backoff from `fastInterval`, doubling per
///   failure up to `maxBackoff`, with ±10% jitter so several nodes do not poll in lockstep.
///   With the defaults: 250 ms, 500 ms, 1 s, 2 s, 4 s, 8 s, 16 s, 30 s, 30 s, …
public struct PollSchedule: Sendable, Equatable {
  public var interval: Duration
  public var fastInterval: Duration
  public var maxBackoff: Duration
  public var reconnectWindow: Duration = .seconds(10)
  public var reconnectInterval: Duration { min(fastInterval, .milliseconds(50)) }

  public init(_ config: HealthConfig) {
    interval = config.interval
    fastInterval = config.fastInterval
    maxBackoff = config.maxBackoff
  }

  public struct Situation: Sendable, Equatable {
    public var state: NodeState
    /// The state differs from the one before.
    public var changed: Bool
    /// Failures in a row, counting this one.
    public var consecutiveFailures: Int
    /// Time since we last had a working connection, when it was lost recently.
    public var sinceConnectionLoss: Duration?
    /// The node is sealed but we will not unseal it (deliberate seal, wrong key, no keys).
    public var waitingOnOperator: Bool

    public init(state: NodeState, changed: Bool = false, consecutiveFailures: Int = 0, sinceConnectionLoss: Duration? = nil, waitingOnOperator: Bool = false) {
      self.state = state
      self.changed = changed
      self.consecutiveFailures = consecutiveFailures
      self.sinceConnectionLoss = sinceConnectionLoss
      self.waitingOnOperator = waitingOnOperator
    }
  }

  /// - Parameter jitter: a number in 0...1 (0.5 = no change); injected so tests are exact.
  public func nextDelay(_ s: Situation, jitter: Double) -> Duration {
    if s.state.isFailure {
      if let since = s.sinceConnectionLoss, since < reconnectWindow { return reconnectInterval }
      let exponent = min(max(s.consecutiveFailures - 1, 0), 20)
      let base = min(fastInterval * (1 << exponent), maxBackoff)
      let factor = 0.9 + 0.2 * min(max(jitter, 0), 1)
      return min(base * factor, maxBackoff)
    }
    if s.changed { return fastInterval }
    if s.state == .sealed && !s.waitingOnOperator { return fastInterval }
    return interval
  }
}
