// SPDX-License-Identifier: Apache-2.0
import CSystemd

/// A failed sd-bus operation: either a D-Bus error reply (`name` set, e.g.
/// `org.freedesktop.systemd1.NoSuchUnit`) or a local failure (`errno` only).
///
/// Internal: the public API reports these as `UnitWatchUnavailable` with `description` as the
/// reason, because the core only needs to know that the bus could not answer and why.
struct BusError: Error, Sendable, Equatable, CustomStringConvertible {
  /// The D-Bus error name, when the peer answered with an error.
  var name: String?
  /// The error text from the peer, or `strerror` of `errno`.
  var message: String
  /// The positive errno sd-bus returned.
  var errno: Int32
  /// What failed, as a phrase that reads well before `: reason`, e.g.
  /// `LoadUnit(vault.service) failed` or `no system bus at /run/dbus/system_bus_socket`.
  var context: String

  var description: String {
    if let name { return "\(context): \(name): \(message)" }
    return "\(context): \(message)"
  }

  /// Builds the error from a negative sd-bus return value and, if set, the `sd_bus_error` the
  /// call filled in. Frees the `sd_bus_error`.
  init(returnValue: Int32, busError: inout sd_bus_error, context: String) {
    self.errno = returnValue < 0 ? -returnValue : returnValue
    self.context = context
    if let name = busError.name {
      self.name = String(cString: name)
      self.message = busError.message.map { String(cString: $0) } ?? errnoDescription(self.errno)
    } else {
      self.name = nil
      self.message = errnoDescription(self.errno)
    }
    sd_bus_error_free(&busError)
  }

  init(returnValue: Int32, context: String) {
    var none = csystemd_bus_error_null()
    self.init(returnValue: returnValue, busError: &none, context: context)
  }
}
