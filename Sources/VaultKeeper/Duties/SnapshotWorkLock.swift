// SPDX-License-Identifier: Apache-2.0
import Synchronization

/// Keeps a restore drill away from snapshot work in this daemon. A drill restores the newest
/// snapshot and reads the shares; it must not run while a snapshot is still being written or
/// pruned, or while one is being uploaded, and its throwaway server must not compete with a
/// multi-gigabyte transfer for the disk.
///
/// Snapshots and upload passes hold it *shared*: they run beside each other as before (a slow or
/// hanging bucket must never delay the next local snapshot), and wait only while a drill runs.
/// A drill holds it *exclusive*: it waits until no snapshot or upload runs. Shared holders do not
/// queue behind a waiting drill (a trickling upload must not hold up local snapshots by way of
/// a drill waiting for it); snapshots and uploads come at intervals, so the drill finds a gap.
/// Waiting drills are served in arrival order.
///
/// A task cancelled while it waits leaves the queue and gets nil back without running its work;
/// work already running is never interrupted by the lock.
public final class SnapshotWorkLock: Sendable {
  public enum Mode: Sendable, Equatable {
    /// Snapshots and uploads: any number at once, never beside a drill.
    case shared
    /// A restore drill: alone.
    case exclusive
  }

  private struct Waiter {
    let id: UInt64
    let mode: Mode
    let continuation: CheckedContinuation<Bool, Never>
  }
  private struct State {
    var sharedHolders = 0
    var exclusiveHeld = false
    var waiters: [Waiter] = []
    var nextID: UInt64 = 0

    func admits(_ mode: Mode) -> Bool {
      switch mode {
      case .shared: return !exclusiveHeld
      case .exclusive: return !exclusiveHeld && sharedHolders == 0
      }
    }

    mutating func take(_ mode: Mode) {
      switch mode {
      case .shared: sharedHolders += 1
      case .exclusive: exclusiveHeld = true
      }
    }
  }
  private let state = Mutex(State())

  public init() {}

  /// Whether a drill holds the lock now (a snapshot of a moment, for STATUS and tests).
  public var isHeldExclusively: Bool { state.withLock { $0.exclusiveHeld } }

  /// How many snapshots and uploads hold it now.
  public var sharedHolders: Int { state.withLock { $0.sharedHolders } }

  /// How many tasks wait for the lock now (tests wait on this instead of on the clock).
  public var waiting: Int { state.withLock { $0.waiters.count } }

  /// Runs a snapshot or an upload pass: beside others of its kind, never beside a drill. Nil
  /// when the calling task was cancelled before its turn came.
  public func shared<T: Sendable>(_ work: () async -> T) async -> T? {
    await holding(.shared, work)
  }

  /// Runs a restore drill alone. Nil when the calling task was cancelled before its turn came.
  public func exclusive<T: Sendable>(_ work: () async -> T) async -> T? {
    await holding(.exclusive, work)
  }

  private func holding<T: Sendable>(_ mode: Mode, _ work: () async -> T) async -> T? {
    guard await acquire(mode) else { return nil }
    defer { release(mode) }
    return await work()
  }

  private func acquire(_ mode: Mode) async -> Bool {
    let id = state.withLock { s -> UInt64 in
      s.nextID &+= 1
      return s.nextID
    }
    return await withTaskCancellationHandler {
      await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
        let granted = state.withLock { s -> Bool? in
          if Task.isCancelled { return false }
          // A drill also waits its turn behind drills already waiting.
          let queuedDrill = mode == .exclusive && s.waiters.contains { $0.mode == .exclusive }
          if s.admits(mode), !queuedDrill {
            s.take(mode)
            return true
          }
          s.waiters.append(Waiter(id: id, mode: mode, continuation: continuation))
          return nil
        }
        if let granted { continuation.resume(returning: granted) }
      }
    } onCancel: {
      let waiter = state.withLock { s -> Waiter? in
        guard let index = s.waiters.firstIndex(where: { $0.id == id }) else { return nil }
        return s.waiters.remove(at: index)
      }
      waiter?.continuation.resume(returning: false)
    }
  }

  /// Releases one hold and hands the lock on: after a drill, to every waiting snapshot and
  /// upload (they were held up only by it), else to the next drill; after the last snapshot or
  /// upload, to the next drill.
  private func release(_ mode: Mode) {
    let granted = state.withLock { s -> [Waiter] in
      switch mode {
      case .shared: s.sharedHolders -= 1
      case .exclusive: s.exclusiveHeld = false
      }
      var granted: [Waiter] = []
      let sharedWaiters = s.waiters.filter { $0.mode == .shared }
      if !sharedWaiters.isEmpty, s.admits(.shared) {
        s.waiters.removeAll { $0.mode == .shared }
        s.sharedHolders += sharedWaiters.count
        granted = sharedWaiters
      } else if let index = s.waiters.firstIndex(where: { $0.mode == .exclusive }), s.admits(.exclusive) {
        granted = [s.waiters.remove(at: index)]
        s.take(.exclusive)
      }
      return granted
    }
    for waiter in granted { waiter.continuation.resume(returning: true) }
  }
}
