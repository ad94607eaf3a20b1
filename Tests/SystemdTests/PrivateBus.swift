// SPDX-License-Identifier: Apache-2.0
import Foundation
import Glibc

/// A throw-away `dbus-daemon` listening on a socket in a temp dir, standing in for the system
/// bus. Without `dbus-daemon` the tests that need one fail (they never skip): the D-Bus paths
/// are part of what `make test` vouches for.
final class PrivateBus {
  static let daemonPath = "/usr/bin/dbus-daemon"

  let directory: TemporaryDirectory
  let socketPath: String
  var address: String { "unix:path=\(socketPath)" }
  private let process = Process()

  init() throws {
    guard FileManager.default.isExecutableFile(atPath: Self.daemonPath) else {
      throw TestFailure(
        "\(Self.daemonPath) is missing: the D-Bus tests need a real dbus-daemon (apt-get install dbus; scripts/install-deps.sh installs it)")
    }
    directory = try TemporaryDirectory()
    socketPath = directory.path + "/bus"
    // Everyone may own and call anything: the real system bus policy is not what is under test.
    let config = """
      <!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
       "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
      <busconfig>
        <type>vaultkeeper-test</type>
        <listen>unix:path=\(socketPath)</listen>
        <auth>EXTERNAL</auth>
        <policy context="default">
          <allow user="*"/>
          <allow own="*"/>
          <allow send_type="method_call"/>
          <allow send_type="signal"/>
          <allow send_type="method_return"/>
          <allow send_type="error"/>
          <allow receive_type="method_call"/>
          <allow receive_type="signal"/>
          <allow receive_type="method_return"/>
          <allow receive_type="error"/>
        </policy>
      </busconfig>
      """
    let configPath = directory.path + "/bus.conf"
    try config.write(toFile: configPath, atomically: true, encoding: .utf8)
    process.executableURL = URL(fileURLWithPath: Self.daemonPath)
    process.arguments = ["--config-file=\(configPath)", "--nofork", "--nopidfile", "--nosyslog"]
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try process.run()
    // A generous ceiling (a busy machine can take seconds to start a process). The socket file
    // appears at bind(2), a moment before listen(2): wait until a connection is actually
    // accepted, or an early client gets ECONNREFUSED.
    let deadline = ContinuousClock.now + .seconds(60)
    while !Self.accepts(socketPath) {
      guard ContinuousClock.now < deadline, process.isRunning else {
        terminate()
        throw TestFailure("dbus-daemon did not start (exited, or not listening within 60 s)")
      }
      usleep(5_000)
    }
  }

  private static func accepts(_ path: String) -> Bool {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
      for (i, b) in bytes.enumerated() { raw[i] = b }
    }
    return withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0 }
    }
  }

  deinit { terminate() }

  /// Stops the daemon, which drops every connection on it.
  ///
  /// SIGKILL, not `Process.terminate()`: children spawned from the test runner inherit a signal
  /// mask with SIGTERM blocked, so dbus-daemon would never see the SIGTERM.
  func terminate() {
    if process.isRunning {
      kill(process.processIdentifier, SIGKILL)
      process.waitUntilExit()
    }
    directory.remove()
  }

  /// Asks the bus whether `name` (e.g. a unique name `:1.4`) is still connected.
  func nameHasOwner(_ name: String) throws -> Bool {
    let busctl = Process()
    busctl.executableURL = URL(fileURLWithPath: "/usr/bin/busctl")
    busctl.arguments = [
      "--address=\(address)", "call", "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
      "NameHasOwner", "s", name,
    ]
    let output = Pipe()
    busctl.standardOutput = output
    try busctl.run()
    let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    busctl.waitUntilExit()
    switch text.trimmingCharacters(in: .whitespacesAndNewlines) {
    case "b true": return true
    case "b false": return false
    default: throw TestFailure("unexpected busctl answer: \(text)")
    }
  }
}
