// SPDX-License-Identifier: Apache-2.0
import Synchronization

/// Hands work that may block (an `sd_notify` into a socket nobody reads, a write to a slow or
/// full disk) to a thread of its own, so that whoever produces it never waits: a health check,
/// an unseal and the watchdog decision must not stall behind reporting.
///
/// Items are handled in order by one dedicated OS thread (never the cooperative pool). An item
/// with a coalescing key replaces a pending item with the same key, and moves to the end of the
/// queue: only the latest STATUS or state-file contents matter, and moving it keeps it behind
/// anything that was queued before it (a `READY=1` carrying an older STATUS must not be sent
/// after the newer one). Items without a key (READY, RELOADING, STOPPING) are never replaced.
/// The queue is bounded: when it is full the oldest item is dropped and counted, so a handler
/// that never returns costs memory for `capacity` items, not for every report since.
public final class CoalescingOutbox<Item: Sendable>: Sendable {
  private struct Entry {
    var key: String?
    var item: Item
  }

  private struct State {
    var queue: [Entry] = []
    var busy = false
    var dropped = 0
    var idleWaiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
    var nextWaiter: UInt64 = 0
    /// Set when the thread could not be started: items are then dropped and counted.
    var noThread = false
  }

  /// What the producers and the thread share.
  private final class Shared: Sendable {
    let state = Mutex(State())
    let wakeup = WakeupEvent()
  }

  private let capacity: Int
  private let shared = Shared()

  /// Starts the thread; `handle` runs on it, one item at a time.
  public init(capacity: Int, handle: @escaping @Sendable (Item) -> Void) {
    precondition(capacity > 0, "an outbox needs room for at least one item")
    self.capacity = capacity
    // The thread holds the shared state, not the outbox: it lives as long as the process
    // (reporting is needed until the very end), and a deinit never waits on it.
    let shared = self.shared
    let started = DedicatedThread.start { Self.serve(shared, handle: handle) }
    if started != 0 { shared.state.withLock { $0.noThread = true } }
  }

  /// Queues `item` and returns at once. With a `key`, a pending item with the same key is
  /// replaced.
  public func enqueue(_ item: Item, coalescingKey key: String? = nil) {
    shared.state.withLock { s in
      if s.noThread {
        s.dropped += 1
        return
      }
      if let key, let index = s.queue.firstIndex(where: { $0.key == key }) {
        s.queue.remove(at: index)
      }
      if s.queue.count >= capacity {
        s.queue.removeFirst()
        s.dropped += 1
      }
      s.queue.append(Entry(key: key, item: item))
    }
    shared.wakeup.signal()
  }

  /// How many items were dropped because the queue was full (or no thread could be started).
  public var droppedCount: Int { shared.state.withLock { $0.dropped } }

  /// How many items wait, not counting the one being handled.
  public var pendingCount: Int { shared.state.withLock { $0.queue.count } }

  /// Waits until everything queued so far has been handled, for at most `limit`.
  /// Returns false when the limit passed first (a handler is blocked) or the task was
  /// cancelled. Used at shutdown: the last state file should be written, but a stuck socket or
  /// disk must not hold the stop past the unit's `TimeoutStopSec=`.
  public func drain(within limit: Duration) async -> Bool {
    await withTaskGroup(of: Bool.self) { group in
      group.addTask { await self.waitUntilIdle() }
      group.addTask {
        try? await Task.sleep(for: limit)
        return false
      }
      let first = await group.next() ?? false
      group.cancelAll()
      return first
    }
  }

  private func waitUntilIdle() async -> Bool {
    let id = shared.state.withLock { s -> UInt64? in
      if s.queue.isEmpty && !s.busy { return nil }
      s.nextWaiter += 1
      return s.nextWaiter
    }
    guard let id else { return true }
    await withTaskCancellationHandler {
      await withCheckedContinuation { continuation in
        let resumeNow = shared.state.withLock { s -> Bool in
          if Task.isCancelled || (s.queue.isEmpty && !s.busy) { return true }
          s.idleWaiters[id] = continuation
          return false
        }
        if resumeNow { continuation.resume() }
      }
    } onCancel: {
      shared.state.withLock { $0.idleWaiters.removeValue(forKey: id) }?.resume()
    }
    return shared.state.withLock { $0.queue.isEmpty && !$0.busy }
  }

  private static func serve(_ shared: Shared, handle: @Sendable (Item) -> Void) {
    while true {
      let next = shared.state.withLock { s -> Item? in
        guard !s.queue.isEmpty else {
          s.busy = false
          return nil
        }
        s.busy = true
        return s.queue.removeFirst().item
      }
      if let next {
        handle(next)
        continue
      }
      let waiters = shared.state.withLock { s -> [CheckedContinuation<Void, Never>] in
        // Re-checked under the lock: an item queued since is handled before anyone is told
        // the outbox is idle.
        guard s.queue.isEmpty else { return [] }
        let all = Array(s.idleWaiters.values)
        s.idleWaiters.removeAll()
        return all
      }
      for waiter in waiters { waiter.resume() }
      shared.wakeup.wait()
    }
  }
}
