// SPDX-License-Identifier: Apache-2.0
import Logging
import Synchronization

/// Runs one generation's duties (a `NamedDuty` each, a ServiceLifecycle `Service`) and stops
/// them within `StopBounds`, naming in the journal every duty that overstays.
///
/// Not a `ServiceGroup` per generation, for three reasons found in its source: it signals
/// graceful shutdown to its services one at a time, in reverse order, waiting for each to end,
/// so for independent duties sharing one stop budget a slow one would keep the others from even
/// hearing of the stop; its only answer to a task that ignores cancellation is `fatalError`
/// (`maximumCancellationDuration`); and it cannot run twice. Here the duties run in a task that
/// inherits the caller's task-locals, so the daemon's own graceful shutdown (from the
/// `ServiceGroup` in `vaultkeeper run`) reaches every duty at once; the ones still running after
/// the graceful bound are cancelled, and the ones deaf to that too are left behind, so the
/// process exits before systemd's SIGKILL. A reload (SIGHUP) cancels the old generation's duties
/// at once and starts a new group.
public final class DutyGroup: Sendable {
  public enum Stop: Sendable, Equatable {
    /// The daemon is stopping: its graceful shutdown has already told every duty.
    case graceful
    /// A reload: cancel at once.
    case cancel
  }

  private struct State {
    var running: [String] = []
    var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
    var nextID: UInt64 = 0
    var task: Task<Void, Never>?
  }

  public let duties: [NamedDuty]
  let logger: Logger
  let clock: any DutyClock
  private let state = Mutex(State())

  public init(duties: [NamedDuty], logger: Logger, clock: any DutyClock = SystemNodeClock()) {
    self.duties = duties
    self.logger = logger
    self.clock = clock
  }

  /// Names of the duties still running, in the order they were given.
  public var running: [String] { state.withLock { $0.running } }

  /// Starts every duty. They run in an unstructured task (inheriting the caller's task-locals,
  /// and so its graceful shutdown), so that one deaf to cancellation cannot hold the caller.
  public func start() {
    let duties = duties
    let logger = logger
    state.withLock { $0.running = duties.map(\.name) }
    let task = Task {
      await withTaskGroup(of: Void.self) { group in
        for duty in duties {
          group.addTask {
            do {
              try await duty.run()
            } catch is CancellationError {
            } catch {
              logger.error("duty \(duty.name) failed: \(error)", metadata: ["duty": "\(duty.name)"])
            }
            self.ended(duty.name)
          }
        }
      }
    }
    state.withLock { $0.task = task }
  }

  /// Stops the duties. `.graceful`: waits up to `bounds.graceful` for them to end by themselves,
  /// then cancels the rest; `.cancel`: cancels at once. Either way it then waits up to
  /// `bounds.cancellation`. Returns the names of the duties left behind (still running); each
  /// duty that overstayed a bound has its own journal line.
  @discardableResult
  public func stop(_ how: Stop, bounds: StopBounds) async -> [String] {
    if how == .graceful {
      if await waitForAll(within: bounds.graceful) { return [] }
      for name in running {
        logger.warning(
          "duty \(name) did not stop within \(DurationParsing.format(bounds.graceful)) of the stop request: cancelling it",
          metadata: ["duty": "\(name)"])
      }
    }
    cancel()
    if await waitForAll(within: bounds.cancellation) { return [] }
    let left = running
    for name in left {
      logger.error(
        "duty \(name) did not end within \(DurationParsing.format(bounds.cancellation)) of being cancelled: \(how == .graceful ? "exiting without it" : "leaving it behind")",
        metadata: ["duty": "\(name)"])
    }
    return left
  }

  /// Cancels every duty without waiting (the caller's own task is cancelled).
  public func cancel() {
    state.withLock { $0.task }?.cancel()
  }

  /// True when every duty has ended within `bound` on the clock.
  func waitForAll(within bound: Duration) async -> Bool {
    await withTaskGroup(of: Void.self) { group in
      group.addTask { await self.allEnded() }
      group.addTask { try? await self.clock.sleep(for: bound) }
      await group.next()
      group.cancelAll()
    }
    return running.isEmpty
  }

  /// Returns when no duty runs any more, or when the calling task is cancelled.
  func allEnded() async {
    let id = state.withLock { s -> UInt64 in
      s.nextID &+= 1
      return s.nextID
    }
    await withTaskCancellationHandler {
      await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        let done = state.withLock { s -> Bool in
          if s.running.isEmpty || Task.isCancelled { return true }
          s.waiters[id] = continuation
          return false
        }
        if done { continuation.resume() }
      }
    } onCancel: {
      state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
    }
  }

  private func ended(_ name: String) {
    let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
      if let index = s.running.firstIndex(of: name) { s.running.remove(at: index) }
      guard s.running.isEmpty else { return [] }
      defer { s.waiters.removeAll() }
      return Array(s.waiters.values)
    }
    for waiter in waiters { waiter.resume() }
  }
}
