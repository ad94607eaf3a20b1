// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
#endif

/// The drill's private directory, `<state directory>/restore-drill` (mode 0700): the throwaway
/// server's Raft data, its socket, its log, and the plain snapshot it restores. One fixed name,
/// so whatever a crashed drill left is found and removed by the next one; a lock file next to
/// it keeps two drills (the daemon's and an operator's) from removing each other's.
public final class DrillWorkspace: Sendable {
  public static let directoryName = "restore-drill"
  /// sun_path holds 108 bytes with its terminating NUL; the socket lives in the directory.
  static let maxSocketPath = 107

  public let path: String
  private let lockDescriptor: Int32

  public var socketPath: String { "\(path)/api.sock" }
  public var configPath: String { "\(path)/server.hcl" }
  public var logPath: String { "\(path)/server.log" }
  public var archivePath: String { "\(path)/snapshot.snap" }
  public var raftPath: String { "\(path)/raft" }
  /// The server's process group, written as soon as it is started: a later drill kills a
  /// server a crashed vaultkeeper left running.
  var pidPath: String { "\(path)/server.pid" }

  /// Where drills work for a given state directory (for tests and messages).
  public static func path(stateDirectory: String) -> String { "\(stateDirectory)/\(directoryName)" }

  /// Takes the lock, removes leftovers of an earlier drill (killing its server), and makes the
  /// directory afresh.
  public init(stateDirectory: String) throws(DrillFailure) {
    let path = Self.path(stateDirectory: stateDirectory)
    guard "\(path)/api.sock".utf8.count <= Self.maxSocketPath else {
      throw DrillFailure(.prepare, .workspace("\(path) is too long for a Unix socket path (at most \(Self.maxSocketPath - 9) bytes)"))
    }
    let lock = open("\(path).lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
    guard lock >= 0 else { throw DrillFailure(.prepare, .workspace("cannot open \(path).lock: \(String(cString: strerror(errno)))")) }
    guard flock(lock, LOCK_EX | LOCK_NB) == 0 else {
      close(lock)
      throw DrillFailure(.prepare, .busy("another restore drill is running (\(path).lock is held)"))
    }
    self.path = path
    self.lockDescriptor = lock
    do throws(DrillFailure) {
      try Self.removeLeftover(path)
      guard mkdir(path, 0o700) == 0 else {
        throw DrillFailure(.prepare, .workspace("cannot create \(path): \(String(cString: strerror(errno)))"))
      }
      // mkdir's mode is filtered by the umask; the directory must be ours alone whatever it is.
      guard chmod(path, 0o700) == 0 else {
        throw DrillFailure(.prepare, .workspace("cannot make \(path) private: \(String(cString: strerror(errno)))"))
      }
    } catch {
      close(lock)
      throw error
    }
  }

  deinit { close(lockDescriptor) }

  /// Records the server's process group (its pid: it leads its own group).
  func recordServer(_ pid: Int32) {
    try? FileAccess.writeAtomically(path: pidPath, bytes: Array("\(pid)\n".utf8), mode: 0o600, durable: false)
  }

  /// Removes the directory and everything in it. The server must be gone first.
  public func remove() throws(DrillFailure) {
    try Self.removeTree(path)
  }

  /// Kills a server an earlier, crashed drill left running (only if it still runs our config
  /// from this directory: a reused pid is left alone), then removes the directory.
  static func removeLeftover(_ path: String) throws(DrillFailure) {
    guard FileAccess.kind(path: path) != .missing else { return }
    if let text = try? FileAccess.readText(path: "\(path)/server.pid", limit: 64),
      let pid = Int32(text.trimmingWhitespace()), pid > 1,
      let cmdline = try? FileAccess.readBytes(path: "/proc/\(pid)/cmdline", limit: 64 * 1024),
      String(decoding: cmdline, as: UTF8.self).contains("\(path)/server.hcl")
    {
      kill(-pid, SIGKILL)
      kill(pid, SIGKILL)
      // Not our child: it is reaped by whoever adopted it; wait until it is gone (bounded).
      for _ in 0..<500 where kill(pid, 0) == 0 { usleep(10_000) }
    }
    try removeTree(path)
  }

  static func removeTree(_ path: String) throws(DrillFailure) {
    guard FileAccess.kind(path: path) != .missing else { return }
    do {
      try FileManager.default.removeItem(atPath: path)
    } catch {
      throw DrillFailure(.prepare, .workspace("cannot remove \(path): \(error)"))
    }
  }
}
