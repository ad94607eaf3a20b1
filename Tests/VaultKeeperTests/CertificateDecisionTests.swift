// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing

@testable import VaultKeeper

@Suite struct CertificateNameTests {
  @Test(arguments: [
    ("vault.example.com", "vault.example.com", true),
    ("VAULT.example.com", "vault.EXAMPLE.com", true),
    ("vault.example.com.", "vault.example.com", true),
    ("*.example.com", "vault.example.com", true),
    ("*.example.com", "example.com", false),
    ("*.example.com", "a.b.example.com", false),
    ("*.com", "example.com", false),
    ("va*.example.com", "vault.example.com", false),
    ("vault.example.com", "vault.example.org", false),
    ("", "vault.example.com", false),
  ])
  func dnsMatching(pattern: String, name: String, matches: Bool) {
    #expect(CertificateNames.matches(pattern: pattern, name: name) == matches)
  }

  @Test func ipNamesMatchIPSANsOnly() {
    #expect(CertificateNames.covers("127.0.0.1", dnsNames: [], ipAddresses: ["127.0.0.1"]))
    #expect(!CertificateNames.covers("127.0.0.1", dnsNames: ["127.0.0.1"], ipAddresses: []))
    #expect(CertificateNames.covers("::1", dnsNames: [], ipAddresses: ["0:0:0:0:0:0:0:1"]))
    #expect(!CertificateNames.covers("10.0.0.1", dnsNames: ["*.0.0.1"], ipAddresses: ["10.0.0.2"]))
  }

  @Test func ipTextRoundTrips() {
    #expect(IPAddressText.format([127, 0, 0, 1]) == "127.0.0.1")
    #expect(IPAddressText.format([UInt8](repeating: 0, count: 15) + [1]) == "::1")
    #expect(IPAddressText.parse("::1") == [UInt8](repeating: 0, count: 15) + [1])
    #expect(IPAddressText.parse("vault") == nil)
  }
}

@Suite struct ExpiryJudgeTests {
  let t0 = Date(timeIntervalSince1970: 1_800_000_000)
  let day: TimeInterval = 86400

  func judge(daysLeft: Double, at now: Date, last: ExpiryJudge.Memory?, notAfter: Date? = nil) -> ExpiryJudge.Decision {
    ExpiryJudge.judge(notAfter: notAfter ?? now.addingTimeInterval(daysLeft * day), now: now, warnDays: 21, criticalDays: 7, last: last)
  }

  @Test func levels() {
    #expect(ExpiryLevel.of(notAfter: t0.addingTimeInterval(21 * day), now: t0, warnDays: 21, criticalDays: 7) == .ok)
    #expect(ExpiryLevel.of(notAfter: t0.addingTimeInterval(21 * day - 1), now: t0, warnDays: 21, criticalDays: 7) == .warning)
    #expect(ExpiryLevel.of(notAfter: t0.addingTimeInterval(7 * day - 1), now: t0, warnDays: 21, criticalDays: 7) == .critical)
    #expect(ExpiryLevel.of(notAfter: t0, now: t0, warnDays: 21, criticalDays: 7) == .expired)
    #expect(ExpiryLevel.daysLeft(notAfter: t0.addingTimeInterval(20.9 * day), now: t0) == 20)
    #expect(ExpiryLevel.daysLeft(notAfter: t0.addingTimeInterval(-0.5 * day), now: t0) == -1)
  }

  @Test func firstLookReportsOnlyNonOK() {
    #expect(judge(daysLeft: 60, at: t0, last: nil).report == .none)
    #expect(judge(daysLeft: 10, at: t0, last: nil).report == .escalated(.warning))
    #expect(judge(daysLeft: -1, at: t0, last: nil).report == .escalated(.expired))
  }

  /// A certificate walking towards expiry, polled every hour for 30 days: one entry per state
  /// change plus one reminder a day, never one per poll.
  @Test func oncePerDayPerStateWhileApproachingExpiry() {
    let notAfter = t0.addingTimeInterval(25 * day)
    var memory: ExpiryJudge.Memory?
    var reports: [(Int, ExpiryJudge.Report)] = []
    for hour in 0..<(30 * 24) {
      let now = t0.addingTimeInterval(Double(hour) * 3600)
      let decision = ExpiryJudge.judge(notAfter: notAfter, now: now, warnDays: 21, criticalDays: 7, last: memory)
      memory = decision.memory
      if decision.report != .none { reports.append((hour, decision.report)) }
    }
    let escalations = reports.filter { if case .escalated = $0.1 { return true } else { return false } }
    #expect(escalations.map(\.1) == [.escalated(.warning), .escalated(.critical), .escalated(.expired)])
    // Fewer than 21 days left from hour 97, fewer than 7 from hour 433, expired at hour 600.
    #expect(escalations.map(\.0) == [97, 433, 600])
    // A reminder every 24 hours within each state: 13 while warning, 6 critical, 4 expired.
    let reminders = reports.filter { if case .reminder = $0.1 { return true } else { return false } }
    #expect(reminders.count == 13 + 6 + 4)
    #expect(reports.count == 3 + 23)
  }

  @Test func renewalIsReportedAtOnce() {
    let memory = ExpiryJudge.Memory(level: .critical, notAfter: t0.addingTimeInterval(3 * day), reportedAt: t0)
    let renewed = judge(daysLeft: 90, at: t0.addingTimeInterval(60), last: memory)
    #expect(renewed.report == .improved(from: .critical, to: .ok))
    #expect(renewed.memory.level == .ok)
    // And then it is quiet.
    #expect(judge(daysLeft: 90, at: t0.addingTimeInterval(120), last: renewed.memory).report == .none)
  }

  @Test func partialRecoveryIsReported() {
    let memory = ExpiryJudge.Memory(level: .expired, notAfter: t0.addingTimeInterval(-day), reportedAt: t0)
    #expect(judge(daysLeft: 10, at: t0.addingTimeInterval(60), last: memory).report == .improved(from: .expired, to: .warning))
  }

  @Test func anotherCertificateInTheSameStateIsReported() {
    let memory = ExpiryJudge.Memory(level: .warning, notAfter: t0.addingTimeInterval(10 * day), reportedAt: t0)
    #expect(judge(daysLeft: 15, at: t0.addingTimeInterval(3600), last: memory).report == .escalated(.warning))
    #expect(judge(daysLeft: 0, at: t0.addingTimeInterval(3600), last: memory, notAfter: memory.notAfter).report == .none)
  }

  @Test func quietWithinADayKeepsTheOldMemory() {
    let memory = ExpiryJudge.Memory(level: .warning, notAfter: t0.addingTimeInterval(10 * day), reportedAt: t0)
    let decision = judge(daysLeft: 0, at: t0.addingTimeInterval(day - 1), last: memory, notAfter: memory.notAfter)
    #expect(decision.report == .none)
    #expect(decision.memory == memory)
    let next = judge(daysLeft: 0, at: t0.addingTimeInterval(day), last: memory, notAfter: memory.notAfter)
    #expect(next.report == .reminder(.warning))
    #expect(next.memory.reportedAt == t0.addingTimeInterval(day))
  }
}

@Suite struct CertificateCheckTests {
  let now = Date(timeIntervalSince1970: 1_800_000_000)
  let config = CertificateConfig(certFile: "/etc/tls/vault.pem", keyFile: "/etc/tls/vault.key", names: ["vault.example.com"], reload: .systemd(unit: "vault.service"))

  func facts(days: Double, sha: String = "AA:BB", names: [String] = ["vault.example.com"]) -> CertificateFacts {
    CertificateFacts(
      subject: "CN=vault.example.com", issuer: "CN=test CA", dnsNames: names, ipAddresses: [], notBefore: now.addingTimeInterval(-86400),
      notAfter: now.addingTimeInterval(days * 86400), sha256: sha, serial: "01", keyType: "P256")
  }

  func file(days: Double, sha: String = "AA:BB", problems: [CertificateProblem] = []) -> CertificateVerdict {
    CertificateVerdict(
      leaf: facts(days: days, sha: sha), problems: problems, keyMatches: true,
      expiry: ExpiryLevel.of(notAfter: now.addingTimeInterval(days * 86400), now: now, warnDays: 21, criticalDays: 7))
  }

  func evaluate(_ file: CertificateVerdict, _ served: Result<ServedCertificate, ServedCertificateError>?) -> CheckVerdict.Outcome {
    CertificateCheck.evaluate(config: config, file: file, served: served, servedFrom: "https://vault.example.com:8200", now: now)
  }

  @Test func ok() {
    let outcome = evaluate(file(days: 80.5), .success(ServedCertificate(leaf: facts(days: 80.5))))
    #expect(outcome.code == 0)
    let first = outcome.text.split(separator: "\n").first.map(String.init)
    #expect(first == "CERT OK: CN=vault.example.com valid for 80 more days, Vault serves it | 'file_days'=80;21;7 'served_days'=80;21;7")
    #expect(outcome.text.contains("  key: matches /etc/tls/vault.key"))
    #expect(outcome.text.contains("  same as file: yes"))
  }

  @Test func servedDiffersFromFileIsAWarningWithBothFingerprints() {
    let outcome = evaluate(file(days: 90, sha: "NE:W0"), .success(ServedCertificate(leaf: facts(days: 30, sha: "OL:D0"))))
    #expect(outcome.code == 1)
    #expect(outcome.text.hasPrefix("CERT WARNING: Vault still serves the old certificate: served sha256 OL:D0"))
    #expect(outcome.text.contains("file sha256 NE:W0"))
    #expect(outcome.text.contains("same as file: no"))
  }

  @Test(arguments: [(30.0, 0), (20.0, 1), (6.0, 2)])
  func thresholdsApplyToBoth(days: Double, code: Int) {
    #expect(evaluate(file(days: days), .success(ServedCertificate(leaf: facts(days: days)))).code == code)
    #expect(evaluate(file(days: 90), .success(ServedCertificate(leaf: facts(days: days)))).code == code)
    #expect(evaluate(file(days: days), .success(ServedCertificate(leaf: facts(days: 90)))).code == code)
  }

  @Test func fileProblemsAreCritical() {
    let outcome = evaluate(file(days: 90, problems: [.keyMismatch(keyType: "P256", certificateKeyType: "P256")]), .success(ServedCertificate(leaf: facts(days: 90))))
    #expect(outcome.code == 2)
    #expect(outcome.text.hasPrefix("CERT CRITICAL: file: the private key in key_file does not match"))
  }

  @Test func servedVerificationFailureIsCritical() {
    let served = ServedCertificate(leaf: facts(days: -2), verificationError: "SSL certificate problem: certificate has expired")
    let outcome = evaluate(file(days: 90, sha: "NE:W0"), .success(served))
    #expect(outcome.code == 2)
    #expect(outcome.text.hasPrefix("CERT CRITICAL: served: the certificate Vault serves does not verify: SSL certificate problem"))
    #expect(outcome.text.contains("Vault serves an expired certificate"))
    #expect(outcome.text.contains("verification: FAILED"))
  }

  @Test func servedWithoutTheNamesIsCritical() {
    let outcome = evaluate(file(days: 90), .success(ServedCertificate(leaf: facts(days: 90, names: ["other.example.com"]))))
    #expect(outcome.code == 2)
    #expect(outcome.text.contains("served: the certificate does not cover vault.example.com"))
  }

  @Test func unreadableServedIsUnknownUnlessSomethingIsWorse() {
    #expect(evaluate(file(days: 90), .failure(ServedCertificateError("cannot connect"))).code == 3)
    #expect(evaluate(file(days: 10), .failure(ServedCertificateError("cannot connect"))).code == 1)
  }

  @Test func noServedCheckForPlainAddresses() {
    let outcome = evaluate(file(days: 90), nil)
    #expect(outcome.code == 0)
    #expect(outcome.text.contains("not checked: [vault] address is not https://"))
    #expect(!outcome.text.contains("served_days"))
  }
}
