// SPDX-License-Identifier: Apache-2.0
/// Converts a swift-log metadata key into a journal field name, or nil when no valid name
/// results.
///
/// journald silently discards assignments whose name is invalid (`journal_field_valid()` in
/// systemd's journal-file.c), so this maps the project's dotted keys (`vault.addr`,
/// `certificate.sha256`) to names that survive, and rejects the rest instead of losing them silently
/// further down:
/// - letters are uppercased; `.`, `-` and space become `_`;
/// - any other character outside `A-Z0-9_` is dropped;
/// - a name that is empty, longer than 64 characters, or starts with a digit or `_` is invalid.
///   A leading `_` marks fields journald itself vouches for (`_PID`, `_SYSTEMD_UNIT`); clients'
///   copies are dropped by journald, and we refuse them here rather than strip the underscore,
///   so a metadata key can never impersonate a trusted field.
///
/// `message_id` becomes `MESSAGE_ID`, the field journalctl uses to look up catalog entries.
///
/// - Parameter key: a swift-log metadata key.
/// - Returns: the journal field name, or nil if the key cannot be expressed as one.
public func journalFieldName(_ key: String) -> String? {
  var name = ""
  name.reserveCapacity(key.utf8.count)
  for scalar in key.unicodeScalars {
    switch scalar {
    case "A"..."Z", "0"..."9", "_":
      name.unicodeScalars.append(scalar)
    case "a"..."z":
      name.unicodeScalars.append(Unicode.Scalar(scalar.value - 0x20) ?? scalar)
    case ".", "-", " ":
      name.unicodeScalars.append("_")
    default:
      continue
    }
  }
  guard let first = name.unicodeScalars.first, name.unicodeScalars.count <= 64 else { return nil }
  if first == "_" || ("0"..."9").contains(first) { return nil }
  return name
}
