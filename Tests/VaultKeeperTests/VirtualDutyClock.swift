// SPDX-License-Identifier: Apache-2.0
import Synchronization

@testable import VaultKeeper

/// A `DutyClock` in virtual time. `jumping`: a sleep moves the clock on by its duration and
/// returns at once (one loop under test, its waits taken literally). `manual`: a sleep waits
/// until the test moves the clock past its deadline (several tasks racing a timer), and the
/// test can wait for the sleepers to be there before it moves the clock.
final class VirtualDutyClock: DutyClock {
  enum Mode {
    case jumping
    case manual
  }

  private struct Sleeper {
    var id: UInt64
    var deadline: ContinuousClock.Instant
    var continuation: CheckedContinuation<Void, any Error>
  }

  private struct State {
    var now: NodeTime
    var sleepers: [Sleeper] = []
    var nextID: UInt64 = 0
    /// Tests waiting for at least this many sleepers.
    var watchers: [(count: Int, continuation: CheckedContinuation<Void, Never>)] = []
  }

  let mode: Mode
  private let state: Mutex<State>

  init(mode: Mode, start: NodeTime = NodeTime(monotonic: ContinuousClock.now, wall: 1_800_000_000)) {
    self.mode = mode
    state = Mutex(State(now: start))
  }

  func now() -> NodeTime { state.withLock { $0.now } }

  /// How many tasks sleep on this clock now (manual mode): the loops under test are idle.
  var sleeping: Int { state.withLock { $0.sleepers.count } }

  /// Virtual time since `start`.
  func elapsed(since start: NodeTime) -> Duration { start.monotonic.duration(to: now().monotonic) }

  func sleep(for duration: Duration) async throws {
    try Task.checkCancellation()
    if mode == .jumping {
      advance(by: duration)
      return
    }
    let id = state.withLock { s -> UInt64 in
      s.nextID &+= 1
      return s.nextID
    }
    try await withTaskCancellationHandler {
      try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
        let (resume, watchers) = state.withLock { s -> (Bool, [CheckedContinuation<Void, Never>]) in
          let deadline = s.now.monotonic.advanced(by: duration)
          if deadline <= s.now.monotonic || Task.isCancelled { return (true, []) }
          s.sleepers.append(Sleeper(id: id, deadline: deadline, continuation: continuation))
          return (false, Self.takeSatisfiedWatchers(&s))
        }
        if resume { continuation.resume() }
        for watcher in watchers { watcher.resume() }
      }
    } onCancel: {
      let sleeper = state.withLock { s -> Sleeper? in
        guard let index = s.sleepers.firstIndex(where: { $0.id == id }) else { return nil }
        return s.sleepers.remove(at: index)
      }
      sleeper?.continuation.resume(throwing: CancellationError())
    }
  }

  /// Moves the clock on and wakes every sleeper whose deadline has come.
  func advance(by duration: Duration) {
    let due = state.withLock { s -> [Sleeper] in
      s.now = s.now.advanced(by: duration)
      let now = s.now.monotonic
      let due = s.sleepers.filter { $0.deadline <= now }
      s.sleepers.removeAll { $0.deadline <= now }
      return due
    }
    for sleeper in due { sleeper.continuation.resume() }
  }

  /// Returns once at least `count` tasks sleep on this clock (manual mode).
  func waitForSleepers(_ count: Int) async {
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
      let ready = state.withLock { s -> Bool in
        if s.sleepers.count >= count { return true }
        s.watchers.append((count, continuation))
        return false
      }
      if ready { continuation.resume() }
    }
  }

  private static func takeSatisfiedWatchers(_ s: inout State) -> [CheckedContinuation<Void, Never>] {
    let count = s.sleepers.count
    let ready = s.watchers.filter { $0.count <= count }.map(\.continuation)
    s.watchers.removeAll { $0.count <= count }
    return ready
  }
}
