// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif

/// Tells whether the previous run stopped cleanly: a file in the state directory that says
/// "running" from start to clean stop. Found at start, it means the last run ended some other
/// way: a crash, the watchdog's SIGABRT, the OOM killer, SIGKILL, or a power loss.
///
/// A file rather than systemd's restart counter: it also sees a kill that systemd did not
/// restart from, and a machine that went down with vaultkeeper running.
public struct UncleanStopMarker: Sendable {
  public var path: String

  public init(path: String) {
    self.path = path
  }

  /// `$STATE_DIRECTORY/running` (set by the unit's `StateDirectory=`); nil without it. Only the
  /// service's own runs: a `vaultkeeper run` by hand beside the service must neither take the
  /// service's marker for a crash nor remove it.
  public static func path(environment: [String: String]) -> String? {
    guard let state = environment["STATE_DIRECTORY"]?.split(separator: ":").first, !state.isEmpty else { return nil }
    return "\(state)/running"
  }

  /// What the previous run left, when it did not stop cleanly: its marker's text (`pid 1234`).
  public struct Previous: Sendable, Equatable {
    public var text: String
  }

  /// Reads the previous run's marker, then writes this run's. Small file work: call it off the
  /// pool. Returns nil after a clean stop (or a first start); a marker that cannot be written is
  /// the returned `error`, and only costs the next start this check.
  public func begin(pid: Int32) -> (previous: Previous?, error: String?) {
    var previous: Previous?
    if FileAccess.kind(path: path) == .regular {
      let text = (try? FileAccess.readText(path: path, limit: 256))?.trimmingWhitespace() ?? ""
      previous = Previous(text: text.isEmpty ? "unknown pid" : text)
    }
    do throws(FileAccess.Failure) {
      try FileAccess.writeAtomically(path: path, bytes: Array("pid \(pid)\n".utf8), mode: 0o644, durable: true)
      return (previous, nil)
    } catch {
      return (previous, "\(error)")
    }
  }

  /// At a clean stop: the next start finds nothing.
  public func end() {
    unlink(path)
  }
}
