// SPDX-License-Identifier: Apache-2.0
import Synchronization

/// Each duty promises when it will next make progress; the watchdog pings systemd only while
/// every promise holds. A cycle that hangs past its deadline stops the pings, and systemd
/// restarts us (`WatchdogSec=`), which is exactly the point of a watchdog. A free-running
/// timer would prove nothing about the work loop.
public final class Heartbeats: Sendable {
  private let deadlines = Mutex<[String: ContinuousClock.Instant]>([:])

  public init() {}

  /// The duty `name` promises to beat again within `within`.
  public func promise(_ name: String, within: Duration) {
    let deadline = ContinuousClock.now.advanced(by: within)
    deadlines.withLock { $0[name] = deadline }
  }

  public func retire(_ name: String) {
    _ = deadlines.withLock { $0.removeValue(forKey: name) }
  }

  /// Names of duties whose deadline has passed.
  public func overdue(now: ContinuousClock.Instant = .now) -> [String] {
    deadlines.withLock { $0.filter { $0.value < now }.map(\.key).sorted() }
  }
}
