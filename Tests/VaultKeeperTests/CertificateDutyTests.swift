// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Testing

@testable import VaultKeeper

/// The certificate duty's loop against a stub Vault (its TLS listener and its reload) in virtual
/// time: each `handle` is one input of `run()` performed to the end, its probe waits taken on
/// the virtual clock, its report posted to a real board.
@Suite struct CertificateDutyTests {
  /// Files and Vault agree at start: nothing to reload.
  func started(_ rig: CertificateRig, tag: UInt8 = 0xA1) async {
    await rig.duty.handle(.watch(.initial(TestCertificates.contents(tag))))
    #expect(rig.vault.current.reloads == 0)
    #expect(await rig.posted?.state == .ok)
  }

  @Test func renewalIsReloadedAndProvenServed() async {
    let rig = CertificateRig()
    await started(rig)
    let renewed = rig.renewFiles(to: 0xB2)
    rig.vault.update { $0.onReload = .takes(afterProbes: 2) }
    await rig.duty.handle(.watch(.renewed(TestCertificates.contents(0xB2))))

    #expect(rig.vault.current.reloads == 1)
    #expect(rig.vault.current.serving == renewed)
    let report = await rig.posted
    #expect(report?.state == .ok)
    #expect(report?.servedSHA256 == renewed.sha256 && report?.fileSHA256 == renewed.sha256)
    #expect(report?.reloads == [.succeeded: 1])
    let reloaded = rig.log.with(.certificateReloaded)
    #expect(reloaded.count == 1)
    #expect(reloaded.first?.level == .notice)
    // Old, old, new: probes at once, after 50 ms and after 100 ms more.
    #expect(reloaded.first?.message.contains("150 ms after the reload began (systemd reload of vault.service: job done)") == true)
    #expect(reloaded.first?.fields["certificate.verify_ms"] == "150")
    #expect(rig.log.with(.certificateNotServed).isEmpty && rig.log.with(.certificateInvalid).isEmpty)
  }

  @Test func aReloadVaultIgnoresIsCriticalWithBothFingerprintsAfterTheVerifyWindow() async {
    let rig = CertificateRig()
    await started(rig)
    let old = rig.vault.current.serving
    let renewed = rig.renewFiles(to: 0xB2)
    rig.vault.update { $0.onReload = .ignores }
    let start = rig.clock.now()
    await rig.duty.handle(.watch(.renewed(TestCertificates.contents(0xB2))))

    let window = CertificateRig.config.verifyWindow
    let elapsed = rig.clock.elapsed(since: start)
    #expect(elapsed >= window && elapsed <= window + .seconds(1), "gave up after \(elapsed)")
    let alert = rig.log.with(.certificateNotServed)
    #expect(alert.count == 1)
    #expect(alert.first?.level == .critical)
    #expect(alert.first?.message.contains("still serves the old certificate 10s after systemd reload of vault.service") == true)
    #expect(alert.first?.message.contains("served \(old.sha256)") == true)
    #expect(alert.first?.message.contains("expected \(renewed.sha256)") == true)
    #expect(alert.first?.fields["certificate.served_sha256"] == old.sha256)
    let report = await rig.posted
    #expect(report?.state == .notServed)
    #expect(report?.reloads == [.notServed: 1])

    // The re-check does not reload these very files again: the alert stands.
    await rig.duty.handle(.tick)
    #expect(rig.vault.current.reloads == 1)
    #expect(await rig.posted?.state == .notServed)
  }

  /// certbot writes twice within the quiet period: the watcher's pure parts (debounce, then the
  /// fingerprint gate) make one read of the final files, and the duty reloads once.
  @Test func aRapidDoubleRenewalReloadsOnce() async {
    let rig = CertificateRig()
    await started(rig)
    var debouncer = ChangeDebouncer(quietPeriod: .milliseconds(500), recheckEvery: .seconds(300), now: rig.clock.now().monotonic)
    var gate = RenewalGate()
    _ = gate.judge(.success(TestCertificates.contents(0xA1)))

    _ = rig.renewFiles(to: 0xB2)
    debouncer.changed(at: rig.clock.now().monotonic)
    rig.clock.advance(by: .milliseconds(200))
    let final = rig.renewFiles(to: 0xC3)
    debouncer.changed(at: rig.clock.now().monotonic)
    var fed = 0
    for _ in 0..<30 {
      rig.clock.advance(by: .milliseconds(100))
      guard debouncer.due(at: rig.clock.now().monotonic) != nil else { continue }
      if let event = gate.judge(.success(TestCertificates.contents(0xC3))) {
        fed += 1
        await rig.duty.handle(.watch(event))
      }
    }
    #expect(fed == 1)
    #expect(rig.vault.current.reloads == 1)
    #expect(rig.log.with(.certificateReloaded).count == 1)
    #expect(rig.vault.current.serving == final)
  }

  @Test func aByteIdenticalRewriteDoesNothing() async {
    let rig = CertificateRig()
    var gate = RenewalGate()
    guard let first = gate.judge(.success(TestCertificates.contents(0xA1))) else {
      Issue.record("the first read is an event")
      return
    }
    await rig.duty.handle(.watch(first))
    rig.log.clear()
    // Rewritten with the same bytes: no event; the slow re-check finds nothing to do either.
    #expect(gate.judge(.success(TestCertificates.contents(0xA1))) == nil)
    rig.clock.advance(by: .seconds(3600))
    await rig.duty.handle(.tick)
    #expect(rig.vault.current.reloads == 0)
    #expect(rig.log.all.isEmpty)
    #expect(await rig.posted?.state == .ok)
  }

  @Test func aRefusedCertificateIsNeverReloaded() async {
    let rig = CertificateRig()
    await started(rig)
    _ = rig.renewFiles(to: 0xB2, problems: [.keyMismatch(keyType: "P256", certificateKeyType: "RSA2048")])
    await rig.duty.handle(.watch(.renewed(TestCertificates.contents(0xB2))))

    let refused = rig.log.with(.certificateInvalid)
    #expect(refused.count == 1)
    #expect(refused.first?.level == .critical)
    #expect(refused.first?.message.contains("renewed certificate in /etc/vault/tls/fullchain.pem is not usable, Vault is not reloaded") == true)
    #expect(refused.first?.fields["certificate.problem"] == "key_mismatch")
    #expect(await rig.posted?.state == .invalid)

    // Vault serves another certificate than the files, but the files are refused: the
    // re-checks neither reload nor repeat the unchanged refusal.
    for _ in 0..<3 {
      rig.clock.advance(by: .seconds(3600))
      await rig.duty.handle(.tick)
    }
    #expect(rig.vault.current.reloads == 0)
    #expect(rig.log.with(.certificateInvalid).count == 1)
    #expect(await rig.posted?.state == .invalid)
  }

  /// Ten days left (warning below 21, critical below 7), looked at every hour for four days:
  /// each source warns at once and then once a day, and turns critical at once.
  @Test func expiryIsReportedOncePerDayPerStateAcrossDays() async {
    let rig = CertificateRig(daysLeft: 10)
    let start = rig.clock.now()
    await rig.duty.handle(.watch(.initial(TestCertificates.contents(0xA1))))
    for _ in 0..<96 {
      rig.clock.advance(by: .seconds(3600))
      await rig.duty.handle(.tick)
    }
    let entries = rig.log.with(.certificateExpiring)
    for source in ["file", "served"] {
      let mine = entries.filter { $0.fields["certificate.source"] == source }
      let warnings = mine.filter { $0.fields["certificate.expiry"] == "warning" }
      let criticals = mine.filter { $0.fields["certificate.expiry"] == "critical" }
      // Start, then hours 24, 48 and 72 (seven days left exactly is still a warning).
      #expect(warnings.count == 4, "\(source): \(warnings.map(\.message))")
      #expect(warnings.allSatisfy { $0.level == .warning })
      #expect(warnings.map { $0.fields["certificate.days_left"] } == ["10", "9", "8", "7"])
      // Hour 73: below seven days, at once; the next reminder would be at hour 97.
      #expect(criticals.count == 1, "\(source): \(criticals.map(\.message))")
      #expect(criticals.first?.level == .critical)
    }
    #expect(rig.clock.elapsed(since: start) == .seconds(96 * 3600))
    #expect(rig.vault.current.reloads == 0)
  }

  @Test func aFailedReloadIsReportedAndRetriedOnTheNextCheck() async {
    let rig = CertificateRig()
    await started(rig)
    _ = rig.renewFiles(to: 0xB2)
    rig.vault.update { $0.onReload = .fails(.failed, "exit status 3") }
    await rig.duty.handle(.watch(.renewed(TestCertificates.contents(0xB2))))

    let failed = rig.log.with(.certificateReloadFailed)
    #expect(failed.count == 1)
    #expect(failed.first?.message.contains("systemd reload of vault.service failed (exit status 3)") == true)
    #expect(rig.log.all.contains { $0.message == "reload output: reload broke" })
    #expect(await rig.posted?.state == .reloadFailed)
    #expect(rig.vault.current.probes == 1)  // the start-up comparison only: no verification after a failure

    rig.vault.update { $0.onReload = .takes(afterProbes: 0) }
    await rig.duty.handle(.tick)
    #expect(rig.vault.current.reloads == 2)
    #expect(await rig.posted?.state == .ok)
    #expect(await rig.posted?.reloads == [.failed: 1, .succeeded: 1])
  }

  /// A reload that never answers keeps its heartbeat promise open, so the watchdog stops
  /// pinging once the bound is past; cancelling the duty ends it without a report.
  @Test func aHangingReloadBreaksTheHeartbeatPromise() async {
    let rig = CertificateRig()
    await started(rig)
    _ = rig.renewFiles(to: 0xB2)
    rig.vault.update { $0.onReload = .hangs }
    let handling = Task { await rig.duty.handle(.watch(.renewed(TestCertificates.contents(0xB2)))) }
    var begun = rig.vault.reloadsBegun.makeAsyncIterator()
    _ = await begun.next()

    let config = CertificateRig.config
    let bound = config.reloadTimeout + config.verifyWindow + .seconds(60)
    #expect(rig.heartbeats.overdue(now: .now.advanced(by: bound + .seconds(1))) == ["certificate"])
    handling.cancel()
    await handling.value
    #expect(rig.vault.current.probes == 1)
    #expect(await rig.posted?.state == .ok)  // the start-up report; nothing half-done was posted
  }
}

/// The decisions alone: the named actions one renewal goes through.
@Suite struct CertificateDeciderTests {
  @Test func aRenewalIsValidatedReloadedAndProbedWithBackOff() {
    var clock = NodeTime(monotonic: .now, wall: 1_800_000_000)
    var decider = CertificateDecider(settings: .init(config: CertificateRig.config, node: "https://vault:8200", reloader: "systemd reload"))
    let old = TestCertificates.facts(0xA1, notAfter: Date(timeIntervalSince1970: clock.wall + 30 * 86400))
    let new = TestCertificates.facts(0xB2, notAfter: Date(timeIntervalSince1970: clock.wall + 90 * 86400))

    #expect(decider.received(.watch(.initial(TestCertificates.contents(0xA1))), at: clock).action == .validate)
    #expect(decider.inspected(CertificateVerdict(leaf: old), at: clock).action == .probeServed(after: .zero))
    #expect(decider.servedRead(.success(ServedCertificate(leaf: old)), at: clock).action == .done)

    let noticed = decider.received(.watch(.renewed(TestCertificates.contents(0xB2))), at: clock)
    #expect(noticed.action == .validate)
    #expect(noticed.journal.first?.message.hasPrefix("certificate files changed (") == true)
    #expect(decider.inspected(CertificateVerdict(leaf: new), at: clock).action == .reload)
    clock = clock.advanced(by: .milliseconds(300))
    #expect(decider.reloaded(ReloadOutcome(result: .succeeded, detail: "job done", duration: .milliseconds(300)), at: clock).action == .probeServed(after: .zero))
    var waits: [Duration] = []
    for _ in 0..<7 {
      guard case .probeServed(let wait) = decider.servedRead(.success(ServedCertificate(leaf: old)), at: clock).action else {
        Issue.record("still verifying")
        return
      }
      waits.append(wait)
      clock = clock.advanced(by: wait)
    }
    #expect(waits == [.milliseconds(50), .milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800), .seconds(1), .seconds(1)])
    let done = decider.servedRead(.success(ServedCertificate(leaf: new)), at: clock)
    #expect(done.action == .done)
    #expect(done.journal.last?.id == .certificateReloaded)
    #expect(decider.report.state == .ok && decider.report.servedSHA256 == new.sha256)
  }

  @Test func anUnreadableProbeIsSaidOncePerReason() {
    let now = NodeTime(monotonic: .now, wall: 1_800_000_000)
    var decider = CertificateDecider(settings: .init(config: CertificateRig.config, node: "https://vault:8200", reloader: "systemd reload"))
    let facts = TestCertificates.facts(0xA1, notAfter: Date(timeIntervalSince1970: now.wall + 60 * 86400))
    var said = 0
    for reason in ["connection refused", "connection refused", "handshake failed"] {
      _ = decider.received(.tick, at: now)
      _ = decider.inspected(CertificateVerdict(leaf: facts), at: now)
      let step = decider.servedRead(.failure(ServedCertificateError(reason)), at: now)
      #expect(step.action == .done)
      said += step.journal.filter { $0.id == .certificateProbeFailed }.count
    }
    #expect(said == 2)
    #expect(decider.report.servedError == "handshake failed")
  }
}
