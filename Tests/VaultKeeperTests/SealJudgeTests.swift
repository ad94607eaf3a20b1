// SPDX-License-Identifier: Apache-2.0
import Testing
@testable import VaultKeeper

/// The emergency brake: a seal seen while the Vault process kept running is deliberate, and only
/// evidence of a new process (or `unseal.after = "always"`) turns it into a restart. Timeouts,
/// TLS failures, HTTP answers of any kind and new connections are never such evidence.
@Suite struct SealJudgeTests {
  let unsealed = HealthObservation(state: .active, newConnection: false)
  let sealedReused = HealthObservation(state: .sealed, newConnection: false)
  let sealedNew = HealthObservation(state: .sealed, newConnection: true)
  /// What the transport reports for a frozen (SIGSTOP) process or a partition that drops packets.
  let timedOut = HealthClassifier.unreachable(TransportError(.timeout, "Operation timed out after 500 milliseconds"), latency: .milliseconds(500))
  /// The listener is gone.
  let refused = HealthClassifier.unreachable(
    TransportError(.connect, "Couldn't connect to server (Connection refused)", serverAction: .refused), latency: .zero)
  /// The server ended a request in flight (shutdown, crash).
  let cut = HealthClassifier.unreachable(
    TransportError(.protocolError, "the connection ended during the request", serverAction: .closed), latency: .zero)
  /// A frozen process killed while our handshake waited in its queue: the kernel reset it.
  let resetInHandshake = HealthClassifier.unreachable(
    TransportError(.tls, "Recv failure: Connection reset by peer", serverAction: .closed), latency: .zero)
  let tlsFailure = HealthClassifier.unreachable(TransportError(.tls, "SSL certificate problem"), latency: .zero)
  let hostUnreachable = HealthClassifier.unreachable(TransportError(.connect, "No route to host"), latency: .zero)
  /// An answer that is not Vault's (a 500, a proxy's 502): the listener is there.
  let garbage = HealthObservation(state: .protocolError, problem: "unexpected HTTP status 500")

  /// Seen unsealed, then sealed over the kept-alive connection: the deliberate seal, held.
  func braked(mainPID: Int = 0, after: UnsealConfig.After = .restart) -> SealJudge {
    var judge = SealJudge(after: after)
    judge.observe(unsealed, mainPID: mainPID)
    #expect(judge.verdict(sealedObservation: sealedReused, mainPID: mainPID) == .deliberate || after == .always)
    judge.observe(sealedReused, mainPID: mainPID)
    return judge
  }

  @Test func sealedAtStartupIsUnsealed() {
    #expect(SealJudge(after: .restart).verdict(sealedObservation: sealedReused, mainPID: 0) == .startup)
    var judge = SealJudge(after: .restart)
    judge.observe(timedOut, mainPID: 0)
    judge.observe(refused, mainPID: 0)
    #expect(judge.verdict(sealedObservation: sealedNew, mainPID: 0) == .startup)
  }

  /// Our own unseal answered "unsealed" counts as seeing the node unsealed: a seal before the
  /// next health check is the operator's brake, and a restart in that window is a restart.
  @Test func ourOwnUnsealCountsAsSeenUnsealed() {
    var judge = SealJudge(after: .restart)
    judge.observe(sealedReused, mainPID: 0)
    #expect(judge.verdict(sealedObservation: sealedReused, mainPID: 0) == .startup)
    judge.unsealedByUs(mainPID: 0)
    #expect(judge.verdict(sealedObservation: sealedReused, mainPID: 0) == .deliberate)
    judge.observe(cut, mainPID: 0)
    #expect(judge.verdict(sealedObservation: sealedNew, mainPID: 0) == .restart)
    #expect(judge.restartEvidence(mainPID: 0) == .connectionClosed)
  }

  @Test func ourOwnUnsealRemembersTheMainPID() {
    var judge = SealJudge(after: .restart)
    judge.unsealedByUs(mainPID: 41)
    #expect(judge.verdict(sealedObservation: sealedNew, mainPID: 41) == .deliberate)
    #expect(judge.verdict(sealedObservation: sealedNew, mainPID: 42) == .restart)
    #expect(judge.restartEvidence(mainPID: 42) == .newMainPID)
  }

  /// Evidence seen before our unseal belongs to the process we just opened, not to a new one.
  @Test func ourOwnUnsealForgetsEarlierEvidence() {
    var judge = braked()
    judge.observe(refused, mainPID: 0)
    judge.unsealedByUs(mainPID: 0)
    #expect(judge.evidence == nil)
    #expect(judge.verdict(sealedObservation: sealedReused, mainPID: 0) == .deliberate)
  }

  @Test func timeoutsThenSealedStillHeld() {
    var judge = braked()
    for _ in 0..<12 { judge.observe(timedOut, mainPID: 0) }
    // After the resume the answer comes over a new connection (libcurl closed the timed-out
    // one itself): still the same process, still the operator's seal.
    #expect(judge.verdict(sealedObservation: sealedNew, mainPID: 0) == .deliberate)
    #expect(judge.evidence == nil)
    judge.observe(sealedNew, mainPID: 0)
    #expect(judge.verdict(sealedObservation: sealedReused, mainPID: 0) == .deliberate)
  }

  @Test func timeoutsBeforeTheSealAreNoEvidenceEither() {
    var judge = SealJudge(after: .restart)
    judge.observe(unsealed, mainPID: 0)
    judge.observe(timedOut, mainPID: 0)
    judge.observe(timedOut, mainPID: 0)
    #expect(judge.verdict(sealedObservation: sealedNew, mainPID: 0) == .deliberate)
  }

  @Test func tlsFailuresUnreachableHostsAndNonVaultAnswersAreNoEvidence() {
    var judge = braked()
    judge.observe(tlsFailure, mainPID: 0)
    judge.observe(hostUnreachable, mainPID: 0)
    judge.observe(garbage, mainPID: 0)
    judge.observe(timedOut, mainPID: 0)
    #expect(judge.verdict(sealedObservation: sealedNew, mainPID: 0) == .deliberate)
  }

  @Test func aNewConnectionAloneIsNoEvidence() {
    let judge = braked()
    #expect(judge.verdict(sealedObservation: sealedNew, mainPID: 0) == .deliberate)
  }

  @Test func connectionRefusedThenSealedIsARestart() {
    var judge = braked()
    judge.observe(refused, mainPID: 0)
    #expect(judge.verdict(sealedObservation: sealedNew, mainPID: 0) == .restart)
    #expect(judge.restartEvidence(mainPID: 0) == .connectionRefused)
  }

  @Test func aRequestCutByTheServerIsARestart() {
    var judge = braked()
    judge.observe(cut, mainPID: 0)
    #expect(judge.verdict(sealedObservation: sealedNew, mainPID: 0) == .restart)
    #expect(judge.restartEvidence(mainPID: 0) == .connectionClosed)
  }

  @Test func theKeptAliveConnectionClosedByTheServerIsARestart() {
    var judge = braked()
    judge.notice(.connectionClosed)
    #expect(judge.verdict(sealedObservation: sealedReused, mainPID: 0) == .restart)
    #expect(judge.restartEvidence(mainPID: 0) == .connectionClosed)
  }

  /// A restart entirely inside a run of timeouts is still caught when it shows itself.
  @Test func aTimeoutFollowedByARefusalIsARestart() {
    var judge = braked()
    judge.observe(timedOut, mainPID: 0)
    judge.observe(timedOut, mainPID: 0)
    judge.observe(refused, mainPID: 0)
    judge.observe(timedOut, mainPID: 0)  // later timeouts do not erase it
    #expect(judge.verdict(sealedObservation: sealedNew, mainPID: 0) == .restart)
    #expect(judge.restartEvidence(mainPID: 0) == .connectionRefused)
  }

  @Test func aFrozenProcessKilledDuringTheHandshakeIsARestart() {
    var judge = braked()
    judge.observe(timedOut, mainPID: 0)
    judge.observe(resetInHandshake, mainPID: 0)
    judge.observe(timedOut, mainPID: 0)
    #expect(judge.verdict(sealedObservation: sealedNew, mainPID: 0) == .restart)
    #expect(judge.restartEvidence(mainPID: 0) == .connectionClosed)
  }

  @Test func theFirstEvidenceIsKept() {
    var judge = braked()
    judge.observe(cut, mainPID: 0)
    judge.observe(refused, mainPID: 0)
    judge.notice(.newMainPID)
    #expect(judge.evidence == .connectionClosed)
  }

  @Test func seenUnsealedClearsTheEvidence() {
    var judge = braked()
    judge.observe(refused, mainPID: 0)
    judge.observe(unsealed, mainPID: 0)  // e.g. unsealed by hand, or by us
    #expect(judge.evidence == nil)
    #expect(judge.verdict(sealedObservation: sealedNew, mainPID: 0) == .deliberate)
  }

  @Test func samePIDMeansDeliberateWhateverTheConnectionSaw() {
    var judge = braked(mainPID: 100)
    judge.observe(refused, mainPID: 100)
    judge.notice(.connectionClosed)
    #expect(judge.verdict(sealedObservation: sealedNew, mainPID: 100) == .deliberate)
    #expect(judge.verdict(sealedObservation: sealedReused, mainPID: 101) == .restart)
    #expect(judge.restartEvidence(mainPID: 101) == .newMainPID)
  }

  @Test func timeoutsDoNotChangeAPIDVerdict() {
    var judge = braked(mainPID: 100)
    for _ in 0..<5 { judge.observe(timedOut, mainPID: 100) }
    #expect(judge.verdict(sealedObservation: sealedNew, mainPID: 100) == .deliberate)
  }

  @Test func aNewMainPIDIsEvidenceWhenThePIDWasNotKnownBoth() {
    var judge = braked(mainPID: 0)
    judge.notice(.newMainPID)
    #expect(judge.verdict(sealedObservation: sealedReused, mainPID: 200) == .restart)
    #expect(judge.restartEvidence(mainPID: 200) == .newMainPID)
  }

  @Test func alwaysOverridesEverything() {
    var judge = SealJudge(after: .always)
    judge.observe(unsealed, mainPID: 100)
    #expect(judge.verdict(sealedObservation: sealedReused, mainPID: 100) == .always)
  }
}
