// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing

@testable import VaultKeeper

@Suite struct CommandRunnerTests {
  func run(_ script: String, timeout: Duration = .seconds(10), killGrace: Duration = .seconds(2), outputLimit: Int = 64 * 1024) async
    -> CommandRunner.Result
  {
    await CommandRunner(argv: ["/bin/sh", "-c", script], timeout: timeout, killGrace: killGrace, outputLimit: outputLimit).run()
  }

  @Test func successCollectsStdoutAndStderrInOrder() async {
    let result = await run("echo one; echo two >&2; echo three")
    #expect(result.termination == .exited(0))
    #expect(result.output == "one\ntwo\nthree\n")
    let outcome = CommandReloader.outcome(of: result, timeout: .seconds(10))
    #expect(outcome.result == .succeeded)
    #expect(outcome.detail == "exit status 0")
    #expect(outcome.output == "one\ntwo\nthree\n")
  }

  @Test func nonZeroExitIsAFailure() async {
    let result = await run("echo 'vault: reload refused' >&2; exit 3")
    #expect(result.termination == .exited(3))
    let outcome = CommandReloader.outcome(of: result, timeout: .seconds(10))
    #expect(outcome.result == .failed)
    #expect(outcome.detail == "exit status 3")
    #expect(outcome.output == "vault: reload refused\n")
  }

  @Test func hangingCommandIsTerminatedAtTheTimeout() async throws {
    let directory = NSTemporaryDirectory() + "vk-runner-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    // The background sleep is in the command's process group: it must die with it. The
    // `setsid` one is not (a session of its own) and keeps the output pipe open: the runner
    // must not wait for it.
    let result = await run(
      "sleep 60 & echo $! > \(directory)/group; setsid sleep 60 & echo $! > \(directory)/outside; echo started; wait",
      timeout: .milliseconds(300))
    let outside = try #require(pid_t(String(contentsOfFile: directory + "/outside", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
    defer { kill(outside, SIGKILL) }
    // Ordering, not a stopwatch: the run ended while a holder of its output pipe still lives,
    // so it ended on the timeout and did not wait for the pipe to close.
    #expect(isAlive(outside), "the run waited for everything holding its output to end")
    #expect(result.termination == .timedOut(lastSignal: SIGTERM))
    #expect(result.output == "started\n")
    // Not before the timeout (a lower bound, which load cannot break; measured by the runner's
    // own thread).
    #expect(result.duration >= .milliseconds(300), "took \(result.duration)")
    let outcome = CommandReloader.outcome(of: result, timeout: .milliseconds(300))
    #expect(outcome.result == .timedOut)
    #expect(outcome.detail == "still running after 300ms, killed with SIGTERM")

    let background = try #require(pid_t(String(contentsOfFile: directory + "/group", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
    #expect(await eventually { !isAlive(background) })
  }

  /// Running, not a zombie waiting to be reaped (kill(pid, 0) succeeds for both).
  private func isAlive(_ pid: pid_t) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
      let end = stat.lastIndex(of: ")")
    else { return false }
    let state = stat[stat.index(after: end)...].drop { $0 == " " }.first
    return state != "Z" && state != "X"
  }

  @Test func commandIgnoringSIGTERMGetsSIGKILL() async {
    let result = await run("trap '' TERM; echo ignoring; sleep 60", timeout: .milliseconds(200), killGrace: .milliseconds(200))
    #expect(result.termination == .timedOut(lastSignal: SIGKILL))
    #expect(result.output == "ignoring\n")
  }

  @Test func missingBinaryIsAClearError() async {
    let result = await CommandRunner(argv: ["/nonexistent/vault-reload", "now"], timeout: .seconds(5)).run()
    #expect(result.termination == .couldNotStart("No such file or directory"))
    let outcome = CommandReloader.outcome(of: result, timeout: .seconds(5))
    #expect(outcome.result == .failed)
    #expect(outcome.detail == "could not be started: No such file or directory")
    #expect(await CommandRunner(argv: [], timeout: .seconds(5)).run().termination == .couldNotStart("no command given"))
  }

  @Test func bareNamesAreLookedUpInPath() async {
    let result = await CommandRunner(argv: ["echo", "from", "PATH"], timeout: .seconds(5)).run()
    #expect(result.termination == .exited(0))
    #expect(result.output == "from PATH\n")
  }

  @Test func outputBeyondTheLimitIsCountedNotKept() async {
    let result = await run("head -c 100000 /dev/zero | tr '\\0' x", outputLimit: 1024)
    #expect(result.termination == .exited(0))
    #expect(result.output == String(repeating: "x", count: 1024))
    #expect(result.droppedBytes == 100_000 - 1024)
    let outcome = CommandReloader.outcome(of: result, timeout: .seconds(10))
    #expect(outcome.output.hasSuffix("\n[98976 more bytes of output not kept]"))
  }

  @Test func childGetsNullStdinNoExtraDescriptorsAndAClearSignalMask() async {
    #expect(CommandRunner.addCloseFrom != nil)  // glibc 2.34+: the child closes 3 and up itself
    let inheritable = open("/dev/null", O_RDONLY)  // no O_CLOEXEC: must still not reach the child
    defer { close(inheritable) }
    #expect(await run("cat; echo done").output == "done\n")
    // `ls` opens the directory itself as 3.
    let descriptors = await run("ls /proc/self/fd").output.split(separator: "\n")
    #expect(descriptors == ["0", "1", "2", "3"])
    let mask = await run("grep SigBlk /proc/self/status").output
    #expect(mask == "SigBlk:\t0000000000000000\n")
  }

  /// The reload command must not see the daemon's environment: CREDENTIALS_DIRECTORY names the
  /// directory with the unseal keys, NOTIFY_SOCKET lets it speak for the service.
  @Test func childGetsACleanEnvironmentNotOurs() async {
    // Nothing of this process's environment (no setenv here: other tests run in parallel).
    #expect(!ProcessInfo.processInfo.environment.isEmpty)
    let result = await CommandRunner(argv: ["/usr/bin/env"], timeout: .seconds(5)).run()
    #expect(result.termination == .exited(0))
    #expect(result.output == "PATH=/usr/sbin:/usr/bin:/sbin:/bin\nLANG=C.UTF-8\n")
    // A bare name is found in that PATH, not in ours.
    #expect(await CommandRunner(argv: ["env"], timeout: .seconds(5)).run().output == result.output)
    let missing = await CommandRunner(argv: ["vk-no-such-command"], timeout: .seconds(5)).run()
    #expect(missing.termination == .couldNotStart("vk-no-such-command: not found in PATH=/usr/sbin:/usr/bin:/sbin:/bin"))
  }

  @Test func deathBySignalIsAFailure() async {
    let result = await run("kill -USR1 $$")  // USR1 rather than SEGV: no core dump left behind
    #expect(result.termination == .signaled(SIGUSR1))
    #expect(CommandReloader.outcome(of: result, timeout: .seconds(1)).detail == "killed by SIGUSR1")
  }
}
