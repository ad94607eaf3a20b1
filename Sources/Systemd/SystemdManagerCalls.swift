// SPDX-License-Identifier: Apache-2.0
import VaultKeeper

/// The handful of `org.freedesktop.systemd1` calls the adapter makes (org.freedesktop.systemd1(5)).
///
/// All of them are allowed to unprivileged callers without polkit, so they work under the
/// hardened unit's `User=vaultkeeper`.
extension BusConnection {
  static let systemdDestination = "org.freedesktop.systemd1"
  static let managerPath = "/org/freedesktop/systemd1"
  static let managerInterface = "org.freedesktop.systemd1.Manager"
  static let unitInterface = "org.freedesktop.systemd1.Unit"
  static let serviceInterface = "org.freedesktop.systemd1.Service"
  static let propertiesInterface = "org.freedesktop.DBus.Properties"

  /// `Manager.LoadUnit(s) → o`: the unit's object path.
  ///
  /// `LoadUnit` rather than `GetUnit`, because `GetUnit` fails with `NoSuchUnit` for a unit
  /// systemd has not loaded yet (an inactive vault.service after boot may be unloaded), while
  /// `LoadUnit` loads it and always returns a path we can watch.
  func loadUnit(_ unit: String, timeout: Duration) throws(BusError) -> String {
    let context = "LoadUnit(\(unit)) failed"
    let reply = try call(
      destination: Self.systemdDestination, path: Self.managerPath, interface: Self.managerInterface,
      member: "LoadUnit", arguments: [unit], timeout: timeout, context: context)
    return try reply.readObjectPath(context: context)
  }

  /// `Manager.Subscribe()`: without a subscriber systemd does not emit `PropertiesChanged`
  /// for units. systemd drops the subscription by itself when our connection goes away.
  func subscribe(timeout: Duration) throws(BusError) {
    _ = try call(
      destination: Self.systemdDestination, path: Self.managerPath, interface: Self.managerInterface,
      member: "Subscribe", arguments: [], timeout: timeout, context: "Subscribe failed")
  }

  /// Reads `ActiveState`, `SubState` and (for services) `MainPID` of the unit at `path`.
  ///
  /// Three `Properties.Get` calls rather than one `GetAll`, which would transfer the unit's
  /// ~250 properties on every change. `MainPID` exists only on the `Service` interface; other
  /// unit types report 0.
  func unitSnapshot(unit: String, path: String, timeout: Duration) throws(BusError) -> UnitSnapshot {
    let active = try property(path: path, interface: Self.unitInterface, name: "ActiveState", unit: unit, timeout: timeout)
      .readVariantString(context: "reading ActiveState of \(unit) failed")
    let sub = try property(path: path, interface: Self.unitInterface, name: "SubState", unit: unit, timeout: timeout)
      .readVariantString(context: "reading SubState of \(unit) failed")
    let pid = unit.hasSuffix(".service") ? try mainPID(unit: unit, path: path, timeout: timeout) : 0
    return UnitSnapshot(activeState: active, subState: sub, mainPID: pid)
  }

  /// `Service.MainPID` (type `u`), 0 when the service has no running main process.
  func mainPID(unit: String, path: String, timeout: Duration) throws(BusError) -> Int {
    let pid = try property(path: path, interface: Self.serviceInterface, name: "MainPID", unit: unit, timeout: timeout)
      .readVariantUInt32(context: "reading MainPID of \(unit) failed")
    return Int(pid)
  }

  /// `Service.ExecStart` (type `a(sasbttttuii)`): the unit's start commands; empty for a unit
  /// that has none, or that systemd could not find (a not-found unit still has an object).
  func execStart(unit: String, path: String, timeout: Duration) throws(BusError) -> [UnitCommandLine] {
    try property(path: path, interface: Self.serviceInterface, name: "ExecStart", unit: unit, timeout: timeout)
      .readVariantCommandLines(context: "reading ExecStart of \(unit) failed")
  }

  private func property(
    path: String, interface: String, name: String, unit: String, timeout: Duration
  ) throws(BusError) -> BusMessage {
    try call(
      destination: Self.systemdDestination, path: path, interface: Self.propertiesInterface,
      member: "Get", arguments: [interface, name], timeout: timeout,
      context: "reading \(name) of \(unit) failed")
  }
}
