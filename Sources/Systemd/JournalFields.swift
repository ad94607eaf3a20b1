// SPDX-License-Identifier: Apache-2.0
import Logging

/// A journal field as sent over the native protocol: `NAME=value`.
struct JournalField: Sendable, Equatable {
  var name: String
  var value: String
}

/// The syslog priority (0 emerg … 7 debug) for a swift-log level.
///
/// swift-log has no emergency/alert levels, so `critical` (2) is the most severe we emit. `trace`
/// shares 7 with `debug`: syslog has nothing finer.
func syslogPriority(_ level: Logger.Level) -> Int {
  switch level {
  case .trace, .debug: 7
  case .info: 6
  case .notice: 5
  case .warning: 4
  case .error: 3
  case .critical: 2
  }
}

/// Fields the handler sets itself. A metadata key that maps onto one of these is renamed with a
/// `METADATA_` prefix: a second `MESSAGE` or `PRIORITY` in one entry would make journald store
/// both values, and tools would show either.
let reservedJournalFields: Set<String> = [
  "MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "CODE_FILE", "CODE_LINE", "CODE_FUNC", "LOGGER",
]

/// The fields of one native journal entry, in the order they are sent.
///
/// `CODE_FILE`/`CODE_LINE`/`CODE_FUNC` come from the log call's location: the C macros that add
/// them to `sd_journal_send` are function-like and not imported by Swift. `LOGGER` carries the
/// logger's label so `journalctl LOGGER=vaultkeeper.unseal` filters one duty. Metadata keys are
/// converted with `journalFieldName`; keys that cannot be converted are dropped.
///
/// - Parameters:
///   - record: the event.
///   - syslogIdentifier: `SYSLOG_IDENTIFIER`, what `journalctl -t` matches on.
func journalFields(for record: JournalRecord, syslogIdentifier: String) -> [JournalField] {
  var fields = [
    JournalField(name: "MESSAGE", value: record.message),
    JournalField(name: "PRIORITY", value: String(syslogPriority(record.level))),
    JournalField(name: "SYSLOG_IDENTIFIER", value: syslogIdentifier),
    JournalField(name: "CODE_FILE", value: record.file),
    JournalField(name: "CODE_LINE", value: String(record.line)),
    JournalField(name: "CODE_FUNC", value: record.function),
    JournalField(name: "LOGGER", value: record.label),
  ]
  for pair in record.metadata {
    guard var name = journalFieldName(pair.key) else { continue }
    if reservedJournalFields.contains(name) {
      name = "METADATA_" + name
      guard name.utf8.count <= 64 else { continue }
    }
    let value = name == "MESSAGE_ID" ? normalizedMessageID(pair.value) : pair.value
    fields.append(JournalField(name: name, value: value))
  }
  return fields
}

/// journald and the catalog expect `MESSAGE_ID` as 32 lowercase hex digits without dashes. A
/// UUID-formatted or uppercase id is converted; anything else is passed through unchanged (it
/// is still stored, it just won't match a catalog entry).
func normalizedMessageID(_ value: String) -> String {
  let compact = value.lowercased().filter { $0 != "-" }
  guard compact.utf8.count == 32, compact.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) })
  else { return value }
  return compact
}

/// All fields packed into one byte buffer, with the byte range of each `NAME=value`
/// assignment: the shape `sd_journal_sendv` needs (one iovec per assignment).
///
/// One allocation per entry instead of one per field, and the ranges can be checked in tests
/// without touching C. Values are passed as raw bytes; `sd_journal_sendv` itself switches to the
/// length-prefixed binary form when a value contains a newline.
struct PackedJournalEntry: Equatable {
  var bytes: [UInt8] = []
  var ranges: [Range<Int>] = []

  init(_ fields: [JournalField]) {
    bytes.reserveCapacity(fields.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count + 1 })
    for field in fields {
      let start = bytes.count
      bytes.append(contentsOf: field.name.utf8)
      bytes.append(UInt8(ascii: "="))
      bytes.append(contentsOf: field.value.utf8)
      ranges.append(start..<bytes.count)
    }
  }
}
