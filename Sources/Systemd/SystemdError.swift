// SPDX-License-Identifier: Apache-2.0
import Glibc

/// A failed libsystemd call. libsystemd reports failures as `-errno`; this keeps the positive
/// errno and the name of the C function, so a log line says which call failed and why without
/// the adapter having to log anything itself (modelled on NIO's `IOError`).
public struct SystemdError: Error, Sendable, Equatable, CustomStringConvertible {
  /// The positive errno value (`ENOENT`, `EPERM`, …).
  public var errno: Int32
  /// The libsystemd function that returned it, e.g. `sd_notify`.
  public var function: String

  public init(errno: Int32, function: String) {
    self.errno = errno
    self.function = function
  }

  /// Builds the error from a libsystemd return value, which is `-errno` on failure.
  init(returnValue: Int32, function: String) {
    self.init(errno: returnValue < 0 ? -returnValue : returnValue, function: function)
  }

  public var description: String { "\(function): \(errnoDescription(errno))" }
}

/// `strerror` text for an errno value. `strerror_r` (the XSI variant Swift imports) is used
/// because `strerror` may return a shared static buffer, which is not safe with several threads
/// logging.
func errnoDescription(_ code: Int32) -> String {
  var buffer = [CChar](repeating: 0, count: 256)
  guard strerror_r(code, &buffer, buffer.count) == 0 else { return "errno \(code)" }
  return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
