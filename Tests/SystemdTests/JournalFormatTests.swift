// SPDX-License-Identifier: Apache-2.0
import Logging
import Testing

@testable import Systemd

private func record(
  _ level: Logger.Level = .warning, _ message: String = "Vault is sealed",
  metadata: [MetadataPair] = [], label: String = "vaultkeeper"
) -> JournalRecord {
  JournalRecord(
    level: level, message: message, label: label, metadata: metadata,
    file: "VaultKeeper/Unseal/UnsealDuty.swift", function: "runOnce()", line: 42)
}

@Suite struct JournalFieldsTests {
  @Test(arguments: [
    (Logger.Level.trace, 7), (.debug, 7), (.info, 6), (.notice, 5), (.warning, 4), (.error, 3), (.critical, 2),
  ])
  func priorityFollowsSyslog(level: Logger.Level, priority: Int) {
    #expect(syslogPriority(level) == priority)
  }

  @Test func nativeEntryCarriesMessageLocationAndConvertedMetadata() {
    let entry = record(
      .error, "Unseal failed\nafter 3 keys",
      metadata: [
        MetadataPair(key: "duty.name", value: "unseal"),
        MetadataPair(key: "_pid", value: "1"),  // would spoof a trusted field: dropped
        MetadataPair(key: "message", value: "shadow"),  // collides with MESSAGE: renamed
        MetadataPair(key: "message_id", value: "8D45620C-1A43-48CE-8ED3-B6A1E1F3B8F4"),
      ], label: "vaultkeeper.unseal")
    let fields = journalFields(for: entry, syslogIdentifier: "vaultkeeper")
    #expect(
      fields == [
        JournalField(name: "MESSAGE", value: "Unseal failed\nafter 3 keys"),
        JournalField(name: "PRIORITY", value: "3"),
        JournalField(name: "SYSLOG_IDENTIFIER", value: "vaultkeeper"),
        JournalField(name: "CODE_FILE", value: "VaultKeeper/Unseal/UnsealDuty.swift"),
        JournalField(name: "CODE_LINE", value: "42"),
        JournalField(name: "CODE_FUNC", value: "runOnce()"),
        JournalField(name: "LOGGER", value: "vaultkeeper.unseal"),
        JournalField(name: "DUTY_NAME", value: "unseal"),
        JournalField(name: "METADATA_MESSAGE", value: "shadow"),
        JournalField(name: "MESSAGE_ID", value: "8d45620c1a4348ce8ed3b6a1e1f3b8f4"),
      ])
  }

  @Test func messageIDIsNormalisedOnlyWhenItIsAn128BitID() {
    #expect(normalizedMessageID("8d45620c1a4348ce8ed3b6a1e1f3b8f4") == "8d45620c1a4348ce8ed3b6a1e1f3b8f4")
    #expect(normalizedMessageID("8D45620C-1A43-48CE-8ED3-B6A1E1F3B8F4") == "8d45620c1a4348ce8ed3b6a1e1f3b8f4")
    #expect(normalizedMessageID("not-an-id") == "not-an-id")
    #expect(normalizedMessageID("zz45620c1a4348ce8ed3b6a1e1f3b8f4") == "zz45620c1a4348ce8ed3b6a1e1f3b8f4")
  }

  @Test func packedEntryHasOneRangePerAssignment() {
    let fields = [JournalField(name: "MESSAGE", value: "two\nlines"), JournalField(name: "PRIORITY", value: "6")]
    let packed = PackedJournalEntry(fields)
    let assignments = packed.ranges.map { String(decoding: packed.bytes[$0], as: UTF8.self) }
    #expect(assignments == ["MESSAGE=two\nlines", "PRIORITY=6"])
    #expect(packed.bytes.count == "MESSAGE=two\nlines".utf8.count + "PRIORITY=6".utf8.count)
  }

  @Test func metadataIsFlattenedAndSorted() {
    let metadata: Logger.Metadata = [
      "vault": ["addr": "https://127.0.0.1:8200", "node": ["id": "n1"]],
      "attempt": .stringConvertible(3),
      "keys": ["k1", "k2"],
      "empty": [:],
    ]
    #expect(
      flattenMetadata(metadata) == [
        MetadataPair(key: "attempt", value: "3"),
        MetadataPair(key: "empty", value: "[:]"),
        MetadataPair(key: "keys", value: "[k1, k2]"),
        MetadataPair(key: "vault.addr", value: "https://127.0.0.1:8200"),
        MetadataPair(key: "vault.node.id", value: "n1"),
      ])
    #expect(renderMetadataValue(["a", ["b": "c"]]) == "[a, [b: c]]")
  }

  @Test func mergeOrderIsHandlerThenProviderThenExplicitThenError() {
    struct Boom: Error, CustomStringConvertible { var description: String { "boom" } }
    let provider = Logger.MetadataProvider { ["trace": "t1", "shared": "provider"] }
    let merged = mergeMetadata(
      handler: ["shared": "handler", "base": "b"], provider: provider, explicit: ["shared": "explicit"], error: Boom())
    #expect(merged["base"] == "b")
    #expect(merged["trace"] == "t1")
    #expect(merged["shared"] == "explicit")
    #expect(merged["error.message"] == "boom")
    #expect(merged["error.type"]?.description.hasSuffix("Boom") == true)
  }
}

@Suite struct StderrFormatTests {
  @Test func iso8601IsUTCWithMilliseconds() {
    #expect(iso8601UTC(WallClockTime(seconds: 1_795_347_000, nanoseconds: 123_456_789)) == "2026-11-22T11:30:00.123Z")
    #expect(iso8601UTC(WallClockTime(seconds: 1_709_251_199, nanoseconds: 5_000_000)) == "2024-02-29T23:59:59.005Z")
    #expect(iso8601UTC(WallClockTime(seconds: 0, nanoseconds: 0)) == "1970-01-01T00:00:00.000Z")
  }

  @Test(arguments: [
    ("plain", "plain"),
    ("", "\"\""),
    ("two words", "\"two words\""),
    ("a=b", "\"a=b\""),
    ("say \"hi\"", "\"say \\\"hi\\\"\""),
    ("line\nbreak", "\"line\\nbreak\""),
    ("back\\slash", "back\\slash"),
    ("bell\u{07}", "\"bell\\x07\""),
  ])
  func logfmtQuotesWhenNeeded(value: String, rendered: String) {
    #expect(logfmtValue(value) == rendered)
  }

  @Test func plainLineMatchesTheDocumentedShape() {
    let text = plainStderrText(
      record(metadata: [MetadataPair(key: "key", value: "value"), MetadataPair(key: "key2", value: "value2")]),
      at: WallClockTime(seconds: 1_795_347_000, nanoseconds: 123_000_000))
    #expect(text == "2026-11-22T11:30:00.123Z warning vaultkeeper: Vault is sealed key=value key2=value2\n")
  }

  @Test func plainMultiLineMessageRepeatsThePrefixAndKeepsMetadataOnTheFirstLine() {
    let text = plainStderrText(
      record(.error, "first\r\nsecond\n\nfourth\n", metadata: [MetadataPair(key: "k", value: "v")], label: "vaultkeeper.unseal"),
      at: WallClockTime(seconds: 0, nanoseconds: 0))
    let prefix = "1970-01-01T00:00:00.000Z error vaultkeeper.unseal: "
    #expect(text == "\(prefix)first k=v\n\(prefix)second\n\(prefix)\n\(prefix)fourth\n")
  }

  @Test func prefixedLinesCarryThePriorityOnEveryLine() {
    #expect(prefixedStderrText(record(.warning, "sealed", metadata: [MetadataPair(key: "node", value: "n1")])) == "<4>sealed node=n1\n")
    #expect(prefixedStderrText(record(.critical, "a\nb")) == "<2>a\n<2>b\n")
    #expect(prefixedStderrText(record(.debug, "")) == "<7>\n")
    #expect(prefixedStderrText(record(.info, "", metadata: [MetadataPair(key: "k", value: "v")])) == "<6>k=v\n")
  }
}
