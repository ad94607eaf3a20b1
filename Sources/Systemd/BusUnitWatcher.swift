// SPDX-License-Identifier: Apache-2.0
import Platform
import VaultKeeper

/// Follows a systemd unit over the system bus (sd-bus), and answers one-off questions about it.
///
/// Each `watch` opens its own connection and runs its own thread: the watch is long-lived and
/// blocking, and sd-bus connections must not be shared between threads. `$DBUS_SYSTEM_BUS_ADDRESS`
/// is honoured (by `sd_bus_open_system`), so tests and containers can point it elsewhere.
public struct BusUnitWatcher: UnitWatcher {
  /// Explicit bus address (`unix:path=…`), or nil for the system bus.
  public var address: String?
  /// How long each D-Bus call may take. systemd answers these in microseconds when healthy; the
  /// bound matters when PID 1 is busy (e.g. during a large transaction) or hung.
  public var callTimeout: Duration
  /// How often the watch thread checks whether its stream was terminated while the bus is quiet.
  public var pollInterval: Duration

  /// - Parameters:
  ///   - address: a D-Bus address to use instead of the system bus; nil in production.
  ///   - callTimeout: upper bound for each call (default 5 s).
  ///   - pollInterval: the longest the watch thread sleeps before re-checking for termination
  ///     (default 250 ms).
  public init(address: String? = nil, callTimeout: Duration = .seconds(5), pollInterval: Duration = .milliseconds(250)) {
    self.address = address
    self.callTimeout = callTimeout
    self.pollInterval = pollInterval
  }

  /// Yields the unit's current `ActiveState`/`SubState`/`MainPID` at once, then each change.
  ///
  /// The setup (connect, `LoadUnit`, `Subscribe`, first read) runs on the calling thread so that
  /// failures can be thrown; it is bounded by `callTimeout` per call and takes well under a
  /// millisecond against a healthy systemd. Everything after that runs on a dedicated thread.
  /// Terminating the stream (cancelling the consuming task or dropping the stream) stops that
  /// thread within `pollInterval` and closes the connection. If the bus connection is lost,
  /// the stream finishes.
  ///
  /// - Parameter unit: the full unit name, e.g. `vault.service`.
  /// - Throws: `UnitWatchUnavailable` when there is no bus, systemd is not on it, or the unit
  ///   cannot be read; the reason reads like
  ///   `no system bus at /run/dbus/system_bus_socket: No such file or directory`.
  public func watch(unit: String) throws(UnitWatchUnavailable) -> AsyncStream<UnitSnapshot> {
    // Snapshots are small and change a few times per restart; the bound only matters if the
    // consumer stalls, and then the newest states are the ones worth keeping.
    let (stream, continuation) = AsyncStream.makeStream(of: UnitSnapshot.self, bufferingPolicy: .bufferingNewest(256))
    do throws(BusError) {
      let bus = try BusConnection.open(address: address)
      let path = try bus.loadUnit(unit, timeout: callTimeout)
      let control = WatchControl()
      let session = UnitWatchSession(
        bus: bus, unit: unit, path: path, callTimeout: callTimeout, pollInterval: pollInterval,
        continuation: continuation, control: control)
      try session.listen()
      continuation.onTermination = { _ in control.requestStop() }
      let started = NamedThread.start(name: "vk-unit-watch") { session.run() }
      if started != 0 {
        continuation.finish()
        throw BusError(returnValue: -started, context: "cannot start the unit watch thread")
      }
      return stream
    } catch {
      continuation.finish()
      throw UnitWatchUnavailable(reason: error.description)
    }
  }

  /// The unit's current main PID (`Service.MainPID`), 0 when it has no running main process.
  ///
  /// Opens a connection for this one question and closes it again; meant for rare checks such
  /// as "did Vault restart since we last looked", not for polling.
  ///
  /// - Parameter unit: a service unit name, e.g. `vault.service`.
  /// - Throws: `UnitWatchUnavailable` with the reason, as `watch` does.
  public func mainPID(unit: String) throws(UnitWatchUnavailable) -> Int {
    try ask(unit) { bus, path throws(BusError) in try bus.mainPID(unit: unit, path: path, timeout: callTimeout) }
  }

  /// The unit's `ExecStart` command lines, on a connection opened for this one question (a
  /// restore drill asks it to find the server binary). Blocking: call it off the cooperative pool.
  ///
  /// - Parameter unit: a service unit name, e.g. `openbao.service`.
  /// - Throws: `UnitWatchUnavailable` with the reason, as `watch` does.
  public func commandLines(unit: String) throws(UnitWatchUnavailable) -> [UnitCommandLine] {
    try ask(unit) { bus, path throws(BusError) in try bus.execStart(unit: unit, path: path, timeout: callTimeout) }
  }

  /// One question about `unit` on a connection of its own, closed again after the answer.
  private func ask<T>(_ unit: String, _ question: (BusConnection, String) throws(BusError) -> T) throws(UnitWatchUnavailable) -> T {
    do throws(BusError) {
      let bus = try BusConnection.open(address: address)
      defer { bus.close() }
      return try question(bus, try bus.loadUnit(unit, timeout: callTimeout))
    } catch {
      throw UnitWatchUnavailable(reason: error.description)
    }
  }
}
