// SPDX-License-Identifier: Apache-2.0
import Synchronization
import Testing
@testable import VaultKeeper

/// A handler that blocks on a gate, as `sd_notify` does on a full socket: the outbox's producers
/// must never wait for it, pending items coalesce and stay bounded, and nothing is lost or
/// reordered that should not be.
@Suite struct CoalescingOutboxTests {
  /// Records what the handler saw; the first item blocks until `release()`.
  final class Recorder: Sendable {
    let handled = Mutex<[String]>([])
    let gate = WakeupEvent()
    let started: AsyncStream<String>
    private let startedContinuation: AsyncStream<String>.Continuation

    init() {
      (started, startedContinuation) = AsyncStream.makeStream()
    }

    func handle(_ item: String) {
      startedContinuation.yield(item)
      if item == "block" { gate.wait() }
      handled.withLock { $0.append(item) }
    }

    func release() { gate.signal() }

    /// Waits until the handler has taken `item` off the queue.
    func waitStarted(_ item: String) async {
      for await started in started where started == item { return }
    }
  }

  @Test func handlesItemsInOrder() async {
    let recorder = Recorder()
    let outbox = CoalescingOutbox<String>(capacity: 8) { recorder.handle($0) }
    for item in ["a", "b", "c"] { outbox.enqueue(item) }
    #expect(await outbox.drain(within: .seconds(60)))
    #expect(recorder.handled.withLock { $0 } == ["a", "b", "c"])
    #expect(outbox.droppedCount == 0)
  }

  @Test func aCoalescedItemReplacesThePendingOneAndMovesBehindEverythingQueuedBefore() async {
    let recorder = Recorder()
    let outbox = CoalescingOutbox<String>(capacity: 8) { recorder.handle($0) }
    outbox.enqueue("block")
    await recorder.waitStarted("block")
    outbox.enqueue("STATUS=one", coalescingKey: "STATUS")
    outbox.enqueue("READY=1", coalescingKey: nil)
    outbox.enqueue("STATUS=two", coalescingKey: "STATUS")
    #expect(outbox.pendingCount == 2)
    recorder.release()
    #expect(await outbox.drain(within: .seconds(60)))
    #expect(recorder.handled.withLock { $0 } == ["block", "READY=1", "STATUS=two"])
    #expect(outbox.droppedCount == 0)
  }

  @Test func itemsWithoutAKeyAreNeverReplaced() async {
    let recorder = Recorder()
    let outbox = CoalescingOutbox<String>(capacity: 8) { recorder.handle($0) }
    outbox.enqueue("block")
    await recorder.waitStarted("block")
    outbox.enqueue("RELOADING=1")
    outbox.enqueue("READY=1")
    outbox.enqueue("READY=1")
    recorder.release()
    #expect(await outbox.drain(within: .seconds(60)))
    #expect(recorder.handled.withLock { $0 } == ["block", "RELOADING=1", "READY=1", "READY=1"])
  }

  @Test func aBlockedHandlerCostsAtMostCapacityItemsAndTheOldestAreDroppedAndCounted() async {
    let recorder = Recorder()
    let outbox = CoalescingOutbox<String>(capacity: 2) { recorder.handle($0) }
    outbox.enqueue("block")
    await recorder.waitStarted("block")
    // Returns every time although the handler cannot take anything: producers never wait.
    for i in 1...1000 { outbox.enqueue("x\(i)") }
    #expect(outbox.pendingCount == 2)
    #expect(outbox.droppedCount == 998)
    recorder.release()
    #expect(await outbox.drain(within: .seconds(60)))
    #expect(recorder.handled.withLock { $0 } == ["block", "x999", "x1000"])
  }

  @Test func drainGivesUpWhileTheHandlerIsBlockedAndSucceedsOnceItIsNot() async {
    let recorder = Recorder()
    let outbox = CoalescingOutbox<String>(capacity: 4) { recorder.handle($0) }
    outbox.enqueue("block")
    outbox.enqueue("after")
    await recorder.waitStarted("block")
    // The gate stays shut until after this call, so the outcome cannot depend on timing.
    #expect(await outbox.drain(within: .milliseconds(20)) == false)
    #expect(recorder.handled.withLock { $0 }.isEmpty)
    recorder.release()
    #expect(await outbox.drain(within: .seconds(60)))
    #expect(recorder.handled.withLock { $0 } == ["block", "after"])
  }

  @Test func drainOfAnIdleOutboxReturnsAtOnce() async {
    let outbox = CoalescingOutbox<String>(capacity: 1) { _ in }
    #expect(await outbox.drain(within: .seconds(60)))
  }
}

/// The notifier every datagram to systemd goes through: STATUS and WATCHDOG coalesce, READY,
/// RELOADING and STOPPING keep their order, and a blocked `sd_notify` blocks nobody else.
@Suite struct QueuedNotifierTests {
  final class BlockingNotifier: ServiceManagerNotifier {
    let recorder = CoalescingOutboxTests.Recorder()
    func send(_ assignments: [String]) { recorder.handle(assignments.joined(separator: "|")) }
    var watchdogTimeout: Duration? { .seconds(30) }
  }

  @Test func coalescingKeys() {
    #expect(QueuedNotifier.coalescingKey(["STATUS=1 node active"]) == "STATUS")
    #expect(QueuedNotifier.coalescingKey(["WATCHDOG=1"]) == "WATCHDOG")
    #expect(QueuedNotifier.coalescingKey(["READY=1", "STATUS=ok"]) == nil)
    #expect(QueuedNotifier.coalescingKey(["RELOADING=1", "MONOTONIC_USEC=1", "STATUS=reloading"]) == nil)
    #expect(QueuedNotifier.coalescingKey(["STOPPING=1", "STATUS=stopping"]) == nil)
    #expect(QueuedNotifier.coalescingKey(["WATCHDOG=1", "STATUS=x"]) == nil)
  }

  @Test func aBlockedSocketBlocksOnlyTheQueue() async {
    let inner = BlockingNotifier()
    let notifier = QueuedNotifier(inner, capacity: 8)
    notifier.send(["block"])
    await inner.recorder.waitStarted("block")
    for i in 1...100 {
      notifier.send(["WATCHDOG=1"])
      notifier.send(["STATUS=\(i)"])
    }
    notifier.send(["STOPPING=1", "STATUS=stopping"])
    #expect(notifier.droppedCount == 0)
    #expect(notifier.watchdogTimeout == .seconds(30))
    inner.recorder.release()
    #expect(await notifier.drain(within: .seconds(60)))
    #expect(inner.recorder.handled.withLock { $0 } == ["block", "WATCHDOG=1", "STATUS=100", "STOPPING=1|STATUS=stopping"])
  }
}

/// The status board with a notifier that never returns (nobody reads the notify socket): every
/// post still returns, so a node loop never waits on reporting.
@Suite struct StatusBoardOffPathTests {
  @Test func postsReturnWhileTheNotifySocketIsBlocked() async {
    let inner = QueuedNotifierTests.BlockingNotifier()
    let notifier = QueuedNotifier(inner, capacity: 4)
    let board = StatusBoard(configPath: "/etc/vaultkeeper/vaultkeeper.toml", notifier: notifier, stateFile: nil, metricsDirectory: nil, logger: .init(label: "test"))
    await board.configure(addresses: ["https://127.0.0.1:8200"], configPath: "/etc/vaultkeeper/vaultkeeper.toml", metricsDirectory: nil)
    notifier.send(["block"])
    await inner.recorder.waitStarted("block")
    let states: [NodeState] = [.sealed, .standby, .active]
    for i in 0..<300 {
      await board.post(NodeReport(address: "https://127.0.0.1:8200", state: states[i % 3], since: Double(i), lastCheck: Double(i)))
    }
    #expect(await board.state(of: "https://127.0.0.1:8200") == .active)
    #expect(await board.snapshot().nodes.first?.lastCheck == 299)
    #expect(notifier.droppedCount == 0)  // STATUS coalesced: one pending datagram, not 300
    inner.recorder.release()
    #expect(await notifier.drain(within: .seconds(60)))
    let sent = inner.recorder.handled.withLock { $0 }
    #expect(sent.first == "block")
    #expect(sent.count == 2)
    #expect(sent.last?.hasPrefix("STATUS=") == true)
  }
}
