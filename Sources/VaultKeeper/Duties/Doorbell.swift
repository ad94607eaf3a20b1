// SPDX-License-Identifier: Apache-2.0
import Dispatch
import Synchronization

/// Lets events (connection closed, unit restarted, reload) cut a duty's sleep short.
/// `ring()` from anywhere; `wait(for:)` returns after the delay or at the first ring,
/// whichever comes first. A ring while nobody waits is remembered once.
///
/// One continuation and one Dispatch timer per wait: no child tasks, so a duty polling every
/// few milliseconds costs next to nothing between checks.
public final class Doorbell: Sendable {
  private struct State {
    var pending = false
    var waiter: CheckedContinuation<Bool, Never>?
    /// Identifies the current wait, so a late timer cannot end a later one.
    var generation: UInt64 = 0
  }
  private let state = Mutex(State())

  public init() {}

  public func ring() {
    let waiter = state.withLock { s -> CheckedContinuation<Bool, Never>? in
      guard let w = s.waiter else {
        s.pending = true
        return nil
      }
      s.waiter = nil
      return w
    }
    waiter?.resume(returning: true)
  }

  /// Sleeps up to `duration`; returns true if woken by a ring (or by cancellation).
  @discardableResult
  public func wait(for duration: Duration) async -> Bool {
    await withTaskCancellationHandler {
      await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
        let generation = state.withLock { s -> UInt64? in
          if s.pending || Task.isCancelled {
            s.pending = false
            return nil
          }
          s.generation &+= 1
          s.waiter = continuation
          return s.generation
        }
        guard let generation else {
          continuation.resume(returning: true)
          return
        }
        let nanoseconds = max(duration.milliseconds, 0) * 1_000_000 + Int64(duration.components.attoseconds / 1_000_000_000 % 1_000_000)
        DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(Int(min(nanoseconds, Int64(Int.max))))) {
          let waiter = self.state.withLock { s -> CheckedContinuation<Bool, Never>? in
            guard s.generation == generation, let w = s.waiter else { return nil }
            s.waiter = nil
            return w
          }
          waiter?.resume(returning: false)
        }
      }
    } onCancel: {
      ring()
    }
  }
}
