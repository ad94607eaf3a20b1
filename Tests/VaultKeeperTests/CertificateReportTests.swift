// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
@testable import VaultKeeper

/// What the certificate duty's report turns into: the STATUS fragment, the metrics, and the
/// certificate line `vaultkeeper check` folds into its verdict.
@Suite struct CertificateReportTests {
  let now = 1_800_000_000.0
  let day = 86400.0

  func report(_ state: CertificateState, problems: [String] = []) -> CertificateReport {
    var r = CertificateReport(state: state)
    r.problems = problems
    return r
  }

  @Test func nothingToSayWhileAllIsWell() {
    #expect(report(.unknown).statusFragment(now: now) == nil)
    var r = report(.ok)
    #expect(r.statusFragment(now: now) == nil)
    r.fileNotAfter = now + 80 * day
    r.fileExpiry = .ok
    r.servedNotAfter = now + 80 * day
    r.servedExpiry = .ok
    #expect(r.statusFragment(now: now) == nil)
  }

  static let expiries: [(ExpiryLevel, Double, String?)] = [
    (.ok, 80, nil), (.warning, 10.5, "certificate expires in 10d"), (.critical, 3.2, "certificate expires in 3d"),
    (.critical, 0.5, "certificate expires in 0d"), (.expired, -2, "certificate EXPIRED"),
  ]

  @Test(arguments: expiries)
  func expiryLevels(level: ExpiryLevel, daysLeft: Double, fragment: String?) {
    var served = report(.ok)
    served.servedNotAfter = now + daysLeft * day
    served.servedExpiry = level
    #expect(served.statusFragment(now: now) == fragment)
    // Vault could not be asked: the file's expiry stands in.
    var file = report(.ok)
    file.fileNotAfter = now + daysLeft * day
    file.fileExpiry = level
    #expect(file.statusFragment(now: now) == fragment)
  }

  @Test func theServedCertificateIsPreferredOverTheFile() {
    var r = report(.ok)
    r.fileNotAfter = now + 80 * day
    r.fileExpiry = .ok
    r.servedNotAfter = now + 5 * day
    r.servedExpiry = .critical
    #expect(r.statusFragment(now: now) == "certificate expires in 5d")
    // What clients see decides, also the other way round.
    r.fileNotAfter = now + 12 * day
    r.fileExpiry = .warning
    r.servedNotAfter = now + 60 * day
    r.servedExpiry = .ok
    #expect(r.statusFragment(now: now) == nil)
  }

  @Test func failuresOutrankExpiry() {
    var invalid = report(.invalid, problems: ["the private key in key_file does not match the certificate's public key", "second"])
    invalid.servedNotAfter = now + 3 * day
    invalid.servedExpiry = .critical
    #expect(invalid.statusFragment(now: now) == "certificate INVALID: the private key in key_file does not match the certificate's public key")
    #expect(report(.invalid).statusFragment(now: now) == "certificate INVALID: see the journal")
    var failed = report(.reloadFailed)
    failed.servedNotAfter = now - day
    failed.servedExpiry = .expired
    #expect(failed.statusFragment(now: now) == "certificate reload FAILED")
    #expect(report(.notServed).statusFragment(now: now) == "Vault serves the OLD certificate")
  }

  func daemon(_ certificate: CertificateReport?) -> DaemonReport {
    var d = DaemonReport(pid: 1, startedAt: 0, updatedAt: 0, configPath: "/c", nodes: [NodeReport(address: "https://v:8200", state: .active, since: 0, lastCheck: 0)])
    d.certificate = certificate
    return d
  }

  @Test func statusLineCarriesTheFragment() {
    #expect(StatusLine.render(daemon(nil), now: now) == "vault active · 1/1 nodes ok")
    #expect(StatusLine.render(daemon(report(.ok)), now: now) == "vault active · 1/1 nodes ok")
    #expect(
      StatusLine.render(daemon(report(.invalid, problems: ["the certificate expired on 2027-01-30T10:00:00Z"])), now: now)
        == "vault active · 1/1 nodes ok · certificate INVALID: the certificate expired on 2027-01-30T10:00:00Z")
    var expiring = report(.ok)
    expiring.servedNotAfter = now + 9.9 * day
    expiring.servedExpiry = .warning
    var both = daemon(expiring)
    var snap = SnapshotReport(phase: .idle, staleAfterSeconds: 60)
    snap.lastSuccess = now - 120
    both.snapshot = snap
    #expect(StatusLine.render(both, now: now) == "vault active · 1/1 nodes ok · snapshot 2m ago · certificate expires in 9d")
  }

  @Test func metrics() {
    #expect(!MetricsText.render(daemon(nil)).contains("certificate"))
    var r = report(.ok)
    r.fileNotAfter = 1_900_000_000
    r.servedNotAfter = 1_800_000_000
    r.fileSHA256 = "AB:CD"
    r.servedSHA256 = "AB:CD"
    r.reloads = [.succeeded: 2, .notServed: 1]
    let text = MetricsText.render(daemon(r))
    #expect(text.contains("\n# TYPE vaultkeeper_certificate_expiry_timestamp_seconds gauge\n"))
    #expect(text.contains("\nvaultkeeper_certificate_expiry_timestamp_seconds{source=\"file\"} 1900000000\n"))
    #expect(text.contains("\nvaultkeeper_certificate_expiry_timestamp_seconds{source=\"served\"} 1800000000\n"))
    #expect(text.contains("\nvaultkeeper_certificate_valid 1\n"))
    #expect(text.contains("\nvaultkeeper_certificate_served_matches_file 1\n"))
    #expect(text.contains("\n# TYPE vaultkeeper_certificate_reloads_total counter\n"))
    // Every result is present from the start, so rate() and alerts see a 0 before the first failure.
    #expect(text.contains("\nvaultkeeper_certificate_reloads_total{result=\"succeeded\"} 2\n"))
    #expect(text.contains("\nvaultkeeper_certificate_reloads_total{result=\"failed\"} 0\n"))
    #expect(text.contains("\nvaultkeeper_certificate_reloads_total{result=\"timedOut\"} 0\n"))
    #expect(text.contains("\nvaultkeeper_certificate_reloads_total{result=\"not_served\"} 1\n"))
  }

  @Test func metricsBeforeTheFirstLookAndWhenThingsDiffer() {
    let unknown = MetricsText.render(daemon(report(.unknown)))
    #expect(unknown.contains("\nvaultkeeper_certificate_valid 0\n"))
    #expect(unknown.contains("\nvaultkeeper_certificate_served_matches_file 0\n"))
    #expect(!unknown.contains("vaultkeeper_certificate_expiry_timestamp_seconds{"))
    var r = report(.invalid, problems: ["bad"])
    r.fileNotAfter = 1_900_000_000
    r.fileSHA256 = "NE:W0"
    r.servedSHA256 = "OL:D0"
    let text = MetricsText.render(daemon(r))
    #expect(text.contains("\nvaultkeeper_certificate_valid 0\n"))
    #expect(text.contains("\nvaultkeeper_certificate_served_matches_file 0\n"))
    #expect(text.contains("{source=\"file\"} 1900000000\n"))
    #expect(!text.contains("{source=\"served\"}"))
    var notServed = report(.notServed)
    notServed.fileSHA256 = "NE:W0"
    #expect(MetricsText.render(daemon(notServed)).contains("\nvaultkeeper_certificate_valid 1\n"))
    #expect(MetricsText.render(daemon(notServed)).contains("\nvaultkeeper_certificate_served_matches_file 0\n"))
  }
}

/// `vaultkeeper check` with `[certificate]`: the `cert check` outcome folded into the verdict.
@Suite struct CertificateReportCheckFoldingTests {
  let active = HealthObservation(state: .active, latency: .milliseconds(5))
  let sealed = HealthObservation(state: .sealed, latency: .milliseconds(5))
  let slow = HealthObservation(state: .active, latency: .milliseconds(1500))

  static let warning = CheckVerdict.Outcome(
    code: 1,
    text: """
      CERT WARNING: file: the certificate expires in 10 days (+1 more) | 'file_days'=10;21;7 'served_days'=10;21;7
      WARNING: served: the certificate expires in 10 days
      file /etc/letsencrypt/live/vault/fullchain.pem:
        subject: CN=vault.example.com
      """)
  static let ok = CheckVerdict.Outcome(
    code: 0, text: "CERT OK: CN=vault.example.com valid for 80 more days, Vault serves it | 'file_days'=80;21;7 'served_days'=80;21;7\nfile /x:")
  static let critical = CheckVerdict.Outcome(
    code: 2, text: "CERT CRITICAL: the private key in key_file does not match the certificate's public key | 'file_days'=80;21;7\nfile /x:")
  static let unknown = CheckVerdict.Outcome(
    code: 3, text: "CERT UNKNOWN: served: cannot read the certificate Vault serves: connect: refused | 'file_days'=80;21;7\nfile /x:")

  func check(_ node: HealthObservation, certificate: CheckVerdict.Outcome?, snapshot: SnapshotCheck.Result? = nil) -> CheckVerdict.Outcome {
    CheckVerdict.evaluate([("https://v:8200", node)], ok: ["active"], warning: [], warnLatency: 1, critLatency: 3, snapshot: snapshot, certificate: certificate)
  }

  @Test func aWarningRaisesAnOKHealthVerdict() {
    let verdict = check(active, certificate: Self.warning)
    #expect(verdict.code == 1)
    let lines = verdict.text.split(separator: "\n").map(String.init)
    #expect(lines.count == 3)  // the summary, the node, the certificate; not cert check's details
    #expect(lines[0] == "VAULT WARNING: active, 1/1 nodes ok, certificate warning | 'latency'=0.005s;1;3;0 'nodes_ok'=1;;;0;1 'file_days'=10;21;7 'served_days'=10;21;7")
    #expect(lines[1] == "OK: https://v:8200 active")
    #expect(lines[2] == "WARNING: certificate: file: the certificate expires in 10 days (+1 more)")
  }

  @Test func anOKCertificateAddsItsLineAndPerfdataOnly() {
    let verdict = check(active, certificate: Self.ok)
    #expect(verdict.code == 0)
    #expect(verdict.text.hasPrefix("VAULT OK: active, 1/1 nodes ok | 'latency'=0.005s;1;3;0 'nodes_ok'=1;;;0;1 'file_days'=80;21;7 'served_days'=80;21;7\n"))
    #expect(verdict.text.hasSuffix("\nOK: certificate: CN=vault.example.com valid for 80 more days, Vault serves it"))
  }

  @Test func theWorstDecides() {
    #expect(check(sealed, certificate: Self.warning).code == 2)
    #expect(check(sealed, certificate: Self.warning).text.hasPrefix("VAULT CRITICAL: sealed, 0/1 nodes ok, certificate warning | "))
    let critical = check(active, certificate: Self.critical)
    #expect(critical.code == 2)
    #expect(critical.text.hasPrefix("VAULT CRITICAL: active, 1/1 nodes ok, certificate critical | "))
    #expect(critical.text.hasSuffix("\nCRITICAL: certificate: the private key in key_file does not match the certificate's public key"))
  }

  @Test func unknownOnlyReplacesOK() {
    let alone = check(active, certificate: Self.unknown)
    #expect(alone.code == 3)
    #expect(alone.text.hasPrefix("VAULT UNKNOWN: active, 1/1 nodes ok, certificate unknown | "))
    #expect(alone.text.hasSuffix("\nUNKNOWN: certificate: served: cannot read the certificate Vault serves: connect: refused"))
    #expect(check(sealed, certificate: Self.unknown).code == 2)
    #expect(check(slow, certificate: Self.unknown).code == 1)
  }

  @Test func withoutPerfdataNothingIsAppended() {
    let verdict = check(active, certificate: CheckVerdict.Outcome(code: 3, text: "CERT UNKNOWN: no certificate"))
    #expect(verdict.text.hasPrefix("VAULT UNKNOWN: active, 1/1 nodes ok, certificate unknown | 'latency'=0.005s;1;3;0 'nodes_ok'=1;;;0;1\n"))
    #expect(verdict.text.hasSuffix("\nUNKNOWN: certificate: no certificate"))
  }

  func unreadableSnapshots() -> SnapshotCheck.Result {
    SnapshotCheck.evaluate(
      .unreadable("cannot read"), localState: .active, now: Date(timeIntervalSince1970: 1_800_000_000), warnAfter: .seconds(3600),
      critAfter: .seconds(7200))
  }

  @Test func anUnknownCertificateDoesNotHideStaleBackups() {
    let stale = SnapshotCheck.evaluate(
      .known(lastSuccess: Date(timeIntervalSince1970: 1_800_000_000 - 10000), trackingSince: nil), localState: .active,
      now: Date(timeIntervalSince1970: 1_800_000_000), warnAfter: .seconds(3600), critAfter: .seconds(7200))
    #expect(stale.code == 2)
    #expect(check(active, certificate: Self.unknown, snapshot: stale).code == 2)
  }

  /// UNKNOWN must never hide a real problem, whichever of the two extra lines is UNKNOWN.
  @Test func unknownSnapshotsDoNotHideACriticalCertificate() {
    let snapshots = unreadableSnapshots()
    #expect(snapshots.code == 3)
    #expect(check(active, certificate: Self.critical, snapshot: snapshots).code == 2)
    #expect(check(active, certificate: Self.warning, snapshot: snapshots).code == 1)
  }
}
