// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
@testable import VaultKeeper

@Suite struct SnapshotEncryptionConfigTests {
  let directory: String
  let second = AgeIdentity.generate().recipient.description

  init() throws {
    directory = NSTemporaryDirectory() + "vk-agecfg-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
  }

  func parse(_ extra: String) throws(ConfigError) -> Config {
    try ConfigLoader().parse(
      "[vault]\naddress = \"https://127.0.0.1:8200\"\n[snapshot]\ndirectory = \"\(directory)\"\ntoken_credential = \"t\"\n" + extra,
      path: "/etc/vk.toml")
  }

  func error(_ extra: String) -> ConfigError? {
    do {
      _ = try parse(extra)
      return nil
    } catch {
      return error
    }
  }

  func write(_ name: String, _ text: String) -> String {
    let path = "\(directory)/\(name)"
    _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
    return path
  }

  @Test func noKeysMeansPlainSnapshots() throws {
    #expect(try #require(try parse("").snapshot).encryption == nil)
  }

  @Test func listAndFileCombineWithoutDuplicates() throws {
    let file = write("recipients.txt", "# backup operators\n\(second)\n\n  \(AgeVectors.recipient)  \n")
    let config = try parse("age_recipients = [\"\(AgeVectors.recipient)\"]\nage_recipients_file = \"\(file)\"\n")
    let encryption = try #require(config.snapshot?.encryption)
    #expect(encryption.listed.map(\.description) == [AgeVectors.recipient])
    #expect(encryption.recipientsFile == file)
    #expect(encryption.recipients.map(\.description) == [AgeVectors.recipient, second])
    let rendered = EffectiveConfig.render(config)
    #expect(rendered.contains("age_recipients = [\"\(AgeVectors.recipient)\"]"))
    var reparsed = try ConfigLoader().parse(rendered, path: "/etc/vk.toml")
    reparsed.sourcePath = config.sourcePath
    #expect(reparsed == config)
  }

  @Test func fileAlone() throws {
    let file = write("only.txt", "\(second)\n")
    let encryption = try #require(try parse("age_recipients_file = \"\(file)\"\n").snapshot?.encryption)
    #expect(encryption.recipients.map(\.description) == [second])
    #expect(encryption.listed.isEmpty)
  }

  @Test func listErrorsNameKeyLineAndEntry() throws {
    let typo = String(AgeVectors.recipient.dropLast()) + "8"
    let bad = try #require(error("keep_last = 3\nage_recipients = [\"\(second)\", \"\(typo)\"]\n"))
    #expect(bad.key == "snapshot.age_recipients")
    #expect(bad.line == 7)
    #expect(bad.message.contains("entry 2"))
    #expect(bad.message.contains("checksum"))
    #expect(bad.description.hasPrefix("/etc/vk.toml:7: snapshot.age_recipients: "))

    #expect(error("age_recipients = \"\(second)\"\n")?.message.contains("must be an array") == true)
    #expect(error("age_recipients = []\n")?.message.contains("is empty") == true)
    #expect(error("age_recipients = [3]\n")?.message.contains("entry 1 must be a string") == true)
    let pasted = try #require(error("age_recipients = [\"\(AgeVectors.identity)\"]\n"))
    #expect(pasted.message.contains("expected \"age1"))
    #expect(!pasted.description.contains(AgeVectors.identity.dropFirst(16).prefix(10)), "an identity pasted by mistake is echoed")
  }

  @Test func fileErrorsNameTheFileAndItsLine() throws {
    let file = write("bad.txt", "# ok\n\(second)\nssh-ed25519 AAAAC3Nza\n")
    let bad = try #require(error("age_recipients_file = \"\(file)\"\n"))
    #expect(bad.key == "snapshot.age_recipients_file")
    #expect(bad.line == 6)
    #expect(bad.message.hasPrefix("\(file):3: "))

    let empty = write("empty.txt", "# nobody yet\n\n")
    #expect(error("age_recipients_file = \"\(empty)\"\n")?.message.contains("lists no") == true)
    #expect(error("age_recipients_file = \"\(directory)/missing\"\n")?.message.contains("does not exist") == true)
    #expect(error("age_recipients_file = \"relative.txt\"\n")?.message.contains("absolute") == true)
    #expect(error("age_recipient = []\n")?.key == "snapshot.age_recipient")
  }
}
