// SPDX-License-Identifier: Apache-2.0
import CSystemd
import Glibc
import Synchronization
import VaultKeeper

/// Talks to the service manager through `sd_notify(3)`.
///
/// Outside systemd (`$NOTIFY_SOCKET` unset) every call is a cheap no-op, so the daemon needs no
/// "am I under systemd?" check of its own. Failures are counted rather than thrown or printed:
/// a lost `STATUS=` must never take the daemon down, and this adapter has no logger of its own
/// (logging from here could recurse into the journal handler). `lastError` and `failureCount`
/// are for the adapter's tests and a debugger; the daemon does not read them.
///
/// - Important: `unset_environment` is always 0. Unsetting `$NOTIFY_SOCKET` mutates the process
///   environment, which is not thread-safe, and we notify many times over the daemon's life.
public final class SystemdNotifier: ServiceManagerNotifier {
  private struct Failures {
    var count = 0
    var last: SystemdError?
  }

  private let failures = Mutex(Failures())

  public init() {}

  /// Sends the assignments as one datagram, newline-separated (the `sd_notify` wire format).
  ///
  /// A newline inside one assignment is replaced by a space: the protocol is line-based, so a
  /// `STATUS=` carrying text from Vault could otherwise smuggle in a second key such as
  /// `READY=1` or `MAINPID=`.
  public func send(_ assignments: [String]) {
    guard !assignments.isEmpty else { return }
    let state = Self.payload(assignments)
    let result = sd_notify(0, state)
    if result < 0 {
      let error = SystemdError(returnValue: result, function: "sd_notify")
      failures.withLock {
        $0.count += 1
        $0.last = error
      }
    }
  }

  /// The datagram `send` hands to `sd_notify`; separate so the sanitising rule is testable.
  static func payload(_ assignments: [String]) -> String {
    assignments.map { line in
      String(line.map { $0 == "\n" || $0 == "\r\n" || $0 == "\r" ? " " : $0 })
    }.joined(separator: "\n")
  }

  /// The interval systemd expects `WATCHDOG=1` within, or nil when no watchdog is armed for this
  /// process.
  ///
  /// Read on every access because it is cheap and reflects the environment as it is now.
  /// `sd_watchdog_enabled` returns 0 when `$WATCHDOG_PID` names another process: that happens
  /// when a wrapper script started us without `exec`, and then pinging would be pointless.
  public var watchdogTimeout: Duration? {
    var usec: UInt64 = 0
    let result = sd_watchdog_enabled(0, &usec)
    if result < 0 {
      let error = SystemdError(returnValue: result, function: "sd_watchdog_enabled")
      failures.withLock {
        $0.count += 1
        $0.last = error
      }
      return nil
    }
    guard result > 0, usec > 0, usec <= UInt64(Int64.max) else { return nil }
    return .microseconds(Int64(usec))
  }

  /// The most recent failure of an `sd_notify`/`sd_watchdog_enabled` call, if any.
  public var lastError: SystemdError? { failures.withLock { $0.last } }

  /// How many calls have failed since start. A steadily rising count while the unit is
  /// `Type=notify` usually means `NotifyAccess=` is wrong or the socket is not reachable
  /// (e.g. `RestrictAddressFamilies=` without `AF_UNIX`).
  public var failureCount: Int { failures.withLock { $0.count } }
}
