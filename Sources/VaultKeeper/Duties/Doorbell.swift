import Synchronization

/// Lets events (connection closed, unit restarted, reload) cut a duty's sleep short.
/// `ring()` from anywhere; `wait(for:)` returns after the delay or at the first ring,
/// whichever comes first. A ring while nobody waits is remembered once.
public final class Doorbell: Sendable {
  private struct State {
    var pending = false
    var waiter: CheckedContinuation<Void, Never>?
  }
  private let state = Mutex(State())

  public init() {}

  public func ring() {
    let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
      if let w = s.waiter {
        s.waiter = nil
        return w
      }
      s.pending = true
      return nil
    }
    waiter?.resume()
  }

  /// Sleeps up to `duration`; returns true if woken by a ring.
  @discardableResult
  public func wait(for duration: Duration) async -> Bool {
    if state.withLock({ s in defer { s.pending = false }; return s.pending }) { return true }
    return await withTaskGroup(of: Bool.self) { group in
      group.addTask {
        try? await Task.sleep(for: duration)
        return false
      }
      group.addTask { await self.waitForRing() }
      let first = await group.next() ?? false
      group.cancelAll()
      self.ring()  // release the other waiter if it is the ring-waiter
      _ = await group.next()
      state.withLock { s in s.pending = false }
      return first
    }
  }

  private func waitForRing() async -> Bool {
    await withTaskCancellationHandler {
      await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        let resumeNow = state.withLock { s -> Bool in
          if s.pending || Task.isCancelled {
            s.pending = false
            return true
          }
          s.waiter = continuation
          return false
        }
        if resumeNow { continuation.resume() }
      }
      return !Task.isCancelled
    } onCancel: {
      self.ring()
    }
  }
}
