// SPDX-License-Identifier: Apache-2.0
import Logging
import ServiceLifecycle
import Synchronization
import Testing

@testable import VaultKeeper

/// Ends as soon as graceful shutdown comes (or cancellation).
struct PoliteDuty: Service {
  func run() async throws {
    try? await gracefulShutdown()
  }
}

/// Ignores graceful shutdown; ends only when cancelled.
struct DeafToShutdownDuty: Service {
  func run() async throws {
    let (never, _) = AsyncStream.makeStream(of: Void.self)
    for await _ in never {}
  }
}

/// Ignores graceful shutdown and cancellation alike, until the test releases it.
final class StuckDuty: Service, Sendable {
  private let gate = Mutex<CheckedContinuation<Void, Never>?>(nil)
  private let released = Mutex(false)

  func run() async throws {
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
      let resumeNow = released.withLock { done -> Bool in
        if done { return true }
        gate.withLock { $0 = continuation }
        return false
      }
      if resumeNow { continuation.resume() }
    }
  }

  func release() {
    released.withLock { $0 = true }
    gate.withLock { $0.take() }?.resume()
  }
}

/// Stands in for the daemon: starts the group, and on graceful shutdown stops it within the
/// bounds, as `Daemon.runGenerations` does.
final class GroupHost: Service, Sendable {
  let group: DutyGroup
  let bounds: StopBounds
  private let leftBehind = Mutex<[String]?>(nil)

  init(_ group: DutyGroup, bounds: StopBounds) {
    self.group = group
    self.bounds = bounds
  }

  var left: [String]? { leftBehind.withLock { $0 } }

  func run() async throws {
    group.start()
    try? await gracefulShutdown()
    let left = await group.stop(.graceful, bounds: bounds)
    leftBehind.withLock { $0 = left }
  }
}

@Suite(.timeLimit(.minutes(1))) struct DutyGroupTests {
  static let bounds = StopBounds.unit

  /// Runs `host` in a ServiceGroup (no signals), returns the task and the group to stop it.
  func serve(_ host: GroupHost) -> (Task<Void, any Error>, ServiceGroup) {
    let serviceGroup = ServiceGroup(configuration: .init(services: [host], logger: Logger(label: "test.lifecycle")))
    return (Task { try await serviceGroup.run() }, serviceGroup)
  }

  /// Waits (on events, with a ceiling in turns, never on time) until only `names` still run.
  func waitUntilRunning(_ group: DutyGroup, are names: [String]) async {
    for _ in 0..<100_000 where group.running != names { await Task.yield() }
    #expect(group.running == names)
  }

  @Test func aDutyIgnoringGracefulShutdownIsCancelledAtTheBoundAndNamed() async throws {
    let clock = VirtualDutyClock(mode: .manual)
    let log = RecordingLog()
    let group = DutyGroup(
      duties: [NamedDuty("polite", PoliteDuty()), NamedDuty("deaf", DeafToShutdownDuty())], logger: log.logger, clock: clock)
    let host = GroupHost(group, bounds: Self.bounds)
    let (running, serviceGroup) = serve(host)
    await waitUntilRunning(group, are: ["polite", "deaf"])
    let start = clock.now()

    await serviceGroup.triggerGracefulShutdown()
    await waitUntilRunning(group, are: ["deaf"])
    await clock.waitForSleepers(1)  // the graceful bound's timer
    clock.advance(by: Self.bounds.graceful)
    try await running.value

    #expect(host.left == [])
    #expect(clock.elapsed(since: start) == Self.bounds.graceful)
    let lines = log.all.filter { $0.fields["duty"] != nil }
    #expect(lines.map(\.fields["duty"]) == ["deaf"])
    #expect(lines.first?.level == .warning)
    #expect(lines.first?.message == "duty deaf did not stop within 15s of the stop request: cancelling it")
  }

  @Test func aDutyDeafToCancellationToIsLeftBehindSoTheDaemonEnds() async throws {
    let clock = VirtualDutyClock(mode: .manual)
    let log = RecordingLog()
    let stuck = StuckDuty()
    defer { stuck.release() }
    let group = DutyGroup(duties: [NamedDuty("polite", PoliteDuty()), NamedDuty("stuck", stuck)], logger: log.logger, clock: clock)
    let host = GroupHost(group, bounds: Self.bounds)
    let (running, serviceGroup) = serve(host)
    await waitUntilRunning(group, are: ["polite", "stuck"])
    let start = clock.now()

    await serviceGroup.triggerGracefulShutdown()
    await clock.waitForSleepers(1)
    clock.advance(by: Self.bounds.graceful)
    await clock.waitForSleepers(1)  // the cancellation bound's timer
    clock.advance(by: Self.bounds.cancellation)
    try await running.value  // the host (the daemon) ended although the duty did not

    #expect(host.left == ["stuck"])
    #expect(group.running == ["stuck"])
    #expect(clock.elapsed(since: start) == Self.bounds.graceful + Self.bounds.cancellation)
    let lines = log.all.filter { $0.fields["duty"] == "stuck" }
    #expect(lines.map(\.level) == [.warning, .error])
    #expect(lines.last?.message == "duty stuck did not end within 3s of being cancelled: exiting without it")
    #expect(!log.all.contains { $0.fields["duty"] == "polite" })
  }

  /// A reload cancels the old generation's duties at once: no graceful wait, nothing logged.
  @Test func aReloadCancelsAtOnce() async {
    let clock = VirtualDutyClock(mode: .manual)
    let log = RecordingLog()
    let group = DutyGroup(duties: [NamedDuty("deaf", DeafToShutdownDuty())], logger: log.logger, clock: clock)
    group.start()
    let start = clock.now()
    let left = await group.stop(.cancel, bounds: Self.bounds)
    #expect(left == [])
    #expect(group.running == [])
    #expect(clock.elapsed(since: start) == .zero)
    #expect(log.all.isEmpty)
  }

  /// A duty with no graceful stop of its own is cancelled as soon as the stop begins.
  @Test func cancelAtOnceEndsWithTheStopRequest() async throws {
    let clock = VirtualDutyClock(mode: .manual)
    let log = RecordingLog()
    let group = DutyGroup(duties: [NamedDuty("deaf", DeafToShutdownDuty(), onStop: .cancelAtOnce)], logger: log.logger, clock: clock)
    let host = GroupHost(group, bounds: Self.bounds)
    let (running, serviceGroup) = serve(host)
    await waitUntilRunning(group, are: ["deaf"])
    let start = clock.now()
    await serviceGroup.triggerGracefulShutdown()
    try await running.value
    #expect(host.left == [])
    #expect(clock.elapsed(since: start) == .zero)
    #expect(log.all.isEmpty)
  }

  @Test func theBoundsFitTheUnitsTimeoutStopSec() throws {
    // Tests/VaultKeeperTests/DutyGroupTests.swift → the package's root.
    let root = String(#filePath).split(separator: "/", omittingEmptySubsequences: false).dropLast(3).joined(separator: "/")
    let unit = String(decoding: try FileAccess.readBytes(path: root + "/deploy/vaultkeeper.service", limit: 1 << 16), as: UTF8.self)
    let line = unit.split(separator: "\n").first { $0.hasPrefix("TimeoutStopSec=") }
    let value = line.map { String($0.dropFirst("TimeoutStopSec=".count)) }
    let timeout = try #require(value.flatMap { DurationParsing.parse($0) })
    // Leave the process time to exit before SIGKILL.
    #expect(StopBounds.unit.total + .seconds(5) <= timeout)
  }
}
