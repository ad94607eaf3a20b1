// SPDX-License-Identifier: Apache-2.0
import Crypto
import Foundation
import Testing
import X509

@testable import VaultKeeper

@Suite struct CertificateInspectorTests {
  let chain: TestPKI.Chain
  let now = Date()

  init() throws {
    chain = try TestPKI.Chain(now: now)
  }

  var names: [String] { ["vault.example.com"] }

  func inspect(cert: [UInt8], key: String?, ca: [UInt8]? = nil, names: [String]? = nil, at time: Date? = nil) async -> CertificateVerdict {
    await CertificateInspector.inspect(
      certPEM: cert, keyPEM: key.map { Array($0.utf8) }, caPEM: ca, names: names ?? self.names, now: time ?? now)
  }

  @Test func aGoodFullchainPasses() async throws {
    let verdict = await inspect(
      cert: try TestPKI.pem(chain.leaf, chain.intermediate), key: chain.leafKey.pem, ca: try TestPKI.pem(chain.root),
      names: ["vault.example.com", "api.vault.example.com", "127.0.0.1"])
    #expect(verdict.problems == [])
    #expect(verdict.canReload)
    #expect(verdict.keyMatches == true)
    #expect(verdict.chainValid == true)
    #expect(verdict.expiry == .ok)
    let leaf = try #require(verdict.leaf)
    #expect(leaf.subject.contains("CN=vault.example.com"))
    #expect(leaf.issuer.contains("CN=test intermediate"))
    #expect(leaf.dnsNames == ["vault.example.com", "*.vault.example.com"])
    #expect(leaf.ipAddresses == ["127.0.0.1"])
    #expect(leaf.keyType == "P256")
    #expect(abs(leaf.notAfter.timeIntervalSince(now.addingTimeInterval(90 * 86400))) < 2)
    #expect(verdict.intermediates.map(\.subject) == [chain.intermediate.subject.description])
  }

  @Test func fingerprintIsSHA256OfTheDERInOpenSSLForm() async throws {
    let verdict = await inspect(cert: try TestPKI.pem(chain.leaf), key: nil)
    let der = try #require(PEMBlocks.parse(try TestPKI.pem(chain.leaf)).first?.der)
    let expected = SHA256.hash(data: der).map { String(format: "%02X", $0) }.joined(separator: ":")
    #expect(verdict.leaf?.sha256 == expected)
    #expect(verdict.leaf?.sha256.count == 32 * 3 - 1)
    #expect(verdict.leaf?.serial.isEmpty == false)
  }

  @Test func mismatchedKeyIsRefused() async throws {
    let verdict = await inspect(cert: try TestPKI.pem(chain.leaf, chain.intermediate), key: TestPKI.p256().pem)
    #expect(verdict.keyMatches == false)
    #expect(verdict.problems == [.keyMismatch(keyType: "P256", certificateKeyType: "P256")])
    #expect(!verdict.canReload)
    #expect(verdict.problemSummary == "the private key in key_file does not match the certificate's public key")
  }

  @Test func keyOfAnotherKindNamesBothKinds() async throws {
    let verdict = await inspect(cert: try TestPKI.pem(chain.leaf), key: TestPKI.ed25519().pem)
    #expect(verdict.problems == [.keyMismatch(keyType: "Ed25519", certificateKeyType: "P256")])
    #expect(verdict.problemSummary.contains("key is Ed25519, the certificate's is P256"))
  }

  /// Every supported key kind and PEM form, matching its own certificate and not another's.
  @Test(arguments: ["p384-pkcs8", "p256-sec1", "ed25519-pkcs8", "rsa-pkcs1", "rsa-pkcs8"])
  func keyKinds(kind: String) async throws {
    let key: TestPKI.Key
    switch kind {
    case "p384-pkcs8": key = TestPKI.p384()
    case "p256-sec1": key = try TestPKI.p256SEC1()
    case "ed25519-pkcs8": key = TestPKI.ed25519()
    case "rsa-pkcs1": key = TestPKI.Key(privateKey: TestPKI.rsa.key, pem: TestPKI.rsa.pkcs1)
    default: key = TestPKI.Key(privateKey: TestPKI.rsa.key, pem: TestPKI.rsa.pkcs8)
    }
    #expect(key.pem.contains(kind.hasSuffix("sec1") ? "BEGIN EC PRIVATE KEY" : (kind.hasSuffix("pkcs1") ? "BEGIN RSA PRIVATE KEY" : "BEGIN PRIVATE KEY")))
    let own = try chain.issue(key: key, notBefore: now.addingTimeInterval(-60), notAfter: now.addingTimeInterval(86400 * 60))
    let matching = await inspect(cert: try TestPKI.pem(own), key: key.pem)
    #expect(matching.problems == [])
    #expect(matching.keyMatches == true)
    let other = await inspect(cert: try TestPKI.pem(chain.leaf), key: key.pem)
    #expect(other.keyMatches == false)
  }

  @Test func expiredIsRefusedButTheChainIsStillJudged() async throws {
    let expired = try chain.issue(notBefore: now.addingTimeInterval(-30 * 86400), notAfter: now.addingTimeInterval(-86400))
    let verdict = await inspect(cert: try TestPKI.pem(expired, chain.intermediate), key: chain.leafKey.pem, ca: try TestPKI.pem(chain.root))
    #expect(verdict.problems == [.expired(notAfter: expired.notValidAfter)])
    #expect(verdict.chainValid == true)
    #expect(verdict.expiry == .expired)
    #expect(verdict.problemSummary.hasPrefix("the certificate expired on 20"))
  }

  @Test func notYetValidIsRefused() async throws {
    let future = try chain.issue(notBefore: now.addingTimeInterval(3600), notAfter: now.addingTimeInterval(90 * 86400))
    let verdict = await inspect(cert: try TestPKI.pem(future, chain.intermediate), key: chain.leafKey.pem, ca: try TestPKI.pem(chain.root))
    #expect(verdict.problems == [.notYetValid(notBefore: future.notValidBefore)])
    #expect(verdict.chainValid == true)
  }

  @Test func wrongSANIsRefused() async throws {
    let other = try chain.issue(dnsNames: ["other.example.com"], notBefore: now.addingTimeInterval(-60), notAfter: now.addingTimeInterval(86400 * 60))
    let verdict = await inspect(cert: try TestPKI.pem(other), key: chain.leafKey.pem, names: ["vault.example.com", "127.0.0.1"])
    #expect(verdict.problems == [.nameMismatch(missing: ["vault.example.com", "127.0.0.1"], sans: ["other.example.com"])])
    #expect(verdict.problemSummary == "the certificate does not cover vault.example.com, 127.0.0.1 (its subject alternative names: other.example.com)")
  }

  @Test func wildcardCoversOneLabelOnly() async throws {
    let verdict = await inspect(cert: try TestPKI.pem(chain.leaf), key: nil, names: ["a.vault.example.com", "a.b.vault.example.com"])
    #expect(verdict.problems == [.nameMismatch(missing: ["a.b.vault.example.com"], sans: ["vault.example.com", "*.vault.example.com", "127.0.0.1"])])
  }

  @Test func chainWithoutTheIntermediateDoesNotValidate() async throws {
    let verdict = await inspect(cert: try TestPKI.pem(chain.leaf), key: chain.leafKey.pem, ca: try TestPKI.pem(chain.root))
    #expect(verdict.chainValid == false)
    #expect(verdict.problems.count == 1)
    guard case .chainInvalid = verdict.problems.first else {
      Issue.record("expected chainInvalid, got \(verdict.problems)")
      return
    }
  }

  @Test func chainToAnotherCADoesNotValidate() async throws {
    let otherRoot = try TestPKI.ca("other root", key: TestPKI.p256())
    let verdict = await inspect(cert: try TestPKI.pem(chain.leaf, chain.intermediate), key: chain.leafKey.pem, ca: try TestPKI.pem(otherRoot))
    #expect(verdict.chainValid == false)
    #expect(verdict.problems.first?.code == "chain_invalid")
    #expect(verdict.problemSummary.hasPrefix("the certificate chain does not validate to ca_file: "))
  }

  @Test func anExpiredIntermediateIsNamedBriefly() async throws {
    let intermediate = try TestPKI.ca(
      "old intermediate", key: chain.intermediateKey, issuer: (chain.root, chain.rootKey), now: now.addingTimeInterval(-30 * 86400),
      notAfter: now.addingTimeInterval(-86400))
    let leaf = try TestPKI.leaf(
      "vault.example.com", key: chain.leafKey, issuer: intermediate, issuerKey: chain.intermediateKey, dnsNames: names,
      notBefore: now.addingTimeInterval(-2 * 86400), notAfter: now.addingTimeInterval(30 * 86400))
    let verdict = await inspect(cert: try TestPKI.pem(leaf, intermediate), key: chain.leafKey.pem, ca: try TestPKI.pem(chain.root))
    #expect(verdict.chainValid == false)
    #expect(verdict.problems.map(\.code) == ["chain_invalid"])
    #expect(verdict.problemSummary.contains("certificate \"CN=old intermediate,O=vaultkeeper tests\""), "\(verdict.problemSummary)")
    #expect(!verdict.problemSummary.contains("Certificate("), "no dump of the whole certificate: \(verdict.problemSummary)")
  }

  @Test func caFileWithoutCertificates() async throws {
    let verdict = await inspect(cert: try TestPKI.pem(chain.leaf), key: nil, ca: Array("not a CA\n".utf8))
    #expect(verdict.problems == [.noCACertificate(path: "ca_file")])
  }

  @Test(arguments: [
    ("", "no_certificate"),
    ("garbage\n", "no_certificate"),
    ("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "no_certificate"),
    ("-----BEGIN CERTIFICATE-----\nMIIB\n", "cert_invalid"),
    ("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n", "cert_invalid"),
    ("-----BEGIN CERTIFICATE-----\nAAECAwQF\n-----END CERTIFICATE-----\n", "cert_invalid"),
  ])
  func garbageCertificateFile(text: String, code: String) async {
    let verdict = await inspect(cert: Array(text.utf8), key: chain.leafKey.pem)
    #expect(verdict.problems.map(\.code) == [code])
    #expect(verdict.leaf == nil)
    #expect(!verdict.canReload)
  }

  @Test func garbageKeyFile() async throws {
    let cert = try TestPKI.pem(chain.leaf)
    #expect(await inspect(cert: cert, key: "garbage").problems == [.noKey(path: "key_file")])
    #expect(await inspect(cert: cert, key: "").problems == [.noKey(path: "key_file")])
    let broken = await inspect(cert: cert, key: "-----BEGIN PRIVATE KEY-----\nAAECAwQF\n-----END PRIVATE KEY-----\n")
    #expect(broken.problems.map(\.code) == ["key_invalid"])
    let encrypted = await inspect(cert: cert, key: "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAECAwQF\n-----END ENCRYPTED PRIVATE KEY-----\n")
    #expect(encrypted.problems == [.keyEncrypted(path: "key_file")])
    let legacy = await inspect(
      cert: cert, key: "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAECAwQF\n-----END RSA PRIVATE KEY-----\n")
    #expect(legacy.problems == [.keyEncrypted(path: "key_file")])
  }

  @Test func everyProblemIsListed() async throws {
    let bad = try chain.issue(dnsNames: ["other.example.com"], notBefore: now.addingTimeInterval(-30 * 86400), notAfter: now.addingTimeInterval(-60))
    let verdict = await inspect(cert: try TestPKI.pem(bad), key: TestPKI.p256().pem, ca: try TestPKI.pem(chain.root))
    #expect(verdict.problems.map(\.code) == ["key_mismatch", "chain_invalid", "expired", "name_mismatch"])
  }

  @Test(arguments: [(100.0, ExpiryLevel.ok), (20.5, .warning), (7.5, .warning), (6.9, .critical), (0.01, .critical)])
  func expiryLevelOfAValidCertificate(days: Double, level: ExpiryLevel) async throws {
    let cert = try chain.issue(notBefore: now.addingTimeInterval(-60), notAfter: now.addingTimeInterval(days * 86400))
    let verdict = await inspect(cert: try TestPKI.pem(cert), key: chain.leafKey.pem)
    #expect(verdict.expiry == level)
    #expect(verdict.problems == [], "inside a threshold is a warning, not a reason to refuse a reload")
  }

  @Test func keyMaterialNeverAppearsInMessages() async throws {
    let key = TestPKI.p256()
    let body = key.pem.split(separator: "\n").dropFirst().first.map(String.init) ?? ""
    #expect(body.count > 20)
    for pem in [key.pem, key.pem.replacingOccurrences(of: "BEGIN PRIVATE KEY", with: "BEGIN PRIVATE KEYS"), String(key.pem.dropLast(40))] {
      let verdict = await inspect(cert: try TestPKI.pem(chain.leaf), key: pem)
      #expect(!verdict.problemSummary.contains(body))
      #expect(!verdict.problemSummary.contains(String(body.prefix(12))))
    }
  }
}
