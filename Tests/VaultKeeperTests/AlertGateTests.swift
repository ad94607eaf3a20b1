// SPDX-License-Identifier: Apache-2.0
import Testing

@testable import VaultKeeper

/// Alert hygiene in virtual time: the report a node loop would post, the gate's answer.
@Suite struct AlertGateTests {
  static let address = "https://10.0.0.2:8200"

  /// A report with one node in `state` (checked at `check`), optionally held.
  static func report(_ state: NodeState, check: Double, hold: HoldReason? = nil, lastUnseal: Double? = nil) -> DaemonReport {
    var node = NodeReport(address: address, state: state, since: 0, lastCheck: check)
    node.hold = hold
    node.lastUnsealTime = lastUnseal
    node.problem = state == .unreachable ? "connect: connection refused" : nil
    return DaemonReport(pid: 1, startedAt: 0, updatedAt: check, configPath: "/etc/vaultkeeper/vaultkeeper.toml", nodes: [node])
  }

  /// Feeds the reports (one per health check, a second apart from `start`) and collects messages.
  struct Run {
    var conditions = AlertConditions(unsealEnabled: true)
    var gate: AlertGate
    var messages: [AlertMessage] = []
    /// Virtual time: `at` seconds are this instant plus `at`, on both clocks.
    let origin = ContinuousClock.now

    init(policy: AlertGate.Policy = .init()) { gate = AlertGate(policy: policy) }

    mutating func feed(_ report: DaemonReport, at now: Double) {
      let look = conditions.look(at: report, now: now)
      messages += gate.pass(look, now: NodeTime(monotonic: origin.advanced(by: .milliseconds(Int64(now * 1000))), wall: now))
    }
  }

  /// The scenario the issue names: Vault restarts and vaultkeeper unseals it within 100 ms, over
  /// and over. Sealed-and-being-unsealed is routine, and the unreachable moments are shorter than
  /// `min_duration`: nothing is sent, ever.
  @Test func aRestartStormSendsNothing() {
    var run = Run()
    var t = 1000.0
    for restart in 0..<50 {
      run.feed(Self.report(.active, check: t), at: t)
      t += 5
      run.feed(Self.report(.unreachable, check: t), at: t)  // the process restarting
      t += 0.5
      run.feed(Self.report(.sealed, check: t), at: t)
      t += 0.1
      run.feed(Self.report(.active, check: t, lastUnseal: t), at: t)
      #expect(run.messages.isEmpty, "restart \(restart)")
      t += 5
    }
    #expect(run.gate.openProblems.isEmpty)
  }

  /// An outage: one message once both thresholds are passed, nothing more while it lasts (until
  /// the reminder), one `resolved` when it ends.
  @Test func anOutageSendsOneProblemAndOneResolution() {
    var run = Run(policy: .init(minFailures: 3, minDuration: .seconds(60)))
    run.feed(Self.report(.active, check: 1000), at: 1000)
    for second in stride(from: 1001.0, through: 1060, by: 1) {
      run.feed(Self.report(.unreachable, check: second), at: second)
    }
    #expect(run.messages.isEmpty, "59 s of outage is below min_duration")
    run.feed(Self.report(.unreachable, check: 1061), at: 1061)
    #expect(run.messages.map(\.status) == [.problem])
    let problem = run.messages[0]
    #expect(problem.event == .unreachable && problem.severity == .critical && problem.node == Self.address)
    #expect(problem.key == "unreachable \(Self.address)" && problem.since == 1001)
    #expect(problem.summary == "vault \(Self.address) is unreachable: connect: connection refused")
    for second in stride(from: 1062.0, through: 5000, by: 7) {
      run.feed(Self.report(.unreachable, check: second), at: second)
    }
    #expect(run.messages.count == 1, "one message per state change")
    // Back, briefly, then down again: a flapping node is still the same problem.
    run.feed(Self.report(.active, check: 5001), at: 5001)
    run.feed(Self.report(.unreachable, check: 5010), at: 5010)
    run.feed(Self.report(.active, check: 5011), at: 5011)
    run.feed(Self.report(.active, check: 5070), at: 5070)
    #expect(run.messages.count == 1, "resolved only once it has stayed clear for min_duration")
    run.feed(Self.report(.active, check: 5071), at: 5071)
    #expect(run.messages.map(\.status) == [.problem, .resolved])
    #expect(run.messages[1].key == problem.key && run.messages[1].since == 1001 && run.messages[1].time == 5071)
    #expect(run.messages[1].title == "[RESOLVED] vault \(Self.address) is unreachable: connect: connection refused")
  }

  /// `min_failures` counts health checks, not looks: the board publishes for other reasons too
  /// (a snapshot report), and those must not count as more failed checks.
  @Test func minFailuresCountsDistinctChecks() {
    var run = Run(policy: .init(minFailures: 3, minDuration: .zero))
    for now in [2000.0, 2001, 2002, 2003, 2004] {
      run.feed(Self.report(.unreachable, check: 2000), at: now)  // the same check, looked at five times
    }
    #expect(run.messages.isEmpty)
    run.feed(Self.report(.unreachable, check: 2005), at: 2005)
    #expect(run.messages.isEmpty, "two checks")
    run.feed(Self.report(.unreachable, check: 2006), at: 2006)
    #expect(run.messages.map(\.status) == [.problem], "the third check")
  }

  @Test func aProblemThatClearsBeforeItIsReportedIsForgotten() {
    var run = Run(policy: .init(minFailures: 1, minDuration: .seconds(30)))
    run.feed(Self.report(.unreachable, check: 10), at: 10)
    run.feed(Self.report(.unreachable, check: 39), at: 39)
    run.feed(Self.report(.active, check: 40), at: 40)
    run.feed(Self.report(.unreachable, check: 41), at: 41)
    run.feed(Self.report(.unreachable, check: 70), at: 70)
    #expect(run.messages.isEmpty, "a new outage starts its own clock")
    run.feed(Self.report(.unreachable, check: 71), at: 71)
    #expect(run.messages.map(\.status) == [.problem])
    #expect(run.messages[0].since == 41)
  }

  @Test func aChangeOfSeverityIsANewMessageAndReminderComesDaily() {
    var run = Run(policy: .init(minFailures: 1, minDuration: .zero))
    run.feed(Self.report(.sealed, check: 100, hold: .deliberateSeal), at: 100)
    #expect(run.messages.map(\.severity) == [.warning])
    #expect(run.messages[0].summary.hasPrefix("vault \(Self.address) is sealed and not being unsealed: it was sealed on purpose"))
    // Same key (sealed), now for a reason that is critical.
    run.feed(Self.report(.sealed, check: 101, hold: .wrongKey), at: 101)
    #expect(run.messages.map(\.status) == [.problem, .problem])
    #expect(run.messages[1].severity == .critical && run.messages[1].since == 100)
    run.feed(Self.report(.sealed, check: 101 + 86399, hold: .wrongKey), at: 101 + 86399)
    #expect(run.messages.count == 2)
    run.feed(Self.report(.sealed, check: 101 + 86400, hold: .wrongKey), at: 101 + 86400)
    #expect(run.messages.map(\.status) == [.problem, .problem, .reminder])
    #expect(run.messages[2].title.hasPrefix("[CRITICAL, still] "))
    run.feed(Self.report(.active, check: 200_000), at: 200_000)
    #expect(run.messages.last?.status == .resolved)
    #expect(run.messages.count == 4)
  }

  @Test func eventsAndSeverityFilterProblemsOnly() {
    var critical = Run(policy: .init(minSeverity: .critical, minFailures: 1, minDuration: .zero))
    critical.feed(Self.report(.sealed, check: 1, hold: .deliberateSeal), at: 1)
    #expect(critical.messages.isEmpty, "a deliberate seal is a warning")
    // Raised to critical: now it is this target's problem; lowered again: resolved for it.
    critical.feed(Self.report(.sealed, check: 2, hold: .tooFewShares(have: 2, need: 3)), at: 2)
    #expect(critical.messages.map(\.status) == [.problem])
    #expect(critical.messages[0].summary.hasSuffix("vaultkeeper holds 2 unseal key shares and Vault needs 3"))
    // Down to a warning: not resolved (it is still sealed), a change of severity.
    critical.feed(Self.report(.sealed, check: 3, hold: .deliberateSeal), at: 3)
    #expect(critical.messages.map(\.status) == [.problem, .problem])
    #expect(critical.messages.map(\.severity) == [.critical, .warning])
    critical.feed(Self.report(.active, check: 4), at: 4)
    #expect(critical.messages.map(\.status) == [.problem, .problem, .resolved])

    var onlySealed = Run(policy: .init(events: [.sealed], minFailures: 1, minDuration: .zero))
    onlySealed.feed(Self.report(.unreachable, check: 1), at: 1)
    #expect(onlySealed.messages.isEmpty)

    // Unsealed is info: subscribed by `events` alone, whatever min_severity says.
    var unsealed = Run(policy: .init(events: [.unsealed], minSeverity: .critical))
    unsealed.feed(Self.report(.active, check: 1, lastUnseal: 0.5), at: 1)
    #expect(unsealed.messages.isEmpty, "the first look only learns the last unseal")
    unsealed.feed(Self.report(.sealed, check: 2, lastUnseal: 0.5), at: 2)
    unsealed.feed(Self.report(.active, check: 3, lastUnseal: 2.5), at: 3)
    #expect(unsealed.messages.map(\.event) == [.unsealed])
    #expect(unsealed.messages[0].status == .info && unsealed.messages[0].severity == .info)
    unsealed.feed(Self.report(.active, check: 4, lastUnseal: 2.5), at: 4)
    #expect(unsealed.messages.count == 1)

    var defaults = Run(policy: .init(minFailures: 1, minDuration: .zero))
    defaults.feed(Self.report(.active, check: 1, lastUnseal: 0.5), at: 1)
    defaults.feed(Self.report(.active, check: 2, lastUnseal: 1.5), at: 2)
    #expect(defaults.messages.isEmpty, "unsealed is off by default")
  }

  /// Without unseal keys, every sealed node is a problem; with them, only a held one.
  @Test func sealedWithoutKeysIsAProblem() {
    var run = Run(policy: .init(minFailures: 2, minDuration: .zero))
    run.conditions.unsealEnabled = false
    run.feed(Self.report(.sealed, check: 1), at: 1)
    run.feed(Self.report(.sealed, check: 2), at: 2)
    #expect(run.messages.map(\.summary) == ["vault \(Self.address) is sealed and not being unsealed: vaultkeeper holds no unseal keys ([unseal] is off)"])
  }

  /// Sealed while vaultkeeper unseals it is routine for a moment; still sealed past the
  /// thresholds (unseal requests failing, a KMS out of reach) it is a problem all the same.
  @Test func stillSealedWhileBeingUnsealedIsAProblemPastTheThresholds() {
    var run = Run(policy: .init(minFailures: 3, minDuration: .seconds(60)))
    for second in stride(from: 0.0, through: 59, by: 1) {
      var report = Self.report(.sealed, check: second)
      report.nodes[0].problem = "unseal request failed: timeout"
      run.feed(report, at: second)
    }
    #expect(run.messages.isEmpty)
    var report = Self.report(.sealed, check: 60)
    report.nodes[0].problem = "unseal request failed: timeout"
    run.feed(report, at: 60)
    #expect(run.messages.map(\.summary) == ["vault \(Self.address) is still sealed: unsealing it has not worked: unseal request failed: timeout"])
    #expect(run.messages.map(\.severity) == [.critical])
    run.feed(Self.report(.active, check: 61, lastUnseal: 61), at: 61)
    run.feed(Self.report(.active, check: 121), at: 121)
    #expect(run.messages.map(\.status) == [.problem, .resolved])
  }

  /// A reload keeps the gate (the dispatcher keeps it by name): a new policy applies to what
  /// comes next, and what was reported is still resolved.
  @Test func aNewPolicyKeepsWhatWasReported() {
    var run = Run(policy: .init(minFailures: 1, minDuration: .zero))
    run.feed(Self.report(.unreachable, check: 1), at: 1)
    run.gate.policy = .init(minFailures: 10, minDuration: .seconds(600))
    run.feed(Self.report(.unreachable, check: 2), at: 2)
    #expect(run.messages.map(\.status) == [.problem])
    run.feed(Self.report(.active, check: 3), at: 3)
    run.feed(Self.report(.active, check: 603), at: 603)
    #expect(run.messages.map(\.status) == [.problem, .resolved])
  }

  /// After a restart: a problem the previous run reported is not reported again while it lasts,
  /// and is resolved once it is gone, but not because a part has not reported yet (a node
  /// before its first check).
  @Test func aRestoredProblemIsResolvedNotRepeated() {
    let restored = OpenProblem(
      key: "sealed \(Self.address)", event: .sealed, severity: .critical, summary: "vault is sealed: wrong key", node: Self.address, since: 500)
    var still = Run(policy: .init(minFailures: 1, minDuration: .zero))
    still.gate.restore([restored], now: NodeTime(monotonic: still.origin.advanced(by: .seconds(1000)), wall: 1000))
    #expect(still.gate.openProblems == ["sealed \(Self.address)"])
    still.feed(Self.report(.unknown, check: 0), at: 1000)  // before the first check: says nothing
    #expect(still.messages.isEmpty)
    still.feed(Self.report(.sealed, check: 1001, hold: .wrongKey), at: 1001)
    #expect(still.messages.isEmpty, "still there: not reported again")
    still.feed(Self.report(.active, check: 1002), at: 1002)
    #expect(still.messages.map(\.status) == [.resolved])
    #expect(still.messages[0].since == 500)

    var gone = Run(policy: .init(minFailures: 1, minDuration: .zero))
    gone.gate.restore([restored], now: NodeTime(monotonic: gone.origin, wall: 1000))
    gone.feed(Self.report(.active, check: 1001), at: 1001)
    #expect(gone.messages.map(\.status) == [.resolved])
    #expect(gone.gate.reportedProblems.isEmpty)

    var unsubscribed = Run(policy: .init(events: [.unreachable]))
    unsubscribed.gate.restore([restored], now: NodeTime(monotonic: unsubscribed.origin, wall: 1000))
    #expect(unsubscribed.gate.openProblems.isEmpty, "no longer this target's event")
  }

  /// Unsubscribing from an event is not the problem clearing: forgotten without a word.
  @Test func unsubscribingForgetsSilently() {
    var run = Run(policy: .init(minFailures: 1, minDuration: .zero))
    run.feed(Self.report(.unreachable, check: 1), at: 1)
    #expect(run.messages.map(\.status) == [.problem])
    run.gate.policy = .init(events: [.sealed], minFailures: 1, minDuration: .zero)
    #expect(run.gate.openProblems.isEmpty)
    run.feed(Self.report(.active, check: 2), at: 2)
    #expect(run.messages.count == 1)
  }

  /// Durations are the monotonic clock's: a wall clock stepped back an hour (NTP after a boot
  /// with a wrong RTC) neither holds back nor hurries a report.
  @Test func aWallClockStepChangesNothing() {
    var gate = AlertGate(policy: .init(minFailures: 1, minDuration: .seconds(60)))
    var conditions = AlertConditions(unsealEnabled: true)
    let origin = ContinuousClock.now
    var sent: [AlertMessage] = []
    for second in 0...60 {
      // The wall clock jumps back an hour half-way.
      let wall = 1_800_000_000 + Double(second) - (second >= 30 ? 3600 : 0)
      let look = conditions.look(at: AlertGateTests.report(.unreachable, check: wall), now: wall)
      sent += gate.pass(look, now: NodeTime(monotonic: origin.advanced(by: .seconds(second)), wall: wall))
      #expect(sent.isEmpty == (second < 60), "second \(second)")
    }
  }
}

/// The problems read out of each part of the report.
@Suite struct AlertConditionsTests {
  let now = 1_800_000_000.0

  func problems(_ report: DaemonReport) -> [AlertCondition] {
    var conditions = AlertConditions(unsealEnabled: true)
    return conditions.look(at: report, now: now).problems
  }

  func empty() -> DaemonReport { DaemonReport(pid: 1, startedAt: 0, updatedAt: now, configPath: "/c", nodes: []) }

  @Test func snapshots() {
    var report = empty()
    var snapshot = SnapshotReport(phase: .idle, staleAfterSeconds: 7200)
    snapshot.consecutiveFailures = 2
    snapshot.lastFailure = now - 10
    snapshot.lastFailureReason = "vault: permission denied"
    snapshot.stale = true
    snapshot.lastSuccess = now - 3 * 3600
    snapshot.lastUploadFailure = now - 100
    snapshot.lastUploadFailureReason = "HTTP 503"
    snapshot.lastUpload = now - 200
    report.snapshot = snapshot
    let found = problems(report)
    #expect(found.map(\.event) == [.snapshotFailed, .snapshotStale, .uploadFailed])
    #expect(found.map(\.severity) == [.warning, .critical, .warning])
    #expect(found[0].summary == "snapshots are failing (2 attempts in a row): vault: permission denied")
    #expect(found[1].summary == "backups are stale: the last good snapshot is 3h old (stale after 2h)")
    #expect(found[2].summary == "snapshot upload failed: HTTP 503 (the local snapshot is kept)")
    #expect(found.allSatisfy { $0.occurrence == nil }, "verdicts wait for min_duration only")

    snapshot.lastUpload = now - 50  // a later upload went through
    snapshot.consecutiveFailures = 0
    snapshot.stale = false
    report.snapshot = snapshot
    #expect(problems(report).isEmpty)
    snapshot.phase = .standby
    snapshot.stale = true
    report.snapshot = snapshot
    #expect(problems(report).isEmpty, "a standby takes no snapshots")
  }

  @Test func certificates() {
    var report = empty()
    var certificate = CertificateReport(state: .invalid)
    certificate.problems = ["the key does not match the certificate"]
    certificate.servedNotAfter = now + 5 * 86400 + 3600
    certificate.servedExpiry = .critical
    report.certificate = certificate
    var found = problems(report)
    #expect(found.map(\.event) == [.certificateRefused, .certificateExpiring])
    #expect(found[0].summary.hasSuffix(": the key does not match the certificate"))
    #expect(found[1].summary == "the certificate Vault serves expires in 5d" && found[1].severity == .critical)

    certificate = CertificateReport(state: .notServed)
    certificate.fileNotAfter = now - 7200
    certificate.fileExpiry = .expired
    report.certificate = certificate
    found = problems(report)
    #expect(found.map(\.event) == [.certificateNotServed, .certificateExpiring])
    #expect(found[1].summary == "the certificate file expired 2h ago")

    certificate = CertificateReport(state: .reloadFailed)
    certificate.servedNotAfter = now + 20 * 86400
    certificate.servedExpiry = .warning
    report.certificate = certificate
    found = problems(report)
    #expect(found.map(\.key) == ["certificate_not_served", "certificate_expiring"])
    #expect(found[1].severity == .warning)

    report.certificate = CertificateReport(state: .ok)
    #expect(problems(report).isEmpty)
  }

  @Test func drills() {
    var report = empty()
    var drill = DrillDutyReport(phase: .idle, trackingSince: 0, staleAfterSeconds: 86400)
    drill.lastResult = .failed
    drill.lastFailureStage = .unseal
    drill.lastFailureMessage = "the shares we hold do not unseal this snapshot: it was taken after a rekey, or from another cluster"
    drill.lastFailureAboutShares = true
    report.drill = drill
    let found = problems(report)
    #expect(found.map(\.severity) == [.critical])
    #expect(found[0].summary == "the restore drill failed at unseal: the shares we hold do not unseal this snapshot: it was taken after a rekey, or from another cluster")
    drill.lastFailureAboutShares = false
    report.drill = drill
    #expect(problems(report).map(\.severity) == [.warning])
    drill.lastResult = .passed
    report.drill = drill
    #expect(problems(report).isEmpty)
  }
}
