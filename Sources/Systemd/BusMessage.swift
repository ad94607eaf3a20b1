// SPDX-License-Identifier: Apache-2.0
import CSystemd
import VaultKeeper
import Glibc

/// Owns one `sd_bus_message *` and reads or appends basic values.
///
/// Only the few D-Bus types this adapter needs are supported (strings, object paths, uint32,
/// variants of those, and the command lines of a service's `ExecStart`): every read and append goes through the non-variadic
/// `sd_bus_message_read_basic`/`append_basic`, since Swift cannot call `sd_bus_message_read`.
///
/// - Important: confined to the thread that owns its bus; deliberately not `Sendable`.
final class BusMessage {
  let raw: OpaquePointer

  /// Takes over one reference to `raw`.
  init(adopting raw: OpaquePointer) {
    self.raw = raw
  }

  deinit { sd_bus_message_unref(raw) }

  func append(_ text: String, context: String) throws(BusError) {
    let result = text.withCString { sd_bus_message_append_basic(raw, csystemd_bus_type_string(), $0) }
    if result < 0 { throw BusError(returnValue: result, context: context) }
  }

  func readString(context: String) throws(BusError) -> String {
    try readText(type: csystemd_bus_type_string(), context: context)
  }

  func readObjectPath(context: String) throws(BusError) -> String {
    try readText(type: csystemd_bus_type_object_path(), context: context)
  }

  func readUInt32(context: String) throws(BusError) -> UInt32 {
    var value: UInt32 = 0
    let result = sd_bus_message_read_basic(raw, csystemd_bus_type_uint32(), &value)
    try check(result, context: context)
    return value
  }

  /// Reads a variant that must hold a string (`v` containing `s`).
  func readVariantString(context: String) throws(BusError) -> String {
    try enterVariant(contents: "s", context: context)
    let value = try readString(context: context)
    try exitContainer(context: context)
    return value
  }

  /// Reads a variant that must hold a uint32 (`v` containing `u`).
  func readVariantUInt32(context: String) throws(BusError) -> UInt32 {
    try enterVariant(contents: "u", context: context)
    let value = try readUInt32(context: context)
    try exitContainer(context: context)
    return value
  }

  /// Reads a variant holding a service's `Exec*` property (`a(sasbttttuii)`, org.freedesktop.systemd1(5)):
  /// each command's path and argv. The rest of each entry (ignore-failure flag, timestamps,
  /// PID, exit code and status of its last run) is skipped.
  func readVariantCommandLines(context: String) throws(BusError) -> [UnitCommandLine] {
    try enterVariant(contents: "a(sasbttttuii)", context: context)
    try enter(csystemd_bus_type_array(), contents: "(sasbttttuii)", context: context)
    var commands: [UnitCommandLine] = []
    // enter_container returns 0 at the end of the array.
    while try enter(csystemd_bus_type_struct(), contents: "sasbttttuii", context: context, endAllowed: true) {
      let path = try readString(context: context)
      try enter(csystemd_bus_type_array(), contents: "s", context: context)
      var arguments: [String] = []
      while let argument = try readStringIfAny(context: context) { arguments.append(argument) }
      try exitContainer(context: context)
      try check(sd_bus_message_skip(raw, "bttttuii"), context: context)
      try exitContainer(context: context)
      commands.append(UnitCommandLine(path: path, arguments: arguments))
    }
    try exitContainer(context: context)
    try exitContainer(context: context)
    return commands
  }

  private func enterVariant(contents: String, context: String) throws(BusError) {
    try enter(csystemd_bus_type_variant(), contents: contents, context: context)
  }

  /// Enters a container; with `endAllowed`, false (rather than an error) at the end of the
  /// enclosing array.
  @discardableResult
  private func enter(_ type: CChar, contents: String, context: String, endAllowed: Bool = false) throws(BusError) -> Bool {
    let result = contents.withCString { sd_bus_message_enter_container(raw, type, $0) }
    if result == 0, endAllowed { return false }
    try check(result, context: context)
    return true
  }

  /// The next string of an array, nil at its end.
  private func readStringIfAny(context: String) throws(BusError) -> String? {
    var pointer: UnsafePointer<CChar>? = nil
    let result = sd_bus_message_read_basic(raw, csystemd_bus_type_string(), &pointer)
    if result == 0 { return nil }
    try check(result, context: context)
    guard let pointer else { throw BusError(returnValue: -EBADMSG, context: context) }
    return String(cString: pointer)
  }

  private func exitContainer(context: String) throws(BusError) {
    let result = sd_bus_message_exit_container(raw)
    if result < 0 { throw BusError(returnValue: result, context: context) }
  }

  /// The string is owned by the message, so it is copied before the message can go away.
  private func readText(type: CChar, context: String) throws(BusError) -> String {
    var pointer: UnsafePointer<CChar>? = nil
    let result = sd_bus_message_read_basic(raw, type, &pointer)
    try check(result, context: context)
    guard let pointer else { throw BusError(returnValue: -EBADMSG, context: context) }
    return String(cString: pointer)
  }

  /// `read_basic` returns 0 (not an error) when the message has no more values of that type,
  /// which for us means the peer sent the wrong signature.
  private func check(_ result: Int32, context: String) throws(BusError) {
    if result < 0 { throw BusError(returnValue: result, context: context) }
    if result == 0 { throw BusError(returnValue: -EBADMSG, context: context) }
  }
}

@available(*, unavailable) extension BusMessage: Sendable {}

extension BusMessage {
  /// Takes a new reference to a message sd-bus lends to a callback, so it can be read with the
  /// helpers above.
  convenience init(borrowing raw: OpaquePointer) {
    self.init(adopting: sd_bus_message_ref(raw))
  }

  /// The unique bus name (`:1.5`) of the connection that sent the message; nil on a direct
  /// connection without a bus.
  var sender: String? { sd_bus_message_get_sender(raw).map { String(cString: $0) } }
}
