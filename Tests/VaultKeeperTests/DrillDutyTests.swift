// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
import Testing

@testable import VaultKeeper

/// A drill runner without a server: answers with what the test queued, and tells the test
/// which files it was asked to drill.
final class StubDrillRunner: DrillRunner {
  private let answers = Mutex<[Result<DrillReport, DrillFailure>]>([])
  private let calls = Mutex<[String]>([])
  let heartbeats: Heartbeats?
  let promised = Mutex<[Bool]>([])
  let timeout: Duration

  init(heartbeats: Heartbeats? = nil, timeout: Duration = .seconds(600)) {
    self.heartbeats = heartbeats
    self.timeout = timeout
  }

  var drilled: [String] { calls.withLock { $0 } }
  func queue(_ answer: Result<DrillReport, DrillFailure>) { answers.withLock { $0.append(answer) } }

  static func passed(index: UInt64 = 42) -> Result<DrillReport, DrillFailure> {
    .success(
      DrillReport(
        facts: SnapshotFacts(id: "2-\(index)", index: index, term: 2, stateBytes: 100), appliedIndex: index + 1, sharesUsed: 3, loggedIn: false,
        duration: .seconds(12)))
  }

  func drill(path: String) async -> Result<DrillReport, DrillFailure> {
    if let heartbeats {
      // The promise covers the whole drill: not broken within its timeout, broken after it.
      let now = ContinuousClock.now
      promised.withLock {
        $0.append(heartbeats.overdue(now: now + timeout).isEmpty && heartbeats.overdue(now: now + timeout + .seconds(120)) == ["drill"])
      }
    }
    calls.withLock { $0.append(path) }
    return answers.withLock { $0.isEmpty ? Self.passed() : $0.removeFirst() }
  }
}

/// Polls `condition` (not the clock) until it holds: the duty runs on other tasks. The 60 s
/// ceiling only turns a hang into a failure on a busy machine.
func eventually(_ what: String, _ condition: () async -> Bool) async throws {
  let deadline = ContinuousClock.now + .seconds(60)
  while ContinuousClock.now < deadline {
    if await condition() { return }
    try await Task.sleep(for: .milliseconds(2))
  }
  Issue.record("timed out waiting for \(what)")
  throw CancellationError()
}

struct DrillRig {
  let clock = VirtualDutyClock(mode: .manual)
  let log = RecordingLog()
  let heartbeats = Heartbeats()
  let lock = SnapshotWorkLock()
  let runner: StubDrillRunner
  let board: StatusBoard
  let node: NodeConfig
  let directory: String
  let config: SnapshotDrillConfig

  init(interval: Duration = .seconds(60), directory: String? = nil) {
    self.directory = directory ?? "/tmp/vk-dd-\(UUID().uuidString.prefix(8))"
    try? FileManager.default.createDirectory(atPath: self.directory, withIntermediateDirectories: true)
    config = SnapshotDrillConfig(enabled: true, interval: interval, timeout: .seconds(600))
    runner = StubDrillRunner(heartbeats: heartbeats, timeout: config.timeout)
    board = StatusBoard(configPath: "/dev/null", notifier: SilentNotifier(), stateFile: nil, metricsDirectory: nil, logger: log.logger)
    guard case .success(let address) = VaultAddress.parse("http://127.0.0.1:8200") else { fatalError("test address") }
    node = NodeConfig(address: address)
  }

  var ledgerPath: String { "\(directory)/drill-state.json" }

  func duty() -> DrillDuty {
    var context = DrillDuty.Context(
      config: config, snapshotDirectory: "/snaps", node: node, board: board, heartbeats: heartbeats, logger: log.logger, lock: lock,
      runner: runner, ledgerPath: ledgerPath)
    context.clock = clock
    return DrillDuty(context: context)
  }

  func node(_ state: NodeState) async {
    await board.configure(addresses: [node.name], configPath: "/dev/null", metricsDirectory: nil)
    await board.post(NodeReport(address: node.name, state: state, since: 0, lastCheck: 1))
  }

  /// The snapshot duty committed `file`, dated now on the virtual clock.
  func snapshot(_ file: String) async {
    var report = SnapshotReport(phase: .idle, staleAfterSeconds: 86400)
    report.lastFile = file
    report.lastSuccess = clock.now().wall
    await board.post(snapshot: report)
  }

  var drill: DrillDutyReport? { get async { await board.snapshot().drill } }

  /// Lets the loop take one more look: wakes its sleep and waits until it sleeps again.
  func step(_ by: Duration = .seconds(5)) async throws {
    try await eventually("the duty to sleep") { clock.sleeping > 0 }
    clock.advance(by: by)
    try await eventually("the duty to sleep again") { clock.sleeping > 0 }
  }

  func remove() { try? FileManager.default.removeItem(atPath: directory) }
}

@Suite struct DrillDutyTests {
  @Test func drillsTheNewSnapshotThenWaitsTheInterval() async throws {
    let rig = DrillRig()
    defer { rig.remove() }
    await rig.node(.active)
    await rig.snapshot("a.snap")
    let task = Task { await rig.duty().run() }
    defer { task.cancel() }
    try await eventually("the first drill") { await rig.drill?.lastResult == .passed }
    #expect(rig.runner.drilled == ["/snaps/a.snap"])
    #expect(rig.runner.promised.withLock { $0 } == [true])
    let report = try #require(await rig.drill)
    #expect(report.lastPassed == rig.clock.now().wall)
    #expect(report.lastPassedFile == "a.snap")
    #expect(report.lastDurationSeconds == 12)
    let passed = rig.log.with(.snapshotDrillPassed)
    #expect(passed.count == 1)
    #expect(passed.first?.fields["snapshot.file"] == "/snaps/a.snap")
    #expect(DrillLedger.load(path: rig.ledgerPath)?.lastPassed?.file == "a.snap")

    // A new snapshot 30 s later: not drilled before the interval (60 s) has passed.
    try await rig.step(.seconds(30))
    await rig.snapshot("b.snap")
    try await rig.step(.seconds(5))
    try await rig.step(.seconds(5))
    #expect(rig.runner.drilled.count == 1)
    #expect(await rig.drill?.nextDue == report.lastPassed.map { $0 + 60 })
    for _ in 0..<5 { try await rig.step(.seconds(5)) }
    try await eventually("the second drill") { rig.runner.drilled.count == 2 }
    #expect(rig.runner.drilled.last == "/snaps/b.snap")
  }

  @Test func aFailureOnTheSharesIsReportedAndWaitsForANewSnapshot() async throws {
    let rig = DrillRig(interval: .seconds(7200))
    defer { rig.remove() }
    rig.runner.queue(.failure(DrillFailure(.unseal, .sharesRejected)))
    await rig.node(.active)
    await rig.snapshot("a.snap")
    let task = Task { await rig.duty().run() }
    defer { task.cancel() }
    try await eventually("the failed drill") { await rig.drill?.lastResult == .failed }
    let report = try #require(await rig.drill)
    #expect(report.lastFailureStage == .unseal)
    #expect(report.lastFailureAboutShares == true)
    #expect(report.failures == ["unseal": 1])
    #expect(report.statusFragment(now: rig.clock.now().wall) == "restore drill FAILED (shares)")
    let failed = rig.log.with(.snapshotDrillFailed)
    #expect(failed.count == 1)
    #expect(failed.first?.fields["drill.stage"] == "unseal")
    #expect(failed.first?.fields["drill.reason"] == "shares-rejected")
    // An hour without a new snapshot: no retry. A new one: drilled once the hour is up.
    for _ in 0..<10 { try await rig.step(.seconds(400)) }
    #expect(rig.runner.drilled.count == 1)
    await rig.snapshot("b.snap")
    try await rig.step(.seconds(5))
    try await eventually("the retry") { rig.runner.drilled.count == 2 }
    try await eventually("the pass") { await rig.drill?.lastResult == .passed }
    #expect(await rig.drill?.failures == ["unseal": 1], "the counter stays")
  }

  @Test func aStandbyDoesNothing() async throws {
    let rig = DrillRig()
    defer { rig.remove() }
    await rig.node(.standby)
    await rig.snapshot("a.snap")
    let task = Task { await rig.duty().run() }
    defer { task.cancel() }
    try await rig.step()
    try await rig.step()
    #expect(rig.runner.drilled.isEmpty)
    #expect(await rig.drill?.phase == .standby)
    // Leadership moves here: the next look drills.
    await rig.node(.active)
    try await rig.step()
    try await eventually("the drill on the new active node") { rig.runner.drilled.count == 1 }
  }

  @Test func aRestartRemembersTheLastDrill() async throws {
    let rig = DrillRig()
    defer { rig.remove() }
    await rig.node(.active)
    await rig.snapshot("a.snap")
    let first = Task { await rig.duty().run() }
    try await eventually("the first drill") { await rig.drill?.lastResult == .passed }
    first.cancel()
    await first.value
    // A new process: a new board, the same ledger.
    let restarted = DrillRig(interval: rig.config.interval, directory: rig.directory)
    await restarted.node(.active)
    await restarted.snapshot("a.snap")
    let again = Task { await restarted.duty().run() }
    defer { again.cancel() }
    for _ in 0..<20 { try await restarted.step(.seconds(30)) }
    #expect(restarted.runner.drilled.isEmpty, "the same snapshot is not drilled again after a restart")
    #expect(await restarted.drill?.lastPassedFile == "a.snap", "the last pass is read back from the ledger")
  }

  @Test func aReloadRetriesAFailedDrillAtOnce() async throws {
    let rig = DrillRig(interval: .seconds(86400))
    defer { rig.remove() }
    rig.runner.queue(.failure(DrillFailure(.unseal, .sharesRejected)))
    await rig.node(.active)
    await rig.snapshot("a.snap")
    let first = Task { await rig.duty().run() }
    try await eventually("the failed drill") { await rig.drill?.lastResult == .failed }
    first.cancel()
    await first.value
    // The next generation's duty finds the last one's report on the board: a reload.
    let reloaded = Task { await rig.duty().run() }
    defer { reloaded.cancel() }
    try await eventually("the retry after the reload") { await rig.drill?.lastResult == .passed }
    #expect(rig.runner.drilled == ["/snaps/a.snap", "/snaps/a.snap"])
  }

  /// An encrypted credential is decrypted only when the unit starts, so new shares in one need
  /// `systemctl restart vaultkeeper`: a restart retries a failed drill at once, like a reload.
  @Test func aRestartRetriesAFailedDrillAtOnce() async throws {
    let rig = DrillRig(interval: .seconds(86400))
    defer { rig.remove() }
    rig.runner.queue(.failure(DrillFailure(.unseal, .sharesRejected)))
    await rig.node(.active)
    await rig.snapshot("a.snap")
    let first = Task { await rig.duty().run() }
    try await eventually("the failed drill") { await rig.drill?.lastResult == .failed }
    first.cancel()
    await first.value
    // A new process: a new board (no previous report), the same ledger.
    let restarted = DrillRig(interval: rig.config.interval, directory: rig.directory)
    await restarted.node(.active)
    await restarted.snapshot("a.snap")
    let again = Task { await restarted.duty().run() }
    defer { again.cancel() }
    try await eventually("the retry after the restart") { await restarted.drill?.lastResult == .passed }
    #expect(restarted.runner.drilled == ["/snaps/a.snap"])
  }

  /// A drill run by hand holds the workspace: the scheduled one is postponed, with no verdict
  /// recorded (no failed entry, no failure count, no hour-long retry wait), and runs after a pause.
  @Test func aDrillRunByHandPostponesTheScheduledOneWithoutAVerdict() async throws {
    let rig = DrillRig()
    defer { rig.remove() }
    rig.runner.queue(.failure(DrillFailure(.prepare, .busy("another restore drill is running (x.lock is held)"))))
    await rig.node(.active)
    await rig.snapshot("a.snap")
    let task = Task { await rig.duty().run() }
    defer { task.cancel() }
    try await eventually("the postponed attempt") { rig.runner.drilled.count == 1 }
    try await rig.step(DrillDuty.recheck)
    try await eventually("the drill after the pause") { await rig.drill?.lastResult == .passed }
    #expect(rig.runner.drilled == ["/snaps/a.snap", "/snaps/a.snap"])
    #expect(rig.log.with(.snapshotDrillFailed).isEmpty)
    #expect(await rig.drill?.failures.values.reduce(0, +) == 0)
  }

  @Test func neverBesideOtherSnapshotWork() async throws {
    let rig = DrillRig()
    defer { rig.remove() }
    await rig.node(.active)
    await rig.snapshot("a.snap")
    let release = Mutex<CheckedContinuation<Void, Never>?>(nil)
    let holder = Task {
      await rig.lock.shared {  // a snapshot or an upload pass
        await withCheckedContinuation { continuation in release.withLock { $0 = continuation } }
      }
    }
    try await eventually("the lock held") { rig.lock.sharedHolders == 1 && release.withLock { $0 != nil } }
    let task = Task { await rig.duty().run() }
    defer { task.cancel() }
    try await eventually("the drill waiting for the lock") { rig.lock.waiting == 1 }
    #expect(rig.runner.drilled.isEmpty)
    #expect(await rig.drill?.phase == .running)
    #expect(rig.heartbeats.overdue(now: .now + .seconds(86400 * 365)).isEmpty, "no promise while waiting for others' work")
    release.withLock { $0?.resume() }
    await holder.value
    try await eventually("the drill after the lock") { rig.runner.drilled.count == 1 }
  }

  @Test func aCancelledDrillRecordsNothing() async throws {
    let rig = DrillRig()
    defer { rig.remove() }
    rig.runner.queue(.failure(DrillFailure(.restore, .cancelled)))
    await rig.node(.active)
    await rig.snapshot("a.snap")
    let task = Task { await rig.duty().run() }
    defer { task.cancel() }
    try await eventually("the interrupted drill") { !rig.log.all.filter { $0.message.contains("interrupted") }.isEmpty }
    // Not a verdict: no failure journaled or counted, and the snapshot is still to be drilled.
    try await eventually("the drill after the interruption") { await rig.drill?.lastResult == .passed }
    #expect(rig.log.with(.snapshotDrillFailed).isEmpty)
    #expect(await rig.drill?.failures == [:])
  }
}
