// SPDX-License-Identifier: Apache-2.0
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The throwaway `bao server` / `vault server` process: started like `CommandRunner`'s children
/// (posix_spawn, a process group of its own so everything it starts dies with it, an empty
/// signal mask, default dispositions, no descriptor of ours, a clean environment), as the
/// current user, with its output in the drill directory's log. Never waited for with a blocking
/// call on the cooperative pool: polls use WNOHANG, the final reap runs on a thread of its own.
final class DrillServerProcess: Sendable {
  let pid: Int32
  private let logPath: String
  /// The wait status once reaped (a pid is reaped exactly once).
  private let status = Mutex<Int32?>(nil)

  private init(pid: Int32, logPath: String) {
    self.pid = pid
    self.logPath = logPath
  }

  static func start(binary: String, configPath: String, logPath: String) -> Result<DrillServerProcess, DrillFailureReason> {
    let log = open(logPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
    guard log >= 0 else { return .failure(.workspace("cannot open \(logPath): \(String(cString: strerror(errno)))")) }
    defer { close(log) }
    // Nothing of ours: not $CREDENTIALS_DIRECTORY (the unseal keys), not VAULT_*/BAO_* settings
    // an operator's shell may carry, not NOTIFY_SOCKET (CommandRunner's clean environment).
    let pid: pid_t
    switch CommandRunner.spawn([binary, "server", "-config=\(configPath)"], output: log) {
    case .success(let started): pid = started
    case .failure(let failure): return .failure(.binary("\(binary): \(failure.reason)"))
    }
    return .success(DrillServerProcess(pid: pid, logPath: logPath))
  }

  /// Whether it has exited (reaping it if so). Never blocks.
  var hasExited: Bool {
    status.withLock { status in
      if status != nil { return true }
      var raw: Int32 = 0
      if waitpid(pid, &raw, WNOHANG) == pid { status = raw }
      return status != nil
    }
  }

  /// Signals the whole process group.
  func signal(_ number: Int32) {
    guard !hasExited else { return }
    Glibc.kill(-pid, number)
  }

  /// Asks it to stop (SIGTERM: it closes Raft cleanly and removes its socket) and waits,
  /// SIGKILL after `grace`. Cancellation-aware: a cancelled drill is cleaned up by `kill()`.
  func stop(grace: Duration) async -> Bool {
    signal(SIGTERM)
    let deadline = ContinuousClock.now + grace
    while !hasExited {
      if ContinuousClock.now >= deadline || Task.isCancelled { return false }
      try? await Task.sleep(for: .milliseconds(20))
    }
    return true
  }

  /// SIGKILL to the group, then reaps the server on a thread of its own (bounded: a process
  /// stuck in the kernel stays a zombie rather than hang the caller). Safe to call more than
  /// once. The group is signalled before the reap: until then its id cannot name anyone else's.
  func kill() async {
    let reaped = status.withLock { $0 != nil }
    guard !reaped else { return }
    Glibc.kill(-pid, SIGKILL)
    await OffPool.run { [self] in
      for _ in 0..<500 where !hasExited { usleep(10_000) }
    }
  }

  /// The end of its log (for a server that exited on its own), without anything that looks like
  /// a secret (the server logs none; this only bounds what a surprise could leak).
  func logTail(maxBytes: Int = 2000) -> String {
    guard let bytes = try? FileAccess.readBytes(path: logPath, limit: 8 << 20) else { return "" }
    let tail = String(decoding: bytes.suffix(maxBytes), as: UTF8.self)
    return tail.split(separator: "\n").suffix(8).joined(separator: "\n")
  }
}
