// SPDX-License-Identifier: Apache-2.0
/// How long stopping may take. systemd sends SIGKILL `TimeoutStopSec=30s` after SIGTERM
/// (deploy/vaultkeeper.service), so the daemon's own bounds add up to 25 s and leave 5 s for the
/// process to exit: duties first get graceful shutdown, the ones still running after
/// `graceful` are cancelled (and named in the journal), the ones still running `cancellation`
/// later are left behind (and named), then the last state file and STOPPING=1 get their turns.
public struct StopBounds: Sendable, Equatable {
  /// From the stop request until every duty should have ended by itself.
  public var graceful: Duration
  /// From cancelling the stragglers until the daemon stops waiting for them.
  public var cancellation: Duration
  /// Writing the last state file (a stuck disk must not hold the stop).
  public var stateFile: Duration
  /// Delivering STOPPING=1 and the last STATUS (a full notify socket neither).
  public var notify: Duration

  public init(graceful: Duration, cancellation: Duration, stateFile: Duration, notify: Duration) {
    self.graceful = graceful
    self.cancellation = cancellation
    self.stateFile = stateFile
    self.notify = notify
  }

  /// The bounds for the shipped unit's `TimeoutStopSec=30s`.
  public static let unit = StopBounds(graceful: .seconds(15), cancellation: .seconds(3), stateFile: .seconds(5), notify: .seconds(2))

  /// Everything together: what the unit's `TimeoutStopSec=` must exceed.
  public var total: Duration { graceful + cancellation + stateFile + notify }
}
