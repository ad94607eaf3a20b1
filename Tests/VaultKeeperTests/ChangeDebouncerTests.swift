// SPDX-License-Identifier: Apache-2.0
import Testing

@testable import VaultKeeper

@Suite struct ChangeDebouncerTests {
  let t0 = ContinuousClock.now
  func at(_ milliseconds: Int) -> ContinuousClock.Instant { t0 + .milliseconds(milliseconds) }

  func debouncer() -> ChangeDebouncer {
    ChangeDebouncer(quietPeriod: .milliseconds(500), recheckEvery: .seconds(300), now: t0)
  }

  @Test func withoutChangesOnlyTheRecheckIsDue() {
    var d = debouncer()
    #expect(d.nextDeadline == at(300_000))
    #expect(d.due(at: at(299_999)) == nil)
    #expect(d.due(at: at(300_000)) == .recheck)
    #expect(d.nextDeadline == at(600_000))
  }

  @Test func changesAreDueAfterTheQuietPeriodFromTheLastOne() {
    var d = debouncer()
    d.changed(at: at(0))
    d.changed(at: at(100))  // the key, written just after the certificate
    d.changed(at: at(200))
    #expect(d.nextDeadline == at(700))
    #expect(d.due(at: at(600)) == nil)
    #expect(d.due(at: at(700)) == .settled)
    #expect(!d.isPending)
    #expect(d.due(at: at(800)) == nil)  // taken once
    #expect(d.nextDeadline == at(300_700))  // the read restarts the re-check timer
  }

  @Test func aBurstThatNeverCalmsDownIsCappedAtMaxDelay() {
    var d = debouncer()  // max delay: four quiet periods
    for ms in stride(from: 0, through: 1900, by: 100) {
      d.changed(at: at(ms))
      #expect(d.due(at: at(ms)) == nil)
    }
    d.changed(at: at(1999))
    #expect(d.due(at: at(2000)) == .settled)
  }

  @Test func maxDelayIsNeverShorterThanTheQuietPeriod() {
    let d = ChangeDebouncer(quietPeriod: .seconds(1), recheckEvery: .seconds(60), maxDelay: .milliseconds(10), now: t0)
    #expect(d.maxDelay == .seconds(1))
  }

  @Test func aChangeDueBeforeTheRecheckComesFirst() {
    var d = ChangeDebouncer(quietPeriod: .milliseconds(500), recheckEvery: .seconds(1), now: t0)
    d.changed(at: at(900))
    #expect(d.due(at: at(1000)) == nil)  // the re-check waits for the quiet period too
    #expect(d.due(at: at(1400)) == .settled)
  }
}

@Suite struct RenewalGateTests {
  func contents(certificate: String, key: String = "key", chain: String? = nil) -> CertificateFileContents {
    CertificateFileContents(
      files: CertificateFileSet(certificate: "/c", key: "/k"), certificate: Array(certificate.utf8),
      key: SecretBytes(utf8: key), chain: chain.map { Array($0.utf8) })
  }

  func kind(_ event: CertificateWatchEvent?) -> String {
    switch event {
    case nil: "none"
    case .initial: "initial"
    case .renewed: "renewed"
    case .unreadable: "unreadable"
    case .readableAgain: "readableAgain"
    }
  }

  @Test func onlyChangedBytesAreRenewals() {
    var gate = RenewalGate()
    #expect(kind(gate.judge(.success(contents(certificate: "A")))) == "initial")
    #expect(kind(gate.judge(.success(contents(certificate: "A")))) == "none")
    #expect(kind(gate.judge(.success(contents(certificate: "B")))) == "renewed")
    #expect(kind(gate.judge(.success(contents(certificate: "B", key: "new key")))) == "renewed")
    #expect(kind(gate.judge(.success(contents(certificate: "B", key: "new key", chain: "")))) == "renewed")
  }

  @Test func failuresAreReportedOncePerReason() {
    var gate = RenewalGate()
    let missing = CertificateReadFailure(path: "/k", reason: "open /k: No such file or directory")
    let denied = CertificateReadFailure(path: "/k", reason: "open /k: Permission denied")
    #expect(kind(gate.judge(.failure(missing))) == "unreadable")
    #expect(kind(gate.judge(.failure(missing))) == "none")
    #expect(kind(gate.judge(.success(contents(certificate: "A")))) == "initial")
    #expect(kind(gate.judge(.failure(denied))) == "unreadable")
    #expect(kind(gate.judge(.failure(missing))) == "unreadable")
    #expect(kind(gate.judge(.success(contents(certificate: "A")))) == "readableAgain")
    #expect(kind(gate.judge(.failure(missing))) == "unreadable")
    #expect(kind(gate.judge(.success(contents(certificate: "B")))) == "renewed")
  }

  @Test func fingerprintSeparatesTheFiles() {
    // The same bytes split differently between certificate and key are a different pair.
    let a = contents(certificate: "ab", key: "c")
    let b = contents(certificate: "a", key: "bc")
    #expect(a.fingerprint != b.fingerprint)
    #expect(contents(certificate: "x").fingerprint == contents(certificate: "x").fingerprint)
    #expect(contents(certificate: "x").fingerprint != contents(certificate: "x", chain: "").fingerprint)
  }
}
