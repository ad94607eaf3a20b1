// SPDX-License-Identifier: Apache-2.0
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The throwaway `bao server` / `vault server` process: started like `CommandRunner`'s children
/// (posix_spawn, a process group of its own so everything it starts dies with it, an empty
/// signal mask, default dispositions, no descriptor of ours, a clean environment), as the
/// current user, with its output in the drill directory's log.
///
/// It never outlives vaultkeeper, however vaultkeeper ends (SIGKILL, a crash): it is started
/// through our own binary's `exec-dying-with-parent`, which sets PR_SET_PDEATHSIG=SIGKILL before
/// exec'ing the server. The kernel sends that signal when the *thread* that spawned the child
/// exits, not the process, so the spawn happens on a dedicated thread that then waits for the
/// server's exit and so lives exactly as long as the server does; no caller's short-lived
/// thread (OffPool's) can take it down early. Waiting for it never blocks the cooperative pool
/// (only the open(2) of its log file happens there).
final class DrillServerProcess: Sendable {
  let pid: Int32
  private let logPath: String
  private let exit: ChildExit

  private init(pid: Int32, logPath: String, exit: ChildExit) {
    self.pid = pid
    self.logPath = logPath
    self.exit = exit
  }

  static func start(binary: String, configPath: String, logPath: String) async -> Result<DrillServerProcess, DrillFailureReason> {
    // Nothing of ours: not $CREDENTIALS_DIRECTORY (the unseal keys), not VAULT_*/BAO_* settings
    // an operator's shell may carry, not NOTIFY_SOCKET (CommandRunner's clean environment).
    switch await start([binary, "server", "-config=\(configPath)"], logPath: logPath, parentDeathHelper: CommandRunner.ownExecutable) {
    case .success(let server): return .success(server)
    case .failure(.log(let reason)): return .failure(.workspace(reason))
    case .failure(.spawn(let reason)): return .failure(.binary("\(binary): \(reason)"))
    }
  }

  enum StartFailure: Error, Equatable {
    case log(String)
    case spawn(String)
  }

  /// Starts `argv` on a watcher thread of its own that stays until the child has exited.
  /// - Parameter parentDeathHelper: a vaultkeeper executable (`CommandRunner.ownExecutable`;
  ///   tests name the built binary), or nil for a child without PR_SET_PDEATHSIG.
  static func start(_ argv: [String], logPath: String, parentDeathHelper: String?) async -> Result<DrillServerProcess, StartFailure> {
    let log = open(logPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
    guard log >= 0 else { return .failure(.log("cannot open \(logPath): \(String(cString: strerror(errno)))")) }
    let exit = ChildExit()
    let spawned: Result<pid_t, StartFailure> = await withCheckedContinuation { continuation in
      let started = DedicatedThread.start {
        let spawned = CommandRunner.spawn(argv, output: log, parentDeathHelper: parentDeathHelper)
        close(log)
        continuation.resume(returning: spawned.mapError { StartFailure.spawn($0.reason) })
        // This thread is the child's parent as far as PR_SET_PDEATHSIG goes: it must not end
        // before the child does.
        guard case .success(let pid) = spawned else { return }
        exit.waitAndReap(pid)
      }
      if started != 0 {
        close(log)
        continuation.resume(returning: .failure(.spawn("cannot start a thread: \(String(cString: strerror(started)))")))
      }
    }
    return spawned.map { DrillServerProcess(pid: $0, logPath: logPath, exit: exit) }
  }

  /// Whether it has exited (and been reaped). Never blocks.
  var hasExited: Bool { exit.status != nil }

  /// The wait status once it has exited.
  var waitStatus: Int32? { exit.status }

  /// Signals the whole process group, unless the server has been reaped (then its id may
  /// already name someone else's group).
  func signal(_ number: Int32) {
    let pid = self.pid
    exit.whileNotReaped { _ = Glibc.kill(-pid, number) }
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

  /// SIGKILL to the group, then waits (bounded: a process stuck in the kernel stays a zombie
  /// rather than hang the caller) for the watcher thread to reap it. Safe to call more than once.
  func kill() async {
    guard !hasExited else { return }
    signal(SIGKILL)
    await OffPool.run { [self] in
      for _ in 0..<500 where !hasExited { usleep(10_000) }
    }
  }

  /// The end of its log (for a server that exited on its own), bounded to its last lines. Nothing
  /// is filtered: the server logs no key material (shares and tokens reach it over its API, never
  /// through its command line or configuration), and the bound limits what a surprise could leak.
  /// Blocking: call it off the cooperative pool.
  func logTail(maxBytes: Int = 2000) -> String {
    guard let bytes = try? FileAccess.readBytes(path: logPath, limit: 8 << 20) else { return "" }
    let tail = String(decoding: bytes.suffix(maxBytes), as: UTF8.self)
    return tail.split(separator: "\n").suffix(8).joined(separator: "\n")
  }
}

/// A child's wait status, filled in by its watcher thread. The thread waits for the exit
/// without reaping (WNOWAIT) and reaps under the lock, so a signal sent under the same lock
/// while the status is nil always reaches our child's group, never a recycled id.
final class ChildExit: Sendable {
  private let reaped = Mutex<Int32?>(nil)

  var status: Int32? { reaped.withLock { $0 } }

  func whileNotReaped(_ body: () -> Void) {
    reaped.withLock { status in
      if status == nil { body() }
    }
  }

  /// Blocks until `pid` exits, then reaps it.
  func waitAndReap(_ pid: pid_t) {
    var info = siginfo_t()
    while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) != 0, errno == EINTR {}
    reaped.withLock { status in
      var raw: Int32 = 0
      // -1 (ECHILD) cannot happen for a child only this thread reaps; recorded as a kill
      // rather than left nil, which would make the drill wait for it forever.
      status = waitpid(pid, &raw, 0) == pid ? raw : SIGKILL
    }
  }
}
