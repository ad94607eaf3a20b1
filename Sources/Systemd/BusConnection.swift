// SPDX-License-Identifier: Apache-2.0
import CSystemd
import Glibc

/// Owns one sd-bus connection to the system bus (or to an explicit address).
///
/// - Important: sd-bus connections are not thread-safe. A `BusConnection` is used by one thread
///   at a time: `BusUnitWatcher` sets it up on the caller's thread and then hands it, with every
///   reference to it, to the watch thread. It is deliberately not `Sendable`.
final class BusConnection {
  let raw: OpaquePointer
  /// The address we connected to, for error messages.
  let address: String

  private init(raw: OpaquePointer, address: String) {
    self.raw = raw
    self.address = address
  }

  /// `flush_close_unref` rather than plain `unref`: it closes the socket even if a slot still
  /// holds a reference, so the peer sees us leave at once.
  deinit { sd_bus_flush_close_unref(raw) }

  /// The address `sd_bus_open_system` uses: `$DBUS_SYSTEM_BUS_ADDRESS` or the standard socket.
  static func systemBusAddress() -> String {
    if let value = getenv("DBUS_SYSTEM_BUS_ADDRESS") { return String(cString: value) }
    return "unix:path=/run/dbus/system_bus_socket"
  }

  /// A bus address made readable for an error message: `unix:path=/x` → `/x`.
  static func displayAddress(_ address: String) -> String {
    let prefix = "unix:path="
    if address.hasPrefix(prefix), !address.contains(",") { return String(address.dropFirst(prefix.count)) }
    return address
  }

  /// Connects to the system bus, or to `address` when given.
  ///
  /// `sd_bus_open_system` connects synchronously, so a missing socket fails here with
  /// `ENOENT`; authentication and `Hello` complete during the first call.
  ///
  /// - Throws: `BusError` whose description reads like
  ///   `no system bus at /run/dbus/system_bus_socket: No such file or directory`.
  static func open(address: String?) throws(BusError) -> BusConnection {
    let target = address ?? systemBusAddress()
    let context = "no system bus at \(displayAddress(target))"
    var bus: OpaquePointer? = nil
    var result: Int32
    if let address {
      result = sd_bus_new(&bus)
      if result >= 0, let bus {
        result = address.withCString { sd_bus_set_address(bus, $0) }
        if result >= 0 { result = sd_bus_set_bus_client(bus, 1) }
        if result >= 0 { result = sd_bus_start(bus) }
        if result < 0 { sd_bus_unref(bus) }
      }
    } else {
      result = sd_bus_open_system(&bus)
    }
    guard result >= 0, let bus else {
      throw BusError(returnValue: result < 0 ? result : -ENOMEM, context: context)
    }
    return BusConnection(raw: bus, address: target)
  }

  /// Closes the socket now; the peer sees us leave. Idempotent, and the handle stays valid until
  /// `deinit` releases it.
  func close() { sd_bus_close(raw) }

  /// False once the connection has been closed or lost.
  var isOpen: Bool { sd_bus_is_open(raw) > 0 }

  /// Calls a method with string arguments and waits up to `timeout` for the reply.
  func call(
    destination: String, path: String, interface: String, member: String,
    arguments: [String], timeout: Duration, context: String
  ) throws(BusError) -> BusMessage {
    var request: OpaquePointer? = nil
    let created = destination.withCString { destination in
      path.withCString { path in
        interface.withCString { interface in
          member.withCString { member in
            sd_bus_message_new_method_call(raw, &request, destination, path, interface, member)
          }
        }
      }
    }
    guard created >= 0, let request else { throw BusError(returnValue: min(created, -ENOMEM), context: context) }
    let message = BusMessage(adopting: request)
    for argument in arguments { try message.append(argument, context: context) }

    var error = csystemd_bus_error_null()
    var reply: OpaquePointer? = nil
    let result = sd_bus_call(raw, message.raw, Self.microseconds(timeout), &error, &reply)
    guard result >= 0, let reply else {
      throw BusError(returnValue: min(result, -EBADMSG), busError: &error, context: context)
    }
    sd_bus_error_free(&error)
    return BusMessage(adopting: reply)
  }

  /// Dispatches at most one incoming message (sd_bus_process(3)).
  /// - Returns: > 0 if something was processed, 0 if there was nothing to do, < 0 (-errno) when
  ///   the connection is unusable.
  func process() -> Int32 { sd_bus_process(raw, nil) }

  /// Blocks until the bus has something to process or `timeout` elapses.
  /// - Returns: > 0 when woken by I/O, 0 on timeout, < 0 (-errno) on failure.
  func wait(timeout: Duration) -> Int32 { sd_bus_wait(raw, Self.microseconds(timeout)) }

  static func microseconds(_ duration: Duration) -> UInt64 {
    let (seconds, attoseconds) = duration.components
    guard seconds >= 0 else { return 0 }
    return UInt64(seconds) &* 1_000_000 &+ UInt64(max(0, attoseconds) / 1_000_000_000_000)
  }
}

@available(*, unavailable) extension BusConnection: Sendable {}
