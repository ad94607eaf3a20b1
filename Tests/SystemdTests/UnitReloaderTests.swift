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

  func reloader(jobTimeout: Duration = .seconds(5)) -> SystemdUnitReloader {
    SystemdUnitReloader(unit: "vault.service", address: bus.address, callTimeout: .seconds(2), jobTimeout: jobTimeout)
  }

  func close() {
    systemd.shutdown()
    bus.terminate()
  }
}

@Suite struct SystemdUnitReloaderTests {
  @Test(.enabled(if: PrivateBus.available, "needs dbus-daemon"))
  func subscribesThenReloadsAndWaitsForItsOwnJob() async throws {
    let fake = try ReloadBus()
    defer { fake.close() }
    let outcome = await fake.reloader().reload()
    // The fake ends another job with "canceled" first: taking that would be a failure.
    #expect(outcome == ReloadOutcome(result: .succeeded, detail: "reload job of vault.service done", duration: outcome.duration))
    #expect(fake.systemd.managerCalls.withLock { $0 } == ["Subscribe", "ReloadUnit vault.service replace"])
  }

  @Test(.enabled(if: PrivateBus.available, "needs dbus-daemon"))
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

  @Test(.enabled(if: PrivateBus.available, "needs dbus-daemon"))
  func aJobThatNeverEndsTimesOut() async throws {
    let fake = try ReloadBus()
    defer { fake.close() }
    fake.systemd.reloadBehaviour.withLock { $0 = .never }
    let outcome = await fake.reloader(jobTimeout: .milliseconds(400)).reload()
    #expect(outcome.result == .timedOut)
    let job = try #require(fake.systemd.lastJob.withLock { $0 })
    #expect(outcome.detail == "no end of reload job \(job) of vault.service within 400ms")
    // Measured on the reload's own thread, not including the wait for a busy pool afterwards.
    #expect(outcome.duration >= .milliseconds(400) && outcome.duration < .seconds(3), "took \(outcome.duration)")
  }

  @Test(.enabled(if: PrivateBus.available, "needs dbus-daemon"))
  func jobRemovedFromAnotherSenderIsIgnored() async throws {
    let fake = try ReloadBus()
    defer { fake.close() }
    fake.systemd.reloadBehaviour.withLock { $0 = .never }
    let reloader = fake.reloader(jobTimeout: .seconds(2))
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
    let outcome = await reload.value
    #expect(outcome.result == .timedOut)
  }

  @Test(.enabled(if: PrivateBus.available, "needs dbus-daemon"))
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

  @Test(.enabled(if: PrivateBus.available, "needs dbus-daemon"))
  func unknownUnitIsAFailure() async throws {
    let fake = try ReloadBus()
    defer { fake.close() }
    let outcome = await SystemdUnitReloader(unit: "nope.service", address: fake.bus.address).reload()
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
  @Test(.enabled(if: PrivateBus.available, "needs dbus-daemon"))
  func sendsSIGHUPToTheMainPID() async throws {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    let pidFile = directory.path + "/pid"
    // Started through CommandRunner for its clean signal mask; `exec` keeps the pid.
    let child = Task {
      await CommandRunner(argv: ["/bin/sh", "-c", "echo $$ > \(pidFile); exec sleep 60"], timeout: .seconds(30)).run()
    }
    // It failed at the old 5 s bound on a busy machine: the child task waited for a thread.
    #expect(await eventually { ((try? String(contentsOfFile: pidFile, encoding: .utf8)) ?? "").hasSuffix("\n") })
    let pid = try #require(UInt32(String(contentsOfFile: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))

    let fake = try ReloadBus(mainPID: pid)
    defer { fake.close() }
    let outcome = await SignalUnitReloader(unit: "vault.service", address: fake.bus.address).reload()
    #expect(outcome.result == .succeeded)
    #expect(outcome.detail == "SIGHUP sent to vault.service main PID \(pid)")
    #expect(await child.value.termination == .signaled(SIGHUP))
  }

  @Test(.enabled(if: PrivateBus.available, "needs dbus-daemon"))
  func noMainProcessIsAFailure() async throws {
    let fake = try ReloadBus(mainPID: 0)
    defer { fake.close() }
    let outcome = await SignalUnitReloader(unit: "vault.service", address: fake.bus.address).reload()
    #expect(outcome.result == .failed)
    #expect(outcome.detail == "vault.service has no main process to signal")
  }

  @Test(.enabled(if: PrivateBus.available && getuid() != 0, "needs dbus-daemon and a non-root user"))
  func refusedKillIsAFailure() async throws {
    let fake = try ReloadBus(mainPID: 1)  // PID 1 belongs to root
    defer { fake.close() }
    let outcome = await SignalUnitReloader(unit: "vault.service", address: fake.bus.address).reload()
    #expect(outcome.result == .failed)
    #expect(outcome.detail == "sending SIGHUP to vault.service main PID 1 failed: Operation not permitted")
  }
}
