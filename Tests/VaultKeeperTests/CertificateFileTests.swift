// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing

@testable import VaultKeeper

/// The file side of the inspection: certbot's live/archive symlinks, permissions, unreadable files.
@Suite struct CertificateFileTests {
  let directory: String
  let chain: TestPKI.Chain
  let config: CertificateConfig

  init() throws {
    directory = NSTemporaryDirectory() + "vk-certfiles-\(UUID().uuidString)"
    chain = try TestPKI.Chain()
    let archive = directory + "/archive/vault"
    let live = directory + "/live/vault"
    let fm = FileManager.default
    try fm.createDirectory(atPath: archive, withIntermediateDirectories: true)
    try fm.createDirectory(atPath: live, withIntermediateDirectories: true)
    try Data(try TestPKI.pem(chain.leaf, chain.intermediate)).write(to: URL(fileURLWithPath: archive + "/fullchain1.pem"))
    try Data(chain.leafKey.pem.utf8).write(to: URL(fileURLWithPath: archive + "/privkey1.pem"))
    try Data(try TestPKI.pem(chain.root)).write(to: URL(fileURLWithPath: directory + "/ca.pem"))
    chmod(archive + "/privkey1.pem", 0o640)
    // certbot's relative links: live/NAME/x.pem -> ../../archive/NAME/xN.pem
    try fm.createSymbolicLink(atPath: live + "/fullchain.pem", withDestinationPath: "../../archive/vault/fullchain1.pem")
    try fm.createSymbolicLink(atPath: live + "/privkey.pem", withDestinationPath: "../../archive/vault/privkey1.pem")
    config = CertificateConfig(
      certFile: live + "/fullchain.pem", keyFile: live + "/privkey.pem", caFile: directory + "/ca.pem", names: ["vault.example.com"],
      reload: .systemd(unit: "vault.service"))
  }

  @Test func certbotLayoutWithAGroupReadableKeyPasses() async {
    let verdict = await CertificateInspector.inspectFiles(config, now: Date())
    #expect(verdict.problems == [])
    #expect(verdict.keyMatches == true)
    #expect(verdict.chainValid == true)
  }

  @Test(arguments: [0o644 as mode_t, 0o604, 0o602])
  func aKeyEveryoneCanReadIsRefused(mode: mode_t) async {
    chmod(directory + "/archive/vault/privkey1.pem", mode)
    let verdict = await CertificateInspector.inspectFiles(config, now: Date())
    #expect(verdict.problems == [.keyInsecure(path: config.keyFile, mode: UInt32(mode))])
    #expect(verdict.keyMatches == nil)
    #expect(verdict.problemSummary.contains("chmod o-rwx"))
  }

  @Test func missingKeyIsUnreadable() async throws {
    try FileManager.default.removeItem(atPath: directory + "/archive/vault/privkey1.pem")  // a dangling live/ link
    let verdict = await CertificateInspector.inspectFiles(config, now: Date())
    #expect(verdict.problems.map(\.code) == ["key_unreadable"])
    #expect(verdict.problemSummary.contains("No such file or directory"))
    #expect(verdict.leaf != nil, "the certificate is still inspected")
  }

  @Test func keyThatIsADirectoryIsUnreadable() async throws {
    var other = config
    other.keyFile = directory + "/archive"
    let verdict = await CertificateInspector.inspectFiles(other, now: Date())
    #expect(verdict.problems.map(\.code) == ["key_unreadable"])
  }

  @Test func missingCertificateIsUnreadable() async throws {
    try FileManager.default.removeItem(atPath: directory + "/archive/vault/fullchain1.pem")
    let verdict = await CertificateInspector.inspectFiles(config, now: Date())
    #expect(verdict.problems.map(\.code) == ["cert_unreadable"])
    #expect(verdict.problemSummary.hasPrefix("cannot read cert_file \(config.certFile)"))
  }

  @Test func missingCAFileIsReported() async throws {
    try FileManager.default.removeItem(atPath: directory + "/ca.pem")
    let verdict = await CertificateInspector.inspectFiles(config, now: Date())
    #expect(verdict.problems.map(\.code) == ["ca_unreadable"])
    #expect(verdict.chainValid == nil)
  }

  @Test func messagesNameTheConfiguredPaths() async throws {
    try Data(TestPKI.p256().pem.utf8).write(to: URL(fileURLWithPath: directory + "/archive/vault/privkey1.pem"))
    try Data("garbage".utf8).write(to: URL(fileURLWithPath: directory + "/ca.pem"))
    let verdict = await CertificateInspector.inspectFiles(config, now: Date())
    #expect(verdict.problems == [.keyMismatch(keyType: "P256", certificateKeyType: "P256"), .noCACertificate(path: directory + "/ca.pem")])
  }
}
