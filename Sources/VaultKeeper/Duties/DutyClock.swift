// SPDX-License-Identifier: Apache-2.0
/// A `NodeClock` a duty's loop can also wait on: the loop reads the time it hands its decisions
/// and sleeps on the same clock, so tests run the loop, waits included, in virtual time.
public protocol DutyClock: NodeClock {
  /// Waits `duration` on this clock. Throws `CancellationError` when the task is cancelled.
  func sleep(for duration: Duration) async throws
}

extension SystemNodeClock: DutyClock {
  public func sleep(for duration: Duration) async throws {
    try await Task.sleep(for: duration)
  }
}
