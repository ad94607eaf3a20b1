// SPDX-License-Identifier: Apache-2.0
import Foundation
import Glibc
import Testing
import VaultKeeper

@testable import Systemd

private let running = FakeSystemd.UnitState(activeState: "active", subState: "running", mainPID: 4242)

/// A private bus with a fake systemd on it, torn down by `close()`.
private struct ReloadBus {
  let bus: PrivateBus
  let systemd: FakeSystemd

  init(mainPID: UInt32 = 4242) throws {
    bus = try PrivateBus()
    var state = running
    state.mainPID = mainPID
    systemd = try FakeSystemd(address: bus.address, units: ["vault.service": state])
  }

  /// The timeouts are ceilings on a hang here, so they are generous, except where a test is
  /// about one.
  func reloader(jobTimeout: Duration = .seconds(60)) -> SystemdUnitReloader {
    SystemdUnitReloader(unit: "vault.service", address: bus.address, callTimeout: .seconds(60), jobTimeout: jobTimeout)
  }

  func signalReloader() -> SignalUnitReloader {
    SignalUnitReloader(unit: "vault.service", address: bus.address, callTimeout: .seconds(60))
  }

  func close() {
    systemd.shutdown()
    bus.terminate()
  }
}

@Suite struct SystemdUnitReloaderTests {
  @Test
  func subscribesThenReloadsAndWaitsForItsOwnJob() async throws {
    let fake = try ReloadBus()
    defer { fake.close() }
    let outcome = await fake.reloader().reload()
    // The fake ends another job with "canceled" first: taking that would be a failure.
    #expect(outcome == ReloadOutcome(result: .succeeded, detail: "reload job of vault.service done", duration: outcome.duration))
    #expect(fake.systemd.managerCalls.withLock { $0 } == ["Subscribe", "ReloadUnit vault.service replace"])
  }

  @Test
  func jobResultsOtherThanDoneAreFailures() async throws {
    let fake = try ReloadBus()
    defer { fake.close() }
    fake.systemd.reloadBehaviour.withLock { $0 = .finish("failed") }
    let failed = await fake.reloader().reload()
    #expect(failed.result == .failed)
    #expect(failed.detail == "reload job of vault.service ended with result 'failed' (see journalctl -u vault.service)")

    fake.systemd.reloadBehaviour.withLock { $0 = .finish("timeout") }
    let timedOut = await fake.reloader().reload()
    #expect(timedOut.result == .timedOut)
    #expect(timedOut.detail.contains("timed out in systemd"))
  }

  @Test
  func aJobThatNeverEndsTimesOut() async throws {
    let fake = try ReloadBus()
    defer { fake.close() }
    fake.systemd.reloadBehaviour.withLock { $0 = .never }
    let outcome = await fake.reloader(jobTimeout: .milliseconds(400)).reload()
    #expect(outcome.result == .timedOut)
    let job = try #require(fake.systemd.lastJob.withLock { $0 })
    #expect(outcome.detail == "no end of reload job \(job) of vault.service within 400ms")
    // Not before the job timeout (a lower bound, which load cannot break; measured on the
    // reload's own thread). That it ended at all, with the calls' own timeout at 60 s, is the
    // job timeout's doing: the detail above says so.
    #expect(outcome.duration >= .milliseconds(400), "took \(outcome.duration)")
  }

  @Test
  func jobRemovedFromAnotherSenderIsIgnored() async throws {
    let fake = try ReloadBus()
    defer { fake.close() }
    fake.systemd.reloadBehaviour.withLock { $0 = .never }
    let reloader = fake.reloader()
    let reload = Task { await reloader.reload() }
    // Generous: with the whole suite running in parallel on two cores, other tests' blocking
    // calls can keep the reload's task from starting for a while (liveness, not speed).
    #expect(await eventually(timeout: .seconds(20)) { fake.systemd.lastJob.withLock { $0 } != nil })
    let job = try #require(fake.systemd.lastJob.withLock { $0 })
    // Anyone on the bus can emit a signal named JobRemoved on that path; only systemd's counts.
    let forger = Process()
    forger.executableURL = URL(fileURLWithPath: "/usr/bin/busctl")
    forger.arguments = [
      "--address=\(fake.bus.address)", "emit", "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager",
      "JobRemoved", "uoss", "1", job, "vault.service", "done",
    ]
    try forger.run()
    forger.waitUntilExit()
    #expect(forger.terminationStatus == 0)
    // Then systemd ends the job for real, with another result: the reload reports that one,
    // so it was still waiting after the forgery (no timeout has to pass for this).
    fake.systemd.endLastJob("failed")
    let outcome = await reload.value
    #expect(outcome.result == .failed, "\(outcome)")
    #expect(outcome.detail.contains("ended with result 'failed'"), "\(outcome)")
  }

  @Test
  func deniedByPolkitSaysWhatToInstall() async throws {
    let fake = try ReloadBus()
    defer { fake.close() }
    fake.systemd.reloadBehaviour.withLock { $0 = .deny }
    let outcome = await fake.reloader().reload()
    #expect(outcome.result == .failed)
    #expect(
      outcome.detail
        == "ReloadUnit(vault.service) failed: org.freedesktop.DBus.Error.AccessDenied: Access denied"
        + " (is deploy/polkit/50-vaultkeeper.rules installed, naming this unit?)")
  }

  @Test
  func unknownUnitIsAFailure() async throws {
    let fake = try ReloadBus()
    defer { fake.close() }
    let outcome = await SystemdUnitReloader(unit: "nope.service", address: fake.bus.address, callTimeout: .seconds(60)).reload()
    #expect(outcome.result == .failed)
    #expect(outcome.detail == "ReloadUnit(nope.service) failed: org.freedesktop.systemd1.NoSuchUnit: Unit nope.service not found.")
  }

  @Test func missingBusIsAFailure() async {
    let outcome = await SystemdUnitReloader(unit: "vault.service", address: "unix:path=/nonexistent/vk-bus").reload()
    #expect(outcome.result == .failed)
    #expect(outcome.detail == "no system bus at /nonexistent/vk-bus: No such file or directory")
  }
}

@Suite struct SignalUnitReloaderTests {
  @Test
  func sendsSIGHUPToTheMainPID() async throws {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    let pidFile = directory.path + "/pid"
    // Started through CommandRunner for its clean signal mask; `exec` keeps the pid.
    // The child's own timeout is only a backstop against a stray process: it must outlast every
    // ceiling below (a busy machine can take seconds for each step).
    let child = Task {
      await CommandRunner(argv: ["/bin/sh", "-c", "echo $$ > \(pidFile); exec sleep 600"], timeout: .seconds(300)).run()
    }
    #expect(await eventually { ((try? String(contentsOfFile: pidFile, encoding: .utf8)) ?? "").hasSuffix("\n") })
    let pid = try #require(UInt32(String(contentsOfFile: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))

    let fake = try ReloadBus(mainPID: pid)
    defer { fake.close() }
    let outcome = await fake.signalReloader().reload()
    #expect(outcome.result == .succeeded)
    #expect(outcome.detail == "SIGHUP sent to vault.service main PID \(pid)")
    #expect(await child.value.termination == .signaled(SIGHUP))
  }

  @Test
  func noMainProcessIsAFailure() async throws {
    let fake = try ReloadBus(mainPID: 0)
    defer { fake.close() }
    let outcome = await fake.signalReloader().reload()
    #expect(outcome.result == .failed)
    #expect(outcome.detail == "vault.service has no main process to signal")
  }

  /// A kill that fails is a failure with the reason. The target is a process that has just
  /// ended and been reaped (ESRCH): that fails for root and for everyone else alike, where a
  /// root-owned PID would only fail for a non-root user.
  @Test
  func failedKillIsAFailure() async throws {
    let ended = await CommandRunner(argv: ["/bin/sh", "-c", "echo $$"], timeout: .seconds(300)).run()
    #expect(ended.termination == .exited(0))
    let pid = try #require(UInt32(ended.output.trimmingCharacters(in: .whitespacesAndNewlines)))
    let fake = try ReloadBus(mainPID: pid)
    defer { fake.close() }
    let outcome = await fake.signalReloader().reload()
    #expect(outcome.result == .failed)
    #expect(outcome.detail == "sending SIGHUP to vault.service main PID \(pid) failed: No such process")
  }
}
