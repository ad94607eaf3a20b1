// SPDX-License-Identifier: Apache-2.0
/// Failure accounting for one node: failures in a row, the reconnect window and the backoff
/// count. Pure: the instant is passed in.
///
/// Only a lost connection (Vault restarting) opens the reconnect window, where the node is polled
/// every `reconnectInterval` and failures do not count towards the backoff; a node answering
/// garbage or 5xx backs off at once. "Still unreachable" is escalated to an error once per
/// outage, after `unreachable_error_after` failures *and* longer than the window, so a routine
/// restart stays a warning.
struct FailureTracker: Sendable, Equatable {
  private(set) var consecutiveFailures = 0
  /// When the connection was lost, while the node has been unreachable since.
  private(set) var connectionLostAt: ContinuousClock.Instant?
  /// Start of the current run of failures (unreachable or protocol errors).
  private(set) var failingSince: ContinuousClock.Instant?
  /// The "still unreachable" error was logged for the current outage.
  private(set) var escalated = false
  /// Failures outside the reconnect window, for the exponential backoff.
  private(set) var backoffFailures = 0

  /// What one health answer did to the accounting.
  struct Step: Sendable, Equatable {
    var consecutiveFailures: Int
    /// Log this failure as an error: the outage outlasted a restart.
    var escalate: Bool
  }

  mutating func record(_ state: NodeState, previous: NodeState?, now: ContinuousClock.Instant, reconnectWindow: Duration, errorAfter: Int) -> Step {
    guard state.isFailure else {
      consecutiveFailures = 0
      connectionLostAt = nil
      failingSince = nil
      escalated = false
      backoffFailures = 0
      return Step(consecutiveFailures: 0, escalate: false)
    }
    consecutiveFailures += 1
    if previous?.isFailure != true { failingSince = failingSince ?? now }
    if state == .unreachable, previous != .unreachable { connectionLostAt = connectionLostAt ?? now }
    if state != .unreachable { connectionLostAt = nil }
    let outage = failingSince.map { $0.duration(to: now) } ?? .zero
    if connectionLostAt == nil || outage >= reconnectWindow { backoffFailures += 1 }
    var escalate = false
    if !escalated, consecutiveFailures >= errorAfter, outage >= reconnectWindow {
      escalated = true
      escalate = true
    }
    return Step(consecutiveFailures: consecutiveFailures, escalate: escalate)
  }

  /// Time since the connection was lost, while the node has stayed unreachable.
  func sinceConnectionLoss(now: ContinuousClock.Instant) -> Duration? {
    connectionLostAt.map { $0.duration(to: now) }
  }
}
