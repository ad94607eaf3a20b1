// SPDX-License-Identifier: Apache-2.0
import Testing

@testable import VaultKeeper

/// `NodeDecider` on its own, in virtual time: the reconnect window, the backoff tables, the
/// escalation of an outage, a reload's memory, the share count, a Raft join finishing the unseal.
@Suite struct NodeDeciderTests {
  let t0 = NodeTime(monotonic: ContinuousClock.now, wall: 1_800_000_000)
  let active = HealthObservation(state: .active, version: "2.7.0")
  let sealed = HealthObservation(state: .sealed, version: "2.7.0")
  let refused = HealthClassifier.unreachable(
    TransportError(.connect, "Couldn't connect to server (Connection refused)", serverAction: .refused), latency: .zero)
  let garbage = HealthObservation(state: .protocolError, problem: "unexpected HTTP status 502")

  func decider(keys: KeyShares? = TestShares.keys(), wrongKeyBackoff: Duration = .seconds(30), memory: NodeMemory? = nil) -> NodeDecider {
    let unseal = UnsealConfig(enabled: true, keySource: nil, foreignProgressGrace: .seconds(30), after: .restart, wrongKeyBackoff: wrongKeyBackoff)
    return NodeDecider(
      settings: .init(node: "http://127.0.0.1:8200", health: HealthConfig(), unseal: unseal, keys: keys), memory: memory, now: t0)
  }

  /// One pass for an observation that needs no unseal; returns the journal and the delay.
  func look(_ d: inout NodeDecider, _ observation: HealthObservation, at now: NodeTime) -> (journal: [JournalEntry], delay: Duration) {
    var journal = d.healthAnswered(observation, at: now).journal
    if case .waitOnOperator(let held) = d.judgeSeal(observation, mainPID: 0, at: now) { journal += held }
    guard case .report(_, _, let delay) = d.cycleEnded(observation, mainPID: 0, outcome: .undecided, at: now, jitter: 0.5) else {
      Issue.record("a pass without an unseal must report")
      return (journal, .zero)
    }
    return (journal, delay)
  }

  /// A lost connection is polled every 50 ms for 10 s (a restarting Vault comes back within
  /// that), then backs off 250 ms, 500 ms, … up to 30 s.
  @Test func reconnectWindowThenBackoffTable() {
    var d = decider()
    var now = t0
    _ = look(&d, active, at: now)
    var delays: [Duration] = []
    while now.monotonic < t0.monotonic.advanced(by: .seconds(200)) {
      let delay = look(&d, refused, at: now).delay
      delays.append(delay)
      now = now.advanced(by: delay)
    }
    let window = delays.prefix { $0 == .milliseconds(50) }
    #expect(window.count == 200)  // 10 s at 50 ms
    let after = Array(delays.dropFirst(window.count).prefix(10))
    #expect(after == [.milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2), .seconds(4), .seconds(8), .seconds(16), .seconds(30), .seconds(30), .seconds(30)])
  }

  /// An answer that is not Vault's earns no reconnect window: it backs off from the first one.
  @Test func protocolErrorsBackOffAtOnce() {
    var d = decider()
    var now = t0
    _ = look(&d, active, at: now)
    var delays: [Duration] = []
    for _ in 0..<4 {
      let delay = look(&d, garbage, at: now).delay
      delays.append(delay)
      now = now.advanced(by: delay)
    }
    #expect(delays == [.milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2)])
  }

  /// The jitter spreads the backoff ±10%, never beyond the maximum.
  @Test func jitterStaysWithinTenPercent() {
    for jitter in [0.0, 1.0] {
      var d = decider()
      _ = look(&d, active, at: t0)
      _ = d.healthAnswered(garbage, at: t0)
      _ = d.judgeSeal(garbage, mainPID: 0, at: t0)
      guard case .report(_, _, let delay) = d.cycleEnded(garbage, mainPID: 0, outcome: .undecided, at: t0, jitter: jitter) else {
        Issue.record("expected a report")
        return
      }
      // Duration × Double is not exact in the last attoseconds.
      let expected: Duration = jitter == 0 ? .milliseconds(225) : .milliseconds(275)
      #expect(abs((delay - expected) / .microseconds(1)) < 1)
    }
  }

  /// A restart stays a warning; an outage that outlasts the window and three checks becomes one
  /// error line, and the recovery one notice.
  @Test func outageIsEscalatedOncePerEpisode() {
    var d = decider()
    var now = t0
    _ = look(&d, active, at: now)
    var journal: [JournalEntry] = []
    for _ in 0..<260 {
      let (lines, delay) = look(&d, refused, at: now)
      journal += lines
      now = now.advanced(by: delay)
    }
    journal += look(&d, active, at: now).journal
    #expect(journal.map(\.level) == [.warning, .error, .notice])
    #expect(journal.map(\.id) == [.unreachable, .unreachable, .recovered])
    #expect(journal[1].message.contains("checks in a row"))
    #expect(journal[0].fields["vault.state"] == "unreachable")
  }

  /// A wrong key waits `wrong_key_backoff`, doubling per wrong key up to 16×.
  @Test func wrongKeyBackoffTable() {
    var d = decider(wrongKeyBackoff: .seconds(30))
    let waits = (0..<7).map { _ in d.wrongKey(at: t0) }
    #expect(waits == [.seconds(30), .seconds(60), .seconds(120), .seconds(240), .seconds(480), .seconds(480), .seconds(480)])
    #expect(d.memory.hold == .wrongKey)
  }

  /// A reload carries the seal judgement and the report over, but gives new keys a try at once:
  /// the wrong-key hold and backoff end; a deliberate seal stays held.
  @Test func reloadKeepsTheJudgementAndDropsTheWrongKeyBackoff() {
    var before = decider()
    _ = look(&before, active, at: t0)
    _ = before.wrongKey(at: t0)
    var after = decider(memory: before.memory)
    #expect(after.memory.hold == nil)
    #expect(after.memory.wrongKeyUntil == nil)
    #expect(after.memory.wrongKeyCount == 0)
    #expect(after.memory.previous == .active)
    // Seen unsealed before the reload: a seal now, without restart evidence, is the brake.
    _ = after.healthAnswered(sealed, at: t0)
    guard case .waitOnOperator(let journal) = after.judgeSeal(sealed, mainPID: 0, at: t0) else {
      Issue.record("a seal after the reload must be judged deliberate")
      return
    }
    #expect(journal.map(\.id) == [.deliberateSeal])
    _ = after.cycleEnded(sealed, mainPID: 0, outcome: .waitingOnOperator, at: t0, jitter: 0.5)
    let again = decider(memory: after.memory)
    #expect(again.memory.hold == .deliberateSeal)
  }

  /// The threshold is compared with our share count once, on the first answer that allows it.
  @Test func shareCountIsCheckedOnce() {
    var d = decider(keys: TestShares.keys(Array(TestShares.right.prefix(2))))
    #expect(d.healthAnswered(refused, at: t0).checkShareCount == false)
    #expect(d.healthAnswered(active, at: t0).checkShareCount == true)
    #expect(d.healthAnswered(active, at: t0).checkShareCount == false)
    let status = SealStatus(sealed: false, threshold: 3, shares: 5, progress: 0, nonce: "")
    let lines = d.shareCountRead(status)
    #expect(lines.map(\.id) == [.tooFewShares])
    #expect(lines.first?.message.contains("holds 2 unseal key shares but vault at http://127.0.0.1:8200 needs 3") == true)
    #expect(d.shareCountRead(status).isEmpty)
    var enough = decider()
    #expect(enough.shareCountRead(status).isEmpty)
  }

  /// Without keys (or with unsealing off) a sealed node is only watched.
  @Test func noKeysMeansWaitingOnTheOperator() {
    var d = decider(keys: nil)
    #expect(d.healthAnswered(sealed, at: t0).checkShareCount == false)
    #expect(d.judgeSeal(sealed, mainPID: 0, at: t0) == .waitOnOperator([]))
    guard case .report(_, _, let delay) = d.cycleEnded(sealed, mainPID: 0, outcome: .waitingOnOperator, at: t0.advanced(by: .seconds(1)), jitter: 0.5)
    else { Issue.record("expected a report"); return }
    #expect(delay == .milliseconds(250))  // changed state: looked at again soon
  }

  /// A Raft node completing its join takes a full set of shares, answers "sealed" with the
  /// attempt cleared, and unseals itself: no new round, one info line, and *unsealed* reported
  /// when it is next seen unsealed, with the time since our first share.
  @Test func raftJoinFinishingTheUnseal() {
    var d = decider()
    _ = d.healthAnswered(sealed, at: t0)
    guard case .unseal(let request) = d.judgeSeal(sealed, mainPID: 0, at: t0) else { Issue.record("expected an unseal"); return }
    #expect(request.reason == "sealed at start-up")
    d.unsealStarted(request, at: t0)
    var status = SealStatus(sealed: true, threshold: 3, shares: 5, progress: 0, nonce: "")
    #expect(d.sealStatusRead(.success(status)).command == .proceed)
    var shares: [Int] = []
    var step = d.nextUnsealStep(at: t0)
    while case .submit(let index) = step.command {
      shares.append(index)
      let progress = shares.count < 3 ? shares.count : 0
      status = SealStatus(sealed: true, threshold: 3, shares: 5, progress: progress, nonce: progress == 0 ? "" : "n1")
      #expect(d.shareAnswered(.success(.status(status)), at: t0.advanced(by: .milliseconds(10))).command == .proceed)
      step = d.nextUnsealStep(at: t0.advanced(by: .milliseconds(10)))
    }
    #expect(shares == [0, 1, 2])
    #expect(step.command == .finished(.undecided))
    #expect(step.journal.map(\.level) == [.info])
    #expect(step.journal.first?.message.contains("finishes the unseal itself") == true)
    _ = d.cycleEnded(sealed, mainPID: 0, outcome: .undecided, at: t0, jitter: 0.5)

    // Still sealed a moment later: no further shares, and nothing more said.
    _ = d.healthAnswered(sealed, at: t0.advanced(by: .seconds(1)))
    guard case .unseal(let again) = d.judgeSeal(sealed, mainPID: 0, at: t0.advanced(by: .seconds(1))) else { Issue.record("expected a look"); return }
    d.unsealStarted(again, at: t0.advanced(by: .seconds(1)))
    _ = d.sealStatusRead(.success(status))
    let waiting = d.nextUnsealStep(at: t0.advanced(by: .seconds(1)))
    #expect(waiting == .init(journal: [], command: .finished(.undecided)))
    _ = d.cycleEnded(sealed, mainPID: 0, outcome: .undecided, at: t0.advanced(by: .seconds(1)), jitter: 0.5)

    let done = d.healthAnswered(active, at: t0.advanced(by: .seconds(2)))
    let unsealed = done.journal.filter { $0.id == .unsealed }
    #expect(unsealed.count == 1)
    #expect(unsealed.first?.message.contains("with 3 shares in 2000 ms (it finished its Raft join first)") == true)
    #expect(unsealed.first?.fields["vault.unseal_ms"] == "2000")
    #expect(d.memory.report.lastUnsealTime == t0.wall + 2)
  }

  /// Vault's error text is redacted before it is logged, should it ever echo a share.
  @Test func sharesAreRedactedFromErrors() {
    let keys = TestShares.keys()
    let text = ShareRedaction.redact("bad share \(TestShares.right[1]) and \(TestShares.right[1])!", keys)
    #expect(text == "bad share <redacted> and <redacted>!")
    #expect(ShareRedaction.redact("nothing secret", keys) == "nothing secret")
  }
}
