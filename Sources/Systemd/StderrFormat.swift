// SPDX-License-Identifier: Apache-2.0
import Glibc
import Logging

/// A wall-clock instant as `clock_gettime(CLOCK_REALTIME)` reports it. Injected into the
/// formatter so tests can pin the time.
struct WallClockTime: Sendable, Equatable {
  var seconds: Int
  var nanoseconds: Int

  static func now() -> WallClockTime {
    var now = timespec()
    _ = clock_gettime(CLOCK_REALTIME, &now)
    return WallClockTime(seconds: now.tv_sec, nanoseconds: now.tv_nsec)
  }
}

/// `2026-11-22T11:30:00.123Z`: ISO 8601 in UTC with milliseconds.
///
/// UTC rather than local time because these lines end up next to Vault's own logs and in
/// tickets from several time zones; `gmtime_r` because `gmtime` shares a static buffer between
/// threads.
func iso8601UTC(_ time: WallClockTime) -> String {
  var seconds = time_t(time.seconds)
  var parts = tm()
  guard gmtime_r(&seconds, &parts) != nil else { return "\(time.seconds)" }
  func pad(_ value: Int32, _ width: Int) -> String {
    let digits = String(value)
    return String(repeating: "0", count: max(0, width - digits.count)) + digits
  }
  let millis = Int32(max(0, min(999, time.nanoseconds / 1_000_000)))
  return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))"
    + "T\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(millis, 3))Z"
}

/// `key=value key2="with space"`, logfmt style, in the record's (sorted) order.
///
/// Values are quoted when they are empty or contain a space, `"`, `=` or a control character,
/// and newlines inside a value are escaped, so one metadata value can never start a new line
/// that a reader (or journald's stream parser) would take for a separate entry.
func logfmtMetadata(_ pairs: [MetadataPair]) -> String {
  pairs.map { "\($0.key)=\(logfmtValue($0.value))" }.joined(separator: " ")
}

func logfmtValue(_ value: String) -> String {
  let needsQuotes = value.isEmpty || value.unicodeScalars.contains { scalar in
    scalar == " " || scalar == "\"" || scalar == "=" || scalar.value < 0x20 || scalar.value == 0x7f
  }
  guard needsQuotes else { return value }
  var quoted = "\""
  for scalar in value.unicodeScalars {
    switch scalar {
    case "\"": quoted += "\\\""
    case "\\": quoted += "\\\\"
    case "\n": quoted += "\\n"
    case "\r": quoted += "\\r"
    case "\t": quoted += "\\t"
    default:
      if scalar.value < 0x20 || scalar.value == 0x7f {
        let hex = String(scalar.value, radix: 16)
        quoted += "\\x" + (hex.count < 2 ? "0" : "") + hex
      } else {
        quoted.unicodeScalars.append(scalar)
      }
    }
  }
  return quoted + "\""
}

/// The message split into lines; a trailing newline does not produce an empty last line, and
/// `\r\n` line ends count as one. An empty message is one empty line, so the entry is still
/// visible.
func messageLines(_ message: String) -> [Substring] {
  // "\r\n" is a single Character in Swift, so it must be named as a separator of its own.
  var lines = message.split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" }
    .map { $0.hasSuffix("\r") ? $0.dropLast() : $0 }
  while lines.count > 1, lines.last?.isEmpty == true { lines.removeLast() }
  return lines
}

/// The text written to a terminal or file for one entry:
/// `2026-11-22T11:30:00.123Z warning vaultkeeper: message key=value`, one line per message line,
/// each with the full prefix so `grep` on any line shows when and where it came from. Metadata
/// goes on the first line only.
func plainStderrText(_ record: JournalRecord, at time: WallClockTime) -> String {
  let prefix = "\(iso8601UTC(time)) \(record.level) \(record.label): "
  return formatLines(record, linePrefix: prefix)
}

/// The text written to a journal stream when the native protocol is unavailable:
/// `<4>message key=value`, one line per message line.
///
/// journald's stream reader turns every line into its own entry and takes the priority from the
/// `<N>` prefix (`SyslogLevelPrefix=yes`, the default), so every line needs its own prefix or
/// the continuation lines would be logged at the unit's default level. The timestamp and label
/// are left out: journald adds the time, and the unit already identifies us.
func prefixedStderrText(_ record: JournalRecord) -> String {
  formatLines(record, linePrefix: "<\(syslogPriority(record.level))>")
}

private func formatLines(_ record: JournalRecord, linePrefix: String) -> String {
  let metadata = logfmtMetadata(record.metadata)
  var text = ""
  for (index, line) in messageLines(record.message).enumerated() {
    text += linePrefix
    text += line
    if index == 0, !metadata.isEmpty {
      text += line.isEmpty ? metadata : " " + metadata
    }
    text += "\n"
  }
  return text
}
