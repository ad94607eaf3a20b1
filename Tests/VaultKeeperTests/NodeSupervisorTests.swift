// SPDX-License-Identifier: Apache-2.0
import Testing

@testable import VaultKeeper

/// The node loop against a Vault in memory, in virtual time: each `pass()` is one turn of
/// `run()` without the sleep (the clock moves by the delay instead) and without the board.
@Suite struct NodeSupervisorTests {
  /// Unsealed at start-up, then seen unsealed.
  func startedAndUnsealed(_ rig: NodeRig) async {
    #expect(await rig.passUntil(.active) != nil)
    #expect(rig.log.with(.unsealed).count == 1)
    #expect(rig.log.with(.unsealed).first?.message.contains("(sealed at start-up) with 3 shares") == true)
  }

  /// Fifty restarts, with each kind of evidence a restart leaves: every one unsealed with exactly
  /// the threshold's shares, never taken for the operator's brake.
  @Test func restartStormIsUnsealedEveryTime() async {
    let rig = NodeRig()
    await startedAndUnsealed(rig)
    let restarts = 50
    for i in 1...restarts {
      switch i % 3 {
      case 0:
        // Seen down (connection refused), then back sealed; systemd's view is not known.
        rig.unitView.update(nil)
        rig.vault.update { $0.listening = false }
        await rig.pass()
        rig.vault.restart()
      case 1:
        // Restarted between two checks; the transport saw the kept-alive connection close.
        rig.unitView.update(nil)
        rig.vault.restart()
        rig.supervisor.connectionLost()
      default:
        // Restarted between two checks; systemd reports the new main PID (as the unit
        // watcher does: the view changes, and the supervisor hears of it).
        rig.vault.restart()
        rig.unitView.update(UnitSnapshot(activeState: "active", subState: "running", mainPID: 1000 + i))
        rig.supervisor.unitMainPIDChanged()
      }
      #expect(await rig.passUntil(.active) != nil, "restart \(i) not unsealed")
    }
    let unsealed = rig.log.with(.unsealed)
    #expect(unsealed.count == restarts + 1)
    #expect(unsealed.dropFirst().allSatisfy { $0.message.contains("(sealed after a restart) with 3 shares") })
    #expect(Set(unsealed.dropFirst().compactMap { $0.fields["vault.restart_evidence"] }) == ["connection-refused", "connection-closed", "new-main-pid"])
    #expect(rig.log.with(.deliberateSeal).isEmpty)
    #expect(rig.vault.current.received == 3 * (restarts + 1))
  }

  /// A restart seen only as the node being sealed again, right after our own unseal answered
  /// "unsealed" and before any health check saw it open, is still a restart (never start-up).
  @Test func restartRightAfterOurUnsealIsARestart() async {
    let rig = NodeRig()
    rig.unitView.update(UnitSnapshot(activeState: "active", subState: "running", mainPID: 1000))
    await rig.pass()  // unsealed; the loop looks again at once
    rig.vault.restart()
    rig.unitView.update(UnitSnapshot(activeState: "active", subState: "running", mainPID: 1001))
    #expect(await rig.passUntil(.active) != nil)
    #expect(rig.log.with(.unsealed).last?.message.contains("(sealed after a restart)") == true)
  }

  /// The operator's brake: sealed while the process kept running is held (one critical line,
  /// no shares, polled at the ordinary interval) until the override, the node seen unsealed, or
  /// a restart.
  @Test func deliberateSealIsHeldAndReleased() async {
    let rig = NodeRig()
    rig.unitView.update(UnitSnapshot(activeState: "active", subState: "running", mainPID: 1000))
    await startedAndUnsealed(rig)
    let received = rig.vault.current.received

    // Held.
    rig.vault.sealDeliberately()
    var delays: [Duration] = []
    for _ in 0..<5 {
      guard let result = await rig.pass() else { Issue.record("a held node must report"); return }
      #expect(result.report.state == .sealed)
      #expect(result.report.hold == .deliberateSeal)
      delays.append(result.delay)
    }
    #expect(rig.log.with(.deliberateSeal).count == 1)
    #expect(rig.log.with(.deliberateSeal).first?.level == .critical)
    #expect(rig.vault.current.received == received)
    #expect(delays.dropFirst() .allSatisfy { $0 == NodeRig.health.interval })

    // Released by the override (`vaultkeeper unseal`).
    let override = await rig.supervisor.checkOnce(unseal: true)
    #expect(override.unsealed)
    #expect(override.after.state == .active)
    #expect(await rig.pass()?.report.hold == nil)

    // Braked again and released by an operator's own unseal: seen unsealed ends the hold, and
    // the next brake is a new episode with its own line.
    rig.vault.sealDeliberately()
    #expect(await rig.pass()?.report.hold == .deliberateSeal)
    #expect(rig.log.with(.deliberateSeal).count == 2)
    rig.vault.update { $0.sealed = false }
    #expect(await rig.pass()?.report.hold == nil)
    rig.vault.sealDeliberately()
    #expect(await rig.pass()?.report.hold == .deliberateSeal)
    #expect(rig.log.with(.deliberateSeal).count == 3)

    // Released by a restart: a new process must be unsealed.
    rig.vault.restart()
    rig.unitView.update(UnitSnapshot(activeState: "active", subState: "running", mainPID: 1001))
    let report = await rig.passUntil(.active)
    #expect(report?.hold == nil)
    #expect(rig.log.with(.unsealed).last?.fields["vault.restart_evidence"] == "new-main-pid")
  }

  /// A closed connection does not release the brake while systemd's main PID is known and
  /// unchanged: the PID is the stronger evidence.
  @Test func samePIDKeepsTheBrakeDespiteAClosedConnection() async {
    let rig = NodeRig()
    rig.unitView.update(UnitSnapshot(activeState: "active", subState: "running", mainPID: 1000))
    await startedAndUnsealed(rig)
    rig.vault.sealDeliberately()
    rig.supervisor.connectionLost()
    #expect(await rig.pass()?.report.hold == .deliberateSeal)
    #expect(rig.log.with(.unsealed).count == 1)
  }

  /// A Vault that went away is polled every 50 ms for the reconnect window, warned about once,
  /// and unsealed as a restart as soon as it answers sealed again.
  @Test func reconnectWindowPollsFastAndUnsealsTheRestart() async {
    let rig = NodeRig()
    await startedAndUnsealed(rig)
    rig.vault.update { $0.listening = false }
    let down = rig.clock.now()
    var delays: [Duration] = []
    while down.monotonic.duration(to: rig.clock.now().monotonic) < .seconds(3) {
      guard let result = await rig.pass() else { Issue.record("an unreachable node must report"); return }
      #expect(result.report.state == .unreachable)
      delays.append(result.delay)
    }
    #expect(delays.count == 60)
    #expect(delays.allSatisfy { $0 == .milliseconds(50) })
    #expect(rig.log.with(.unreachable).map(\.level) == [.warning])
    rig.vault.restart()
    #expect(await rig.passUntil(.active) != nil)
    let unsealed = rig.log.with(.unsealed).last
    #expect(unsealed?.message.contains("(sealed after a restart) with 3 shares") == true)
    #expect(unsealed?.fields["vault.restart_evidence"] == "connection-refused")
  }

  /// Shares of another cluster: one critical line per wrong key, no shares during the backoff,
  /// the next try after it (with the wait doubled); a reload tries new keys at once.
  @Test func wrongKeyBacksOffAndHolds() async {
    let rig = NodeRig(keys: TestShares.keys(TestShares.wrong), wrongKeyBackoff: .seconds(30))
    let start = rig.clock.now()
    guard let first = await rig.pass() else { Issue.record("expected a report"); return }
    #expect(first.report.hold == .wrongKey)
    #expect(first.report.unsealAttempts["wrong_key"] == 1)
    #expect(rig.vault.current.received == 3)
    let wrong = rig.log.with(.wrongKey)
    #expect(wrong.count == 1)
    #expect(wrong.first?.message.contains("next try in 30s") == true)
    #expect(wrong.first?.fields["vault.state"] == "sealed")

    // No shares until 30 s have passed; then a second try, and the wait doubles.
    var tries: [Duration] = []
    var memory = first.memory
    while rig.log.with(.wrongKey).count < 3 {
      let before = rig.vault.current.received
      guard let result = await rig.pass() else { Issue.record("expected a report"); return }
      memory = result.memory
      if rig.vault.current.received > before { tries.append(start.monotonic.duration(to: rig.clock.now().monotonic) - result.delay) }
    }
    #expect(tries.count == 2)
    #expect(tries[0] >= .seconds(30) && tries[0] < .seconds(36))
    #expect(tries[1] >= tries[0] + .seconds(60) && tries[1] < tries[0] + .seconds(66))
    #expect(rig.log.with(.wrongKey).last?.message.contains("next try in 2m") == true)

    // A reload with the right keys tries at once, carrying the memory over.
    let reloaded = NodeRig(keys: TestShares.keys(TestShares.right), memory: memory)
    reloaded.vault.update { $0 = rig.vault.current }
    #expect(await reloaded.passUntil(.active) != nil)
    #expect(reloaded.log.with(.unsealed).count == 1)
  }

  /// Fewer shares than the threshold: said once (at the first look), held, never a share sent.
  @Test func tooFewSharesIsSaidOnceAndHeld() async {
    let rig = NodeRig(keys: TestShares.keys(Array(TestShares.right.prefix(2))))
    for _ in 0..<10 {
      let result = await rig.pass()
      #expect(result?.report.hold == .tooFewShares(have: 2, need: 3))
    }
    #expect(rig.log.with(.tooFewShares).count == 1)
    #expect(rig.log.with(.tooFewShares).first?.level == .critical)
    #expect(rig.vault.current.received == 0)
  }

  /// Someone else's unseal attempt is left alone for the grace (said once), then reset, and ours
  /// goes in.
  @Test func foreignProgressIsLeftAloneThenReset() async {
    let rig = NodeRig(foreignProgressGrace: .seconds(30))
    rig.vault.update { s in
      s.progress = 1
      s.nonce = "their-attempt"
      s.taken = ["someone-elses-share"]
    }
    let start = rig.clock.now()
    #expect(await rig.passUntil(.active, limit: 400) != nil)
    #expect(rig.log.with(.foreignProgress).count == 1)
    #expect(rig.log.with(.foreignProgressReset).count == 1)
    #expect(rig.vault.current.received == 3)
    #expect(start.monotonic.duration(to: rig.clock.now().monotonic) >= .seconds(30))
  }

  /// Unseal requests that fail (a proxy's 502) are logged once per episode, with any share text
  /// redacted, and back off like a failing node; the next episode is logged again.
  @Test func failingUnsealIsLoggedOnceAndBacksOff() async {
    let rig = NodeRig()
    rig.vault.update { s in
      s.unsealFailure = 502
      s.unsealFailureText = "proxy saw \(TestShares.right[0])"
    }
    var delays: [Duration] = []
    for _ in 0..<5 {
      guard let result = await rig.pass() else { Issue.record("expected a report"); return }
      delays.append(result.delay)
    }
    #expect(delays == [.milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2), .seconds(4)])
    let failures = rig.log.with(.unsealFailed)
    #expect(failures.count == 1)
    #expect(failures.first?.message.contains("<redacted>") == true)
    #expect(rig.log.all.allSatisfy { !$0.message.contains(TestShares.right[0]) })

    rig.vault.update { $0.unsealFailure = nil }
    #expect(await rig.passUntil(.active) != nil)
    rig.vault.update { $0.unsealFailure = 502 }
    rig.vault.restart()
    rig.supervisor.connectionLost()
    await rig.pass()
    #expect(rig.log.with(.unsealFailed).count == 2)
  }

  /// An auto-unseal node is watched, never fed, and said once.
  @Test func autoUnsealIsNeverFed() async {
    let rig = NodeRig()
    rig.vault.update { $0.type = "awskms" }
    for _ in 0..<5 { await rig.pass() }
    #expect(rig.log.with(.autoUnseal).count == 1)
    #expect(rig.vault.current.received == 0)
  }
}
