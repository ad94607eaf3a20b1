// SPDX-License-Identifier: Apache-2.0
import Synchronization
import Testing
@testable import VaultKeeper

/// The lock that keeps a restore drill away from a running snapshot or upload: one holder at a
/// time, arrival order, and a cancelled waiter leaves without running its work.
@Suite struct SnapshotWorkLockTests {
  /// Work that runs until `finish()`; `started` yields once it holds the lock.
  final class Blocker: Sendable {
    let started: AsyncStream<Void>
    private let startedContinuation: AsyncStream<Void>.Continuation
    private let gate: AsyncStream<Void>
    private let gateContinuation: AsyncStream<Void>.Continuation

    init() {
      (started, startedContinuation) = AsyncStream.makeStream()
      (gate, gateContinuation) = AsyncStream.makeStream()
    }

    func run() async {
      startedContinuation.yield()
      for await _ in gate { return }
    }

    func finish() { gateContinuation.yield() }
  }

  /// What ran, in order; a class so that tasks can share it.
  final class Log: Sendable {
    private let entries = Mutex<[String]>([])
    func append(_ entry: String) { entries.withLock { $0.append(entry) } }
    var all: [String] { entries.withLock { $0 } }
  }

  /// Polls a condition between yields: the waiter count changes on another task.
  func eventually(_ condition: () -> Bool) async {
    while !condition() { await Task.yield() }
  }

  @Test func drillsRunOneAtATimeInArrivalOrder() async {
    let lock = SnapshotWorkLock()
    let first = Blocker()
    let order = Log()
    let a = Task { await lock.exclusive { await first.run(); order.append("first") } }
    for await _ in first.started { break }
    #expect(lock.isHeldExclusively)
    let b = Task { await lock.exclusive { order.append("second") } }
    await eventually { lock.waiting == 1 }
    let c = Task { await lock.exclusive { order.append("third") } }
    await eventually { lock.waiting == 2 }
    #expect(order.all.isEmpty)  // nobody ran beside the holder
    first.finish()
    _ = await (a.value, b.value, c.value)
    #expect(order.all == ["first", "second", "third"])
    #expect(!lock.isHeldExclusively)
    #expect(lock.waiting == 0)
  }

  /// A slow upload must never hold up a local snapshot: shared holders run side by side.
  @Test func snapshotsAndUploadsRunBesideEachOther() async {
    let lock = SnapshotWorkLock()
    let upload = Blocker()
    let order = Log()
    let uploading = Task { await lock.shared { await upload.run(); order.append("upload") } }
    for await _ in upload.started { break }
    let snapshot = await lock.shared { order.append("snapshot"); return lock.sharedHolders }
    #expect(snapshot == 2)  // it ran while the upload held the lock
    upload.finish()
    _ = await uploading.value
    #expect(order.all == ["snapshot", "upload"])
    #expect(lock.sharedHolders == 0)
  }

  /// A drill waits for every running snapshot and upload, and they wait for a running drill.
  @Test func aDrillNeverRunsBesideSnapshotWork() async {
    let lock = SnapshotWorkLock()
    let upload = Blocker()
    let order = Log()
    let uploading = Task { await lock.shared { await upload.run(); order.append("upload") } }
    for await _ in upload.started { break }
    let drill = Blocker()
    let drilling = Task { await lock.exclusive { await drill.run(); order.append("drill") } }
    await eventually { lock.waiting == 1 }
    #expect(!lock.isHeldExclusively)
    upload.finish()
    for await _ in drill.started { break }
    #expect(lock.isHeldExclusively && lock.sharedHolders == 0)
    // A snapshot due now waits for the drill, and runs once it ends.
    let snapshot = Task { await lock.shared { order.append("snapshot") } }
    await eventually { lock.waiting == 1 }
    #expect(order.all == ["upload"])
    drill.finish()
    _ = await (uploading.value, drilling.value, snapshot.value)
    #expect(order.all == ["upload", "drill", "snapshot"])
    #expect(!lock.isHeldExclusively && lock.sharedHolders == 0 && lock.waiting == 0)
  }

  /// A drill waiting for a trickling upload must not hold up the next local snapshot.
  @Test func aWaitingDrillDoesNotHoldUpSnapshots() async {
    let lock = SnapshotWorkLock()
    let upload = Blocker()
    let uploading = Task { await lock.shared { await upload.run() } }
    for await _ in upload.started { break }
    let drillRan = Log()
    let drilling = Task { await lock.exclusive { drillRan.append("drill") } }
    await eventually { lock.waiting == 1 }
    let snapshot = await lock.shared { 7 }
    #expect(snapshot == 7)
    #expect(drillRan.all.isEmpty)
    upload.finish()
    _ = await (uploading.value, drilling.value)
    #expect(drillRan.all == ["drill"])
  }

  @Test func cancelledWaiterLeavesWithoutRunning() async {
    let lock = SnapshotWorkLock()
    let first = Blocker()
    let ran = Log()
    let holder = Task { await lock.exclusive { await first.run() } }
    for await _ in first.started { break }
    let waiter = Task { await lock.shared { ran.append("ran") } }
    await eventually { lock.waiting == 1 }
    waiter.cancel()
    let result: Void? = await waiter.value
    #expect(result == nil)
    #expect(lock.waiting == 0)
    #expect(lock.isHeldExclusively)  // the holder is not disturbed
    first.finish()
    _ = await holder.value
    #expect(ran.all.isEmpty)
    #expect(!lock.isHeldExclusively)
    // The lock still works after a cancelled waiter.
    let value = await lock.exclusive { 42 }
    #expect(value == 42)
  }

  @Test func alreadyCancelledTaskGetsNil() async {
    let lock = SnapshotWorkLock()
    let task = Task {
      withUnsafeCurrentTask { $0?.cancel() }
      return await lock.exclusive { 1 }
    }
    #expect(await task.value == nil)
    #expect(!lock.isHeldExclusively)
  }
}
