// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
import Testing

@testable import VaultKeeper

/// The throwaway server dies with vaultkeeper (PR_SET_PDEATHSIG through the hidden
/// `exec-dying-with-parent` subcommand of the built binary), and the kernel's rule that the
/// signal follows the *thread* that spawned the child does not kill it early: a server started
/// from a thread that then exits keeps running. The child is `sh` blocked on a FIFO, so whether
/// it was killed or released shows in its wait status, without any clock.
@Suite(.serialized) struct DrillServerParentDeathTests {
  /// `.build/<config>/vaultkeeper`, beside this test binary (`swift build --build-tests` builds both).
  static let helper: String? = {
    guard let me = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") else { return nil }
    let candidate = URL(fileURLWithPath: me).deletingLastPathComponent().appendingPathComponent("vaultkeeper").path
    return FileManager.default.isExecutableFile(atPath: candidate) ? candidate : nil
  }()

  struct Rig {
    let directory: String
    var fifo: String { "\(directory)/release" }
    var log: String { "\(directory)/server.log" }
    /// Exits 7 once something is written to the FIFO.
    /// Says `ready` (in its log) once running, exits 7 once something is written to the FIFO.
    var argv: [String] { ["/bin/sh", "-c", "echo ready; read line < '\(fifo)'; exit 7"] }

    /// Waits until the child said it runs: the helper's prctl and execve are behind it.
    func waitUntilReady() -> Bool {
      for _ in 0..<2000 {
        if let text = try? String(contentsOfFile: log, encoding: .utf8), text.contains("ready") { return true }
        usleep(10_000)
      }
      return false
    }

    init() throws {
      directory = NSTemporaryDirectory() + "vk-pdeathsig-\(UUID().uuidString)"
      try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
      #expect(mkfifo(fifo, 0o600) == 0)
    }

    /// Writes a line once the child has the FIFO open for reading; false if `stillRunning`
    /// turned false first, or after the ceiling.
    func release(while stillRunning: () -> Bool) -> Bool {
      for _ in 0..<2000 where stillRunning() {
        let fd = open(fifo, O_WRONLY | O_NONBLOCK)
        if fd >= 0 {
          _ = write(fd, "go\n", 3)
          close(fd)
          return true
        }
        usleep(10_000)
      }
      return false
    }

    func remove() { try? FileManager.default.removeItem(atPath: directory) }
  }

  /// The calling thread's id, from /proc/thread-self (`PID/task/TID`).
  static func currentThreadID() -> String? {
    (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/thread-self"))?.split(separator: "/").last.map(String.init)
  }

  /// Waits until the thread has exited: the kernel sends PR_SET_PDEATHSIG while it exits,
  /// before its /proc entry goes.
  static func waitForExit(ofThread tid: String) -> Bool {
    for _ in 0..<2000 {
      if !FileManager.default.fileExists(atPath: "/proc/self/task/\(tid)") { return true }
      usleep(10_000)
    }
    return false
  }

  /// Runs `body` on a thread of its own that ends right after; returns its result and the
  /// thread's id once that thread is gone.
  static func onShortLivedThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> (T, String?) {
    let (value, tid) = await OffPool.run { (body(), currentThreadID()) }
    guard let tid else { return (value, nil) }
    let gone = await OffPool.run { waitForExit(ofThread: tid) }
    return (value, gone ? tid : nil)
  }

  @Test func drillServerStartedFromAThreadThatExitsKeepsRunning() async throws {
    let helper = try #require(Self.helper, "the vaultkeeper binary is built beside the tests")
    let rig = try Rig()
    defer { rig.remove() }
    // The start is requested from a short-lived thread, which waits for it and then ends.
    let box = ServerBox()
    let (_, tid) = await Self.onShortLivedThread {
      let done = WakeupEvent()
      Task {
        box.set(await DrillServerProcess.start(rig.argv, logPath: rig.log, parentDeathHelper: helper))
        done.signal()
      }
      done.wait()
    }
    #expect(tid != nil, "the requesting thread exited")
    let server = try #require(try box.get()?.get())
    #expect(await OffPool.run { rig.waitUntilReady() }, "the server ran")
    let released = await OffPool.run { rig.release(while: { !server.hasExited }) }
    #expect(released, "the server was still running after the requesting thread exited")
    await OffPool.run { for _ in 0..<2000 where !server.hasExited { usleep(10_000) } }
    let status = try #require(server.waitStatus)
    #expect(CommandRunner.termination(status) == .exited(7))
    await server.kill()
  }

  /// The control: the same helper, spawned directly on a short-lived thread, is killed when
  /// that thread exits. This is what the drill's dedicated watcher thread avoids, and it shows
  /// the helper really sets PR_SET_PDEATHSIG (the first test could not fail without it).
  @Test func childSpawnedOnAThreadThatExitsIsKilled() async throws {
    let helper = try #require(Self.helper, "the vaultkeeper binary is built beside the tests")
    let rig = try Rig()
    defer { rig.remove() }
    let log = open(rig.log, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
    defer { close(log) }
    // The thread stays until the child runs: had it exited during the helper's start-up, before
    // the prctl, the child would already have been handed to another (living) thread.
    let (spawned, tid) = await Self.onShortLivedThread {
      let spawned = CommandRunner.spawn(rig.argv, output: log, parentDeathHelper: helper)
      return (spawned, rig.waitUntilReady())
    }
    #expect(tid != nil, "the spawning thread exited")
    #expect(spawned.1, "the child ran")
    let pid = try spawned.0.get()
    let status: Int32? = await OffPool.run {
      var raw: Int32 = 0
      for _ in 0..<2000 {
        if waitpid(pid, &raw, WNOHANG) == pid { return raw }
        usleep(10_000)
      }
      // Not killed: release it so that it does not linger, and report what it did.
      _ = rig.release(while: { true })
      return waitpid(pid, &raw, 0) == pid ? raw : nil
    }
    #expect(status.map(CommandRunner.termination) == .signaled(SIGKILL))
  }

  @Test func helperRefusesWhenItsParentIsGone() async throws {
    let helper = try #require(Self.helper, "the vaultkeeper binary is built beside the tests")
    let result = await CommandRunner(
      argv: [helper, CommandRunner.parentDeathSubcommand, "1", "/bin/echo", "--", "echo", "started"], timeout: .seconds(30)
    ).run()
    #expect(result.termination == .exited(127))
    #expect(result.output.contains("its parent 1 is gone"))
    #expect(!result.output.contains("started"))
  }
}

/// Hands the start's result from the task to the test.
final class ServerBox: Sendable {
  private let value = Mutex<Result<DrillServerProcess, DrillServerProcess.StartFailure>?>(nil)
  func set(_ result: Result<DrillServerProcess, DrillServerProcess.StartFailure>) { value.withLock { $0 = result } }
  func get() -> Result<DrillServerProcess, DrillServerProcess.StartFailure>? { value.withLock { $0 } }
}
