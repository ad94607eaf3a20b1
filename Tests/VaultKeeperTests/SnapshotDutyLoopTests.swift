// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing

@testable import VaultKeeper

/// The snapshot duty's loop against a Vault in memory, in virtual time: each pass is one turn
/// of the schedule (the clock moves by the wait instead of sleeping); staleness is judged by
/// calling the freshness task's body. Real files: the snapshots, the ledger, retention.
@Suite struct SnapshotDutyLoopTests {
  /// Virtual time elapsed since `start`.
  func elapsed(_ rig: SnapshotDutyRig, since start: NodeTime) -> Duration { start.monotonic.duration(to: rig.clock.now().monotonic) }

  /// Waits for a condition another task brings about (`eventually` in CertbotLayout.swift: a
  /// 60 s ceiling that only turns a hang into a failure).
  func eventually(_ condition: () -> Bool) async throws {
    try #require(await VaultKeeperTests.eventually(condition))
  }

  @Test func firstStartTakesOneAtOnceThenOneEachInterval() async throws {
    let rig = try SnapshotDutyRig()
    defer { rig.removeDirectory() }
    await rig.node(.active)
    var state = await rig.duty.start()
    #expect(await rig.pass(&state) == .attempted(committed: true))
    #expect(rig.snapshots.count == 1)
    let first = rig.clock.now()
    let ledger = try #require(SnapshotLedger.load(path: rig.duty.context.ledgerPath))
    #expect(ledger.lastSuccess?.file == rig.snapshots.first)
    #expect(ledger.lastSuccess?.time == first.wall)

    guard case .waited(let wait) = await rig.pass(&state) else { Issue.record("nothing is due right after a snapshot"); return }
    #expect(wait.phase == .idle)
    #expect(wait.nextDue == first.wall + SnapshotDutyRig.interval.seconds)
    #expect(await rig.passUntilAttempt(&state, limit: .seconds(7200)) == .attempted(committed: true))
    let gap = elapsed(rig, since: first)
    #expect(gap >= SnapshotDutyRig.interval && gap < SnapshotDutyRig.interval + .seconds(1))
    #expect(rig.snapshots.count == 2)
  }

  /// Down for five intervals: one snapshot at start, then the ordinary interval, never a burst
  /// for the missed slots.
  @Test func downtimeIsCaughtUpOnceNeverInABurst() async throws {
    let wall = 1_800_000_000.0
    let ledger = SnapshotLedger(
      lastSuccess: .init(time: wall - 5 * 3600, file: "vaultkeeper-c1-old.snap", raftIndex: 7, bytes: 1, durationSeconds: 1), trackingSince: wall - 86400)
    let rig = try SnapshotDutyRig(ledger: ledger, wall: wall)
    defer { rig.removeDirectory() }
    await rig.node(.active)
    var state = await rig.duty.start()
    #expect(rig.log.all.contains { $0.message.contains("older than the schedule allows (downtime?)") })
    #expect(await rig.pass(&state) == .attempted(committed: true))
    let caughtUp = rig.clock.now()
    #expect(await rig.passUntilAttempt(&state, limit: .seconds(3599)) == nil)
    #expect(await rig.passUntilAttempt(&state, limit: .seconds(2)) == .attempted(committed: true))
    #expect(elapsed(rig, since: caughtUp) >= SnapshotDutyRig.interval)
    #expect(rig.vault.current.downloads == 2)
  }

  /// Failures retry after 1, 2, 4 minutes; a success resets the back-off and the count.
  @Test func retriesDoubleAndASuccessResetsThem() async throws {
    let rig = try SnapshotDutyRig()
    defer { rig.removeDirectory() }
    await rig.node(.active)
    rig.vault.update { $0.download = .fail(500) }
    var state = await rig.duty.start()
    #expect(await rig.pass(&state) == .attempted(committed: false))
    var gaps: [Duration] = []
    for _ in 0..<3 {
      let failedAt = rig.clock.now()
      #expect(await rig.passUntilAttempt(&state, limit: .seconds(3600)) == .attempted(committed: false))
      gaps.append(elapsed(rig, since: failedAt))
    }
    for (gap, expected) in zip(gaps, [60, 120, 240]) {
      #expect(gap >= .seconds(expected) && gap < .seconds(expected + 1), "retry after \(gap), expected \(expected) s")
    }
    #expect(rig.report(state).consecutiveFailures == 4)
    #expect(rig.log.with(.snapshotFailed).count == 4)

    rig.vault.update { $0.download = .serve }
    #expect(await rig.passUntilAttempt(&state, limit: .seconds(3600)) == .attempted(committed: true))
    #expect(rig.report(state).consecutiveFailures == 0)
    #expect(state.scheduler.consecutiveFailures == 0)

    rig.vault.update { $0.download = .fail(500) }
    #expect(await rig.passUntilAttempt(&state, limit: .seconds(7200)) == .attempted(committed: false))
    let failedAgain = rig.clock.now()
    #expect(await rig.passUntilAttempt(&state, limit: .seconds(3600)) == .attempted(committed: false))
    let gap = elapsed(rig, since: failedAgain)
    #expect(gap >= .seconds(60) && gap < .seconds(61))
  }

  /// A standby waits, looking every second, and snapshots as soon as leadership moves here.
  @Test func standbyTakesOverWhenItBecomesActive() async throws {
    let rig = try SnapshotDutyRig()
    defer { rig.removeDirectory() }
    await rig.node(.standby)
    var state = await rig.duty.start()
    for _ in 0..<10 {
      guard case .waited(let wait) = await rig.pass(&state) else { Issue.record("a standby must not snapshot"); return }
      #expect(wait.phase == .standby)
      #expect(wait.delay == .seconds(1))
    }
    #expect(rig.vault.current.downloads == 0)
    #expect(await rig.board.snapshot().snapshot?.phase == .standby)
    await rig.node(.active)
    #expect(await rig.pass(&state) == .attempted(committed: true))
    #expect(rig.snapshots.count == 1)
  }

  /// Sealed: the due snapshot waits (STATUS says why), and the stale alert fires while it does,
  /// once, naming the wait.
  @Test func sealedWaitsAndTheStaleAlertFiresWhileWaiting() async throws {
    let rig = try SnapshotDutyRig()
    defer { rig.removeDirectory() }
    await rig.node(.sealed)
    var state = await rig.duty.start()
    guard case .waited(let wait) = await rig.pass(&state) else { Issue.record("a sealed node cannot snapshot"); return }
    #expect(wait.phase == .waiting)
    #expect(wait.waitingFor == "vault is sealed")
    #expect(wait.delay == .seconds(1))
    await rig.duty.judgeFreshness(state.status)
    #expect(rig.log.with(.snapshotsStale).isEmpty)

    rig.clock.advance(by: SnapshotDutyRig.staleAfter + .seconds(1))
    await rig.pass(&state)
    await rig.duty.judgeFreshness(state.status)
    await rig.duty.judgeFreshness(state.status)
    let stale = rig.log.with(.snapshotsStale)
    #expect(stale.count == 1)
    #expect(stale.first?.message.contains("waiting: vault is sealed") == true)
    #expect(rig.report(state).stale)
    #expect(rig.vault.current.downloads == 0)
  }

  /// A download that hangs holds the schedule, but not the freshness judgement: the stale alert
  /// fires while it hangs; stopping cuts the transfer off and leaves no file behind.
  @Test func aHangingTransferStillLetsTheStaleAlertFire() async throws {
    let rig = try SnapshotDutyRig()
    defer { rig.removeDirectory() }
    await rig.node(.active)
    rig.vault.update { $0.download = .hang }
    let state = await rig.duty.start()
    let duty = rig.duty
    let transfer = Task {
      var running = state
      return await duty.pass(&running, uploads: nil)
    }
    var started = rig.vault.downloadStarted.makeAsyncIterator()
    _ = await started.next()
    rig.clock.advance(by: SnapshotDutyRig.staleAfter + .seconds(1))
    await rig.duty.judgeFreshness(state.status)
    let stale = rig.log.with(.snapshotsStale)
    #expect(stale.count == 1)
    #expect(stale.first?.message.contains("a snapshot download is still running") == true)
    transfer.cancel()
    #expect(await transfer.value == .attempted(committed: false))
    #expect(rig.snapshots.isEmpty)
    #expect(SnapshotDirectory.removeLeftovers("\(rig.directory)/snaps").isEmpty)
  }

  /// A ledger dated in the future (a clock that was ahead) is reported and not believed: the
  /// snapshot is due at once, and staleness counts from now, not from that date.
  @Test func aFutureDatedLedgerIsNotBelieved() async throws {
    let wall = 1_800_000_000.0
    let ledger = SnapshotLedger(
      lastSuccess: .init(time: wall + 86400, file: "vaultkeeper-c1-future.snap", raftIndex: 9, bytes: 1, durationSeconds: 1), trackingSince: wall - 60)
    let rig = try SnapshotDutyRig(ledger: ledger, wall: wall)
    defer { rig.removeDirectory() }
    await rig.node(.sealed)
    var state = await rig.duty.start()
    #expect(rig.log.with(.snapshotFutureDated).count == 1)
    #expect(rig.report(state).lastSuccess == nil)
    guard case .waited(let wait) = await rig.pass(&state) else { Issue.record("sealed: nothing can be taken"); return }
    #expect(wait.phase == .waiting)  // due now, not in a day
    await rig.node(.active)
    #expect(await rig.pass(&state) == .attempted(committed: true))
  }

  /// The AppRole token is renewed at two thirds of its TTL, between snapshots, not later.
  @Test func theTokenIsRenewedAtTwoThirdsOfItsTTL() async throws {
    let rig = try SnapshotDutyRig()
    defer { rig.removeDirectory() }
    rig.vault.update { $0.ttlSeconds = 1800 }
    await rig.node(.active)
    var state = await rig.duty.start()
    let loggedIn = rig.clock.now()
    #expect(await rig.pass(&state) == .attempted(committed: true))
    #expect(rig.vault.current.logins == 1)
    var at = Duration.zero  // when the pass that renewed began
    while rig.vault.current.renewals == 0, elapsed(rig, since: loggedIn) < .seconds(1800) {
      at = elapsed(rig, since: loggedIn)
      #expect(await rig.pass(&state) != .attempted(committed: true))
    }
    #expect(rig.vault.current.renewals == 1)
    #expect(at >= .seconds(1200) && at < .seconds(1201), "renewed after \(at)")
    #expect(rig.vault.current.logins == 1)
  }

  /// A due snapshot waits while a restore drill holds the work lock; meanwhile
  /// its heartbeat is retired, so the watchdog does not fire however long the holder takes.
  @Test func aSnapshotWaitsForTheWorkLockWithoutBreakingItsHeartbeat() async throws {
    let rig = try SnapshotDutyRig()
    defer { rig.removeDirectory() }
    await rig.node(.active)
    let state = await rig.duty.start()
    let drill = TestGate()
    let lock = rig.workLock
    let holder = Task { await lock.exclusive { await drill.wait() } }
    try await eventually { lock.isHeldExclusively }
    let duty = rig.duty
    let snapshot = Task {
      var running = state
      return await duty.pass(&running, uploads: nil)
    }
    try await eventually { lock.waiting == 1 }
    #expect(rig.heartbeats.overdue(now: .now.advanced(by: .seconds(86400))).contains(SnapshotDuty.heartbeat) == false)
    #expect(rig.report(state).phase == .waiting)
    #expect(rig.report(state).waitingFor == SnapshotDuty.lockBusy)
    #expect(rig.vault.current.downloads == 0)
    drill.open()
    _ = await holder.value
    #expect(await snapshot.value == .attempted(committed: true))
    #expect(rig.vault.current.downloads == 1)
    #expect(!lock.isHeldExclusively && lock.sharedHolders == 0)
  }

  /// An upload pass waits while a restore drill holds the work lock (its heartbeat retired
  /// meanwhile), and runs once the drill is over.
  @Test func anUploadPassWaitsForTheWorkLock() async throws {
    guard case .success(let endpoint) = S3Endpoint.parse("https://s3.example.com") else { Issue.record("test endpoint"); return }
    let s3 = S3Config(
      endpoint: endpoint, region: "r", bucket: "b", prefix: "vk/", pathStyle: false, accessKeyID: .credential("a"), secretAccessKey: .credential("s"),
      caFile: nil, timeout: .seconds(30), retention: RetentionPolicy(keepLast: 2), ownRetention: false, verifyETag: true,
      multipartThreshold: 256 << 20, partSize: 5 << 20)
    let rig = try SnapshotDutyRig(s3: s3)
    defer { rig.removeDirectory() }
    await rig.node(.active)
    var state = await rig.duty.start()
    #expect(await rig.pass(&state) == .attempted(committed: true))  // something to upload
    let drill = TestGate()
    let lock = rig.workLock
    let holder = Task { await lock.exclusive { await drill.wait() } }
    try await eventually { lock.isHeldExclusively }
    let uploads = try #require(rig.duty.makeUploads(state.status))
    let running = Task { await uploads.run() }
    defer { running.cancel() }
    try await eventually { lock.waiting == 1 }
    #expect(rig.log.with(.snapshotUploadFailed).isEmpty)
    #expect(rig.heartbeats.overdue(now: .now.advanced(by: .seconds(86400))).contains(SnapshotUploads.heartbeat) == false)
    drill.open()
    _ = await holder.value
    // The pass runs now; without credentials it fails at once, which is how it is seen here.
    try await eventually { !rig.log.with(.snapshotUploadFailed).isEmpty }
    #expect(rig.report(state).uploadFailures == 1)
  }
}
