// SPDX-License-Identifier: Apache-2.0
import CSystemd
import Glibc
import VaultKeeper

/// One `Manager.ReloadUnit` request and the wait for its job to end, on one connection and one
/// thread (the caller's; `SystemdUnitReloader` runs it off the cooperative pool).
///
/// systemd answers `ReloadUnit` with the object path of a queued job at once; whether the
/// reload worked is only known when the job ends and the manager emits
/// `JobRemoved(u id, o job, s unit, s result)`. The match is added and `Subscribe` called
/// before the request, so a job that ends at once cannot slip past.
final class ReloadJobSession {
  struct JobRemoved: Equatable {
    var id: UInt32
    var job: String
    var unit: String
    var result: String
    var sender: String?
  }

  private let bus: BusConnection
  private var slot: OpaquePointer?
  /// Filled by the match callback during `bus.process()`.
  private(set) var removed: [JobRemoved] = []

  init(bus: BusConnection) { self.bus = bus }

  /// - Important: the callback gets `self` unretained; `slot` is released in `deinit` before
  ///   `self` goes away, so the pointer never dangles.
  deinit { sd_bus_slot_unref(slot) }

  /// Adds the `JobRemoved` match and subscribes.
  ///
  /// No sender in the match, as in `UnitWatchSession`; instead each signal's sender is compared
  /// with the sender of the `ReloadUnit` reply, which is systemd's unique name. So a signal
  /// forged by another client on the bus cannot end our wait.
  func listen(timeout: Duration) throws(BusError) {
    let context = Unmanaged.passUnretained(self).toOpaque()
    let result = sd_bus_match_signal(
      bus.raw, &slot, nil, BusConnection.managerPath, BusConnection.managerInterface, "JobRemoved",
      { message, userdata, _ in
        guard let message, let userdata else { return 0 }
        Unmanaged<ReloadJobSession>.fromOpaque(userdata).takeUnretainedValue().record(message)
        return 0
      }, context)
    if result < 0 { throw BusError(returnValue: result, context: "watching for JobRemoved failed") }
    try bus.subscribe(timeout: timeout)
  }

  /// `Manager.ReloadUnit(s name, s mode) → o job` with mode `replace`: a reload job already
  /// queued for the unit is replaced, so a second renewal is not lost behind a first.
  ///
  /// - Returns: the job path and the unique name of the systemd that answered.
  func requestReload(unit: String, timeout: Duration) throws(BusError) -> (job: String, systemd: String?) {
    let context = "ReloadUnit(\(unit)) failed"
    let reply = try bus.call(
      destination: BusConnection.systemdDestination, path: BusConnection.managerPath,
      interface: BusConnection.managerInterface, member: "ReloadUnit", arguments: [unit, "replace"],
      timeout: timeout, context: context)
    return (try reply.readObjectPath(context: context), reply.sender)
  }

  /// Processes the bus until `JobRemoved` for `job` arrives from `systemd`, or `deadline`.
  ///
  /// - Returns: the job's result (`done`, `failed`, `timeout`, `canceled`, …), or nil at the
  ///   deadline.
  /// - Throws: when the connection is lost.
  func waitForJob(_ job: String, from systemd: String?, until deadline: ContinuousClock.Instant) throws(BusError) -> String? {
    let clock = ContinuousClock()
    while true {
      if let match = removed.first(where: { $0.job == job && (systemd == nil || $0.sender == systemd) }) {
        return match.result
      }
      let processed = bus.process()
      if processed < 0 || !bus.isOpen {
        throw BusError(returnValue: processed < 0 ? processed : -ECONNRESET, context: "waiting for \(job) failed")
      }
      if processed > 0 { continue }
      let left = deadline - clock.now
      if left <= .zero { return nil }
      let waited = bus.wait(timeout: left)
      if waited < 0, waited != -EINTR {
        throw BusError(returnValue: waited, context: "waiting for \(job) failed")
      }
    }
  }

  private func record(_ raw: OpaquePointer) {
    let message = BusMessage(borrowing: raw)
    let context = "malformed JobRemoved"
    do {
      let id = try message.readUInt32(context: context)
      let job = try message.readObjectPath(context: context)
      let unit = try message.readString(context: context)
      let result = try message.readString(context: context)
      removed.append(JobRemoved(id: id, job: job, unit: unit, result: result, sender: message.sender))
    } catch {
      // Not the signature systemd sends: not from systemd, ignored.
    }
  }
}

@available(*, unavailable) extension ReloadJobSession: Sendable {}
