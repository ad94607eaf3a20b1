// SPDX-License-Identifier: Apache-2.0
import Foundation
import Glibc
import Testing
import VaultKeeper

@testable import Systemd

private let running = FakeSystemd.UnitState(activeState: "active", subState: "running", mainPID: 4242)
private let stopping = FakeSystemd.UnitState(activeState: "deactivating", subState: "stop-sigterm", mainPID: 4242)
private let dead = FakeSystemd.UnitState(activeState: "inactive", subState: "dead", mainPID: 0)

private func snapshot(_ state: FakeSystemd.UnitState) -> UnitSnapshot {
  UnitSnapshot(activeState: state.activeState, subState: state.subState, mainPID: Int(state.mainPID))
}

/// A private bus with a fake systemd on it, torn down by `close()`.
private struct FakeSystemdBus {
  let bus: PrivateBus
  let systemd: FakeSystemd

  init(units: [String: FakeSystemd.UnitState] = ["vault.service": running]) throws {
    bus = try PrivateBus()
    systemd = try FakeSystemd(address: bus.address, units: units)
  }

  /// The call timeout is only a ceiling on a hang here, so it is generous.
  var watcher: BusUnitWatcher { BusUnitWatcher(address: bus.address, callTimeout: .seconds(60), pollInterval: .milliseconds(50)) }

  func close() {
    systemd.shutdown()
    bus.terminate()
  }
}

/// The `UnitWatchUnavailable.reason` that `body` throws; nil if it succeeds, a marker if it
/// throws anything else.
private func reason(_ body: () throws -> Void) -> String? {
  do {
    try body()
    return nil
  } catch let error as UnitWatchUnavailable {
    return error.reason
  } catch {
    return "unexpected error type: \(error)"
  }
}

@Suite struct BusUnitWatcherTests {
  @Test func missingBusSocketIsAReadableReason() {
    let watcher = BusUnitWatcher(address: "unix:path=/nonexistent/vaultkeeper-test-bus")
    let expected = "no system bus at /nonexistent/vaultkeeper-test-bus: No such file or directory"
    #expect(reason { _ = try watcher.watch(unit: "vault.service") } == expected)
    #expect(reason { _ = try watcher.mainPID(unit: "vault.service") } == expected)
  }

  @Test func durationsBecomeMicroseconds() {
    #expect(BusConnection.microseconds(.milliseconds(250)) == 250_000)
    #expect(BusConnection.microseconds(.seconds(5)) == 5_000_000)
    #expect(BusConnection.microseconds(.seconds(-1)) == 0)
    #expect(BusConnection.displayAddress("unix:path=/run/dbus/system_bus_socket") == "/run/dbus/system_bus_socket")
    #expect(BusConnection.displayAddress("unix:path=/a,guid=1") == "unix:path=/a,guid=1")
  }

  @Test
  func yieldsCurrentStateThenEachChange() async throws {
    let fake = try FakeSystemdBus()
    defer { fake.close() }
    let collector = StreamCollector(try fake.watcher.watch(unit: "vault.service"))
    defer { collector.cancel() }

    #expect(await eventually { collector.elements.count == 1 })
    #expect(collector.elements == [snapshot(running)])

    fake.systemd.set("vault.service", stopping)
    #expect(await eventually { collector.elements.count == 2 })
    fake.systemd.set("vault.service", dead)
    #expect(await eventually { collector.elements.count == 3 })
    #expect(collector.elements == [snapshot(running), snapshot(stopping), snapshot(dead)])
    #expect(fake.systemd.subscribers.withLock { $0.count } == 1)
  }

  @Test
  func signalsWithoutChangeYieldNothing() async throws {
    let fake = try FakeSystemdBus()
    defer { fake.close() }
    let collector = StreamCollector(try fake.watcher.watch(unit: "vault.service"))
    defer { collector.cancel() }
    #expect(await eventually { collector.elements.count == 1 })

    let readsBefore = fake.systemd.gets.withLock { $0["ActiveState", default: 0] }
    fake.systemd.announceWithoutChange("vault.service")
    // The watcher must re-read (proof it saw the signal) but not yield a duplicate.
    #expect(await eventually { fake.systemd.gets.withLock { $0["ActiveState", default: 0] } > readsBefore })
    fake.systemd.set("vault.service", dead)
    #expect(await eventually { collector.elements.count == 2 })
    #expect(collector.elements == [snapshot(running), snapshot(dead)])
  }

  @Test
  func nonServiceUnitsHaveNoMainPID() async throws {
    let socketUnit = FakeSystemd.UnitState(activeState: "active", subState: "listening", mainPID: 99)
    let fake = try FakeSystemdBus(units: ["vault.socket": socketUnit])
    defer { fake.close() }
    let collector = StreamCollector(try fake.watcher.watch(unit: "vault.socket"))
    defer { collector.cancel() }
    #expect(await eventually { collector.elements.count == 1 })
    #expect(collector.elements == [UnitSnapshot(activeState: "active", subState: "listening", mainPID: 0)])
    #expect(fake.systemd.gets.withLock { $0["MainPID"] } == nil)
  }

  /// `ExecStart` as systemd sends it (`a(sasbttttuii)`): every command, its path and whole argv,
  /// read past the fields we skip; a unit with none gives an empty list.
  @Test
  func readsTheExecStartCommandLines() throws {
    var openbao = running
    openbao.execStart = [
      .init(path: "/usr/bin/env", argv: ["/usr/bin/env", "BAO_LOG=warn", "/usr/bin/bao", "server"]),
      .init(path: "/usr/bin/bao", argv: ["bao", "server", "-config=/etc/openbao/openbao.hcl"]),
      .init(path: "/bin/true", argv: []),
    ]
    let fake = try FakeSystemdBus(units: ["openbao.service": openbao, "vault.service": running])
    defer { fake.close() }
    #expect(try fake.watcher.commandLines(unit: "openbao.service") == [
      UnitCommandLine(path: "/usr/bin/env", arguments: ["/usr/bin/env", "BAO_LOG=warn", "/usr/bin/bao", "server"]),
      UnitCommandLine(path: "/usr/bin/bao", arguments: ["bao", "server", "-config=/etc/openbao/openbao.hcl"]),
      UnitCommandLine(path: "/bin/true", arguments: []),
    ])
    #expect(try fake.watcher.commandLines(unit: "vault.service") == [])
    #expect(reason { _ = try fake.watcher.commandLines(unit: "nomad.service") } == "LoadUnit(nomad.service) failed: org.freedesktop.systemd1.NoSuchUnit: Unit nomad.service not found.")
  }

  @Test
  func mainPIDAsksOnce() throws {
    let fake = try FakeSystemdBus()
    defer { fake.close() }
    #expect(try fake.watcher.mainPID(unit: "vault.service") == 4242)
    fake.systemd.set("vault.service", dead)
    #expect(try fake.watcher.mainPID(unit: "vault.service") == 0)
  }

  @Test
  func unknownUnitAndMissingSystemdAreReadableReasons() throws {
    let fake = try FakeSystemdBus()
    defer { fake.close() }
    #expect(
      reason { _ = try fake.watcher.watch(unit: "nope.service") }
        == "LoadUnit(nope.service) failed: org.freedesktop.systemd1.NoSuchUnit: Unit nope.service not found.")

    fake.systemd.shutdown()  // the bus stays, systemd leaves it
    let missing = reason { _ = try fake.watcher.watch(unit: "vault.service") }
    #expect(missing?.hasPrefix("LoadUnit(vault.service) failed: org.freedesktop.DBus.Error.ServiceUnknown") == true)
  }

  @Test
  func terminatingTheStreamClosesTheConnection() async throws {
    let fake = try FakeSystemdBus()
    defer { fake.close() }
    let collector = StreamCollector(try fake.watcher.watch(unit: "vault.service"))
    #expect(await eventually { collector.elements.count == 1 })
    let watcherName = try #require(fake.systemd.subscribers.withLock { $0.first })
    #expect(try fake.bus.nameHasOwner(watcherName))

    collector.cancel()
    #expect(await eventually { collector.isFinished })
    #expect(await eventually { (try? fake.bus.nameHasOwner(watcherName)) == false })
  }

  @Test
  func losingTheBusFinishesTheStream() async throws {
    let fake = try FakeSystemdBus()
    let collector = StreamCollector(try fake.watcher.watch(unit: "vault.service"))
    defer { collector.cancel() }
    #expect(await eventually { collector.elements.count == 1 })
    #expect(!collector.isFinished)
    fake.bus.terminate()
    #expect(await eventually { collector.isFinished })
    fake.systemd.shutdown()
  }
}

extension ProcessEnvironmentTests {
  /// `sd_bus_open_system` reads `$DBUS_SYSTEM_BUS_ADDRESS` itself.
  @Suite struct SystemBusAddressTests {
    @Test func missingSystemBusFromEnvironment() {
      let watcher = BusUnitWatcher()
      let message = withEnvironment(["DBUS_SYSTEM_BUS_ADDRESS": "unix:path=/nonexistent"]) {
        reason { _ = try watcher.watch(unit: "vault.service") }
      }
      #expect(message == "no system bus at /nonexistent: No such file or directory")
    }

    @Test
    func systemBusAddressFromEnvironmentIsUsed() async throws {
      let fake = try FakeSystemdBus()
      defer { fake.close() }
      let stream = try withEnvironment(["DBUS_SYSTEM_BUS_ADDRESS": fake.bus.address]) {
        try BusUnitWatcher(pollInterval: .milliseconds(50)).watch(unit: "vault.service")
      }
      let collector = StreamCollector(stream)
      defer { collector.cancel() }
      #expect(await eventually { collector.elements.count == 1 })
      #expect(collector.elements == [snapshot(running)])
      let pid = try withEnvironment(["DBUS_SYSTEM_BUS_ADDRESS": fake.bus.address]) {
        try BusUnitWatcher().mainPID(unit: "vault.service")
      }
      #expect(pid == 4242)
    }
  }
}
