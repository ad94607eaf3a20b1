// SPDX-License-Identifier: Apache-2.0
import CSystemd
import Foundation
import Glibc
import Synchronization

/// A minimal `org.freedesktop.systemd1` on a private bus, written with sd-bus itself: enough of
/// `Manager.LoadUnit`, `Manager.Subscribe` and `Properties.Get` for `BusUnitWatcher`, and
/// `PropertiesChanged` signals on demand; `Manager.ReloadUnit` with its `JobRemoved` for the
/// reloader.
///
/// The connection is set up in `init` and afterwards used only by the fake's own thread; other
/// threads talk to it through the mutex-protected state and command queue. That is what makes
/// the `@unchecked Sendable` sound.
final class FakeSystemd: @unchecked Sendable {
  struct UnitState: Sendable, Equatable {
    var activeState: String
    var subState: String
    var mainPID: UInt32
    /// `Service.ExecStart`: each command's path and argv.
    var execStart: [Command] = []
  }

  struct Command: Sendable, Equatable {
    var path: String
    var argv: [String]
  }

  static let unitPrefix = "/org/freedesktop/systemd1/unit"

  private let bus: OpaquePointer
  private let units: Mutex<[String: UnitState]>
  private let pendingSignals = Mutex<[String]>([])
  /// Results for the last `ReloadUnit` job, to be announced by the fake's thread (`endLastJob`).
  private let pendingJobEnds = Mutex<[String]>([])
  private let stopRequested = Atomic<Bool>(false)
  private let stopped = Atomic<Bool>(false)
  /// Unique bus names of the clients that called `Subscribe`.
  let subscribers = Mutex<[String]>([])
  /// Number of `Properties.Get` calls answered, per property name.
  let gets = Mutex<[String: Int]>([:])

  /// What `ReloadUnit` does.
  enum ReloadBehaviour: Sendable {
    /// Queues a job and ends it with this result (`done`, `failed`, `timeout`, …). Before the
    /// reply, another job's `JobRemoved` goes out, so a reloader that does not match the job
    /// path takes the wrong result.
    case finish(String)
    /// Queues a job that never ends.
    case never
    /// Refuses, as systemd does when polkit says no.
    case deny
  }
  let reloadBehaviour = Mutex<ReloadBehaviour>(.finish("done"))
  /// Manager calls in the order received: `Subscribe`, `ReloadUnit vault.service replace`, …
  let managerCalls = Mutex<[String]>([])
  /// The job path of the last `ReloadUnit`.
  let lastJob = Mutex<String?>(nil)
  private let jobCounter = Atomic<UInt32>(100)

  init(address: String, units: [String: UnitState]) throws {
    self.units = Mutex(units)
    var raw: OpaquePointer? = nil
    guard sd_bus_new(&raw) >= 0, let raw else { throw TestFailure("sd_bus_new failed") }
    bus = raw
    var result = address.withCString { sd_bus_set_address(raw, $0) }
    if result >= 0 { result = sd_bus_set_bus_client(raw, 1) }
    if result >= 0 { result = sd_bus_start(raw) }
    if result >= 0 { result = sd_bus_request_name(raw, "org.freedesktop.systemd1", 0) }
    let context = Unmanaged.passUnretained(self).toOpaque()
    if result >= 0 {
      result = sd_bus_add_object(
        raw, nil, "/org/freedesktop/systemd1",
        { message, userdata, _ in
          guard let message, let userdata else { return 0 }
          return Unmanaged<FakeSystemd>.fromOpaque(userdata).takeUnretainedValue().handle(message)
        }, context)
    }
    if result >= 0 {
      result = sd_bus_add_fallback(
        raw, nil, Self.unitPrefix,
        { message, userdata, _ in
          guard let message, let userdata else { return 0 }
          return Unmanaged<FakeSystemd>.fromOpaque(userdata).takeUnretainedValue().handle(message)
        }, context)
    }
    guard result >= 0 else {
      sd_bus_flush_close_unref(raw)
      throw TestFailure("fake systemd setup failed: \(result)")
    }
    let thread = Thread { [self] in self.loop() }
    thread.start()
  }

  /// Stops the fake's thread and leaves the bus.
  func shutdown() {
    stopRequested.store(true, ordering: .releasing)
    // A generous ceiling: the thread notices within one 20 ms wait unless the machine is busy.
    let deadline = ContinuousClock.now + .seconds(60)
    while !stopped.load(ordering: .acquiring), ContinuousClock.now < deadline { usleep(1_000) }
  }

  /// Changes a unit and, like systemd, announces it with `PropertiesChanged`.
  func set(_ unit: String, _ state: UnitState) {
    units.withLock { $0[unit] = state }
    pendingSignals.withLock { $0.append(unit) }
  }

  /// Ends the job of the last `ReloadUnit` (one queued with `.never`) with `result`, as systemd
  /// does with `JobRemoved`.
  func endLastJob(_ result: String) {
    pendingJobEnds.withLock { $0.append(result) }
  }

  /// Sends `PropertiesChanged` without changing anything (systemd does this too, e.g. for
  /// timestamps).
  func announceWithoutChange(_ unit: String) {
    pendingSignals.withLock { $0.append(unit) }
  }

  private func loop() {
    while !stopRequested.load(ordering: .acquiring) {
      let processed = sd_bus_process(bus, nil)
      if processed < 0 { break }
      if processed > 0 { continue }
      let signals = pendingSignals.withLock { pending in
        defer { pending.removeAll() }
        return pending
      }
      for unit in signals { emitPropertiesChanged(unit) }
      let jobEnds = pendingJobEnds.withLock { pending in
        defer { pending.removeAll() }
        return pending
      }
      for result in jobEnds {
        guard let job = lastJob.withLock({ $0 }), let id = UInt32(job.split(separator: "/").last ?? "") else { continue }
        emitJobRemoved(id: id, job: job, unit: "vault.service", result: result)
      }
      if signals.isEmpty && jobEnds.isEmpty { _ = sd_bus_wait(bus, 20_000) }
    }
    sd_bus_flush_close_unref(bus)
    stopped.store(true, ordering: .releasing)
  }

  // MARK: - Method handling (fake's thread)

  private func handle(_ message: OpaquePointer) -> Int32 {
    let member = sd_bus_message_get_member(message).map { String(cString: $0) } ?? ""
    let interface = sd_bus_message_get_interface(message).map { String(cString: $0) } ?? ""
    let path = sd_bus_message_get_path(message).map { String(cString: $0) } ?? ""
    switch (interface, member) {
    case ("org.freedesktop.systemd1.Manager", "LoadUnit"):
      let name = readString(message)
      guard units.withLock({ $0[name] }) != nil else {
        return replyError(message, "org.freedesktop.systemd1.NoSuchUnit", "Unit \(name) not found.")
      }
      var encoded: UnsafeMutablePointer<CChar>? = nil
      guard sd_bus_path_encode(Self.unitPrefix, name, &encoded) >= 0, let encoded else { return -ENOMEM }
      defer { free(encoded) }
      return reply(message) { sd_bus_message_append_basic($0, csystemd_bus_type_object_path(), encoded) }
    case ("org.freedesktop.systemd1.Manager", "ReloadUnit"):
      return reloadUnit(message)
    case ("org.freedesktop.systemd1.Manager", "Subscribe"):
      managerCalls.withLock { $0.append("Subscribe") }
      if let sender = sd_bus_message_get_sender(message) {
        let name = String(cString: sender)
        subscribers.withLock { $0.append(name) }
      }
      return reply(message) { _ in 0 }
    case ("org.freedesktop.DBus.Properties", "Get") where path.hasPrefix(Self.unitPrefix + "/"):
      let interfaceName = readString(message)
      let property = readString(message)
      var decoded: UnsafeMutablePointer<CChar>? = nil
      guard sd_bus_path_decode(path, Self.unitPrefix, &decoded) > 0, let decoded else { return -EINVAL }
      let unit = String(cString: decoded)
      free(decoded)
      gets.withLock { $0[property, default: 0] += 1 }
      guard let state = units.withLock({ $0[unit] }) else {
        return replyError(message, "org.freedesktop.DBus.Error.UnknownObject", "Unknown object '\(path)'.")
      }
      switch (interfaceName, property) {
      case ("org.freedesktop.systemd1.Unit", "ActiveState"):
        return reply(message) { Self.appendStringVariant($0, state.activeState) }
      case ("org.freedesktop.systemd1.Unit", "SubState"):
        return reply(message) { Self.appendStringVariant($0, state.subState) }
      case ("org.freedesktop.systemd1.Service", "MainPID") where unit.hasSuffix(".service"):
        return reply(message) { reply in
          var pid = state.mainPID
          guard sd_bus_message_open_container(reply, csystemd_bus_type_variant(), "u") >= 0,
            sd_bus_message_append_basic(reply, csystemd_bus_type_uint32(), &pid) >= 0
          else { return -EINVAL }
          return sd_bus_message_close_container(reply)
        }
      case ("org.freedesktop.systemd1.Service", "ExecStart") where unit.hasSuffix(".service"):
        return reply(message) { Self.appendExecStart($0, state.execStart) }
      default:
        return replyError(message, "org.freedesktop.DBus.Error.UnknownProperty", "Unknown property \(property).")
      }
    default:
      return 0  // not handled: sd-bus answers UnknownMethod
    }
  }

  private func reloadUnit(_ message: OpaquePointer) -> Int32 {
    let name = readString(message)
    let mode = readString(message)
    managerCalls.withLock { $0.append("ReloadUnit \(name) \(mode)") }
    guard units.withLock({ $0[name] }) != nil else {
      return replyError(message, "org.freedesktop.systemd1.NoSuchUnit", "Unit \(name) not found.")
    }
    let behaviour = reloadBehaviour.withLock { $0 }
    if case .deny = behaviour {
      return replyError(message, "org.freedesktop.DBus.Error.AccessDenied", "Access denied")
    }
    let id = jobCounter.add(2, ordering: .relaxed).newValue
    let job = "/org/freedesktop/systemd1/job/\(id)"
    lastJob.withLock { $0 = job }
    guard case .finish(let result) = behaviour else {
      return reply(message) { reply in job.withCString { sd_bus_message_append_basic(reply, csystemd_bus_type_object_path(), $0) } }
    }
    emitJobRemoved(id: id - 1, job: "/org/freedesktop/systemd1/job/\(id - 1)", unit: name, result: "canceled")
    let replied = reply(message) { reply in job.withCString { sd_bus_message_append_basic(reply, csystemd_bus_type_object_path(), $0) } }
    emitJobRemoved(id: id, job: job, unit: name, result: result)
    return replied
  }

  /// `JobRemoved(u id, o job, s unit, s result)` from the manager object.
  private func emitJobRemoved(id: UInt32, job: String, unit: String, result: String) {
    var signal: OpaquePointer? = nil
    guard
      sd_bus_message_new_signal(bus, &signal, "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager", "JobRemoved") >= 0,
      let signal
    else { return }
    defer { sd_bus_message_unref(signal) }
    var id = id
    let ok =
      sd_bus_message_append_basic(signal, csystemd_bus_type_uint32(), &id) >= 0
      && job.withCString { sd_bus_message_append_basic(signal, csystemd_bus_type_object_path(), $0) } >= 0
      && unit.withCString { sd_bus_message_append_basic(signal, csystemd_bus_type_string(), $0) } >= 0
      && result.withCString { sd_bus_message_append_basic(signal, csystemd_bus_type_string(), $0) } >= 0
    if ok { _ = sd_bus_send(bus, signal, nil) }
  }

  private func readString(_ message: OpaquePointer) -> String {
    var value: UnsafePointer<CChar>? = nil
    guard sd_bus_message_read_basic(message, csystemd_bus_type_string(), &value) > 0, let value else { return "" }
    return String(cString: value)
  }

  private func reply(_ call: OpaquePointer, _ fill: (OpaquePointer) -> Int32) -> Int32 {
    var reply: OpaquePointer? = nil
    guard sd_bus_message_new_method_return(call, &reply) >= 0, let reply else { return -ENOMEM }
    defer { sd_bus_message_unref(reply) }
    guard fill(reply) >= 0 else { return -EINVAL }
    let sent = sd_bus_send(sd_bus_message_get_bus(call), reply, nil)
    return sent < 0 ? sent : 1
  }

  private func replyError(_ call: OpaquePointer, _ name: String, _ text: String) -> Int32 {
    var error = csystemd_bus_error_null()
    _ = sd_bus_error_set(&error, name, text)
    defer { sd_bus_error_free(&error) }
    let sent = sd_bus_reply_method_error(call, &error)
    return sent < 0 ? sent : 1
  }

  private static func appendStringVariant(_ message: OpaquePointer, _ value: String) -> Int32 {
    guard sd_bus_message_open_container(message, csystemd_bus_type_variant(), "s") >= 0,
      value.withCString({ sd_bus_message_append_basic(message, csystemd_bus_type_string(), $0) }) >= 0
    else { return -EINVAL }
    return sd_bus_message_close_container(message)
  }

  /// A variant of `a(sasbttttuii)` as systemd writes `ExecStart`: path, argv, ignore-failure,
  /// start and exit timestamps (realtime, monotonic), PID, exit code and status of the last run.
  private static func appendExecStart(_ message: OpaquePointer, _ commands: [Command]) -> Int32 {
    guard sd_bus_message_open_container(message, csystemd_bus_type_variant(), "a(sasbttttuii)") >= 0,
      sd_bus_message_open_container(message, csystemd_bus_type_array(), "(sasbttttuii)") >= 0
    else { return -EINVAL }
    for command in commands {
      var ignoreFailure: Int32 = 0
      var timestamp: UInt64 = 1_700_000_000_000_000
      var pid: UInt32 = 4242
      var code: Int32 = 0
      guard sd_bus_message_open_container(message, csystemd_bus_type_struct(), "sasbttttuii") >= 0,
        command.path.withCString({ sd_bus_message_append_basic(message, csystemd_bus_type_string(), $0) }) >= 0,
        sd_bus_message_open_container(message, csystemd_bus_type_array(), "s") >= 0
      else { return -EINVAL }
      for argument in command.argv {
        guard argument.withCString({ sd_bus_message_append_basic(message, csystemd_bus_type_string(), $0) }) >= 0 else { return -EINVAL }
      }
      guard sd_bus_message_close_container(message) >= 0,
        sd_bus_message_append_basic(message, CChar(UInt8(ascii: "b")), &ignoreFailure) >= 0
      else { return -EINVAL }
      for _ in 0..<4 {
        guard sd_bus_message_append_basic(message, CChar(UInt8(ascii: "t")), &timestamp) >= 0 else { return -EINVAL }
      }
      guard sd_bus_message_append_basic(message, csystemd_bus_type_uint32(), &pid) >= 0,
        sd_bus_message_append_basic(message, CChar(UInt8(ascii: "i")), &code) >= 0,
        sd_bus_message_append_basic(message, CChar(UInt8(ascii: "i")), &code) >= 0,
        sd_bus_message_close_container(message) >= 0
      else { return -EINVAL }
    }
    guard sd_bus_message_close_container(message) >= 0 else { return -EINVAL }
    return sd_bus_message_close_container(message)
  }

  /// `PropertiesChanged("org.freedesktop.systemd1.Unit", {ActiveState: …}, [])`, as systemd
  /// sends it for a unit object.
  private func emitPropertiesChanged(_ unit: String) {
    guard let state = units.withLock({ $0[unit] }) else { return }
    var encoded: UnsafeMutablePointer<CChar>? = nil
    guard sd_bus_path_encode(Self.unitPrefix, unit, &encoded) >= 0, let encoded else { return }
    defer { free(encoded) }
    var signal: OpaquePointer? = nil
    guard sd_bus_message_new_signal(bus, &signal, encoded, "org.freedesktop.DBus.Properties", "PropertiesChanged") >= 0,
      let signal
    else { return }
    defer { sd_bus_message_unref(signal) }
    let ok =
      sd_bus_message_append_basic(signal, csystemd_bus_type_string(), "org.freedesktop.systemd1.Unit") >= 0
      && sd_bus_message_open_container(signal, csystemd_bus_type_array(), "{sv}") >= 0
      && sd_bus_message_open_container(signal, csystemd_bus_type_dict_entry(), "sv") >= 0
      && sd_bus_message_append_basic(signal, csystemd_bus_type_string(), "ActiveState") >= 0
      && Self.appendStringVariant(signal, state.activeState) >= 0
      && sd_bus_message_close_container(signal) >= 0
      && sd_bus_message_close_container(signal) >= 0
      && sd_bus_message_open_container(signal, csystemd_bus_type_array(), "s") >= 0
      && sd_bus_message_close_container(signal) >= 0
    if ok { _ = sd_bus_send(bus, signal, nil) }
  }
}
