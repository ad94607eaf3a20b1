// SPDX-License-Identifier: Apache-2.0
import Foundation
import Glibc
import Logging
import Testing

@testable import Systemd

// libsystemd sends native journal entries to the fixed path /run/systemd/journal/socket; no
// environment variable redirects it. To test real `sd_journal_sendv` delivery without touching
// the host's /run, the parent test re-runs this test binary inside a private mount namespace
// (`unshare --mount`) with a tmpfs over /run, where the child binds its own socket at that
// path. The child only captures what arrives; every assertion is made here in the parent.

private let childOutputVariable = "VAULTKEEPER_NATIVE_JOURNAL_CHILD_OUTPUT"

/// Whether this machine lets us create a private mount namespace (root or CAP_SYS_ADMIN, and
/// `unshare` installed). Without it the delivery test fails with the reason (it never skips):
/// `make test` runs as root, as its end-to-end layer needs anyway.
private let mountNamespacesAvailable: Bool = {
  guard geteuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare") else { return false }
  let probe = Process()
  probe.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
  probe.arguments = ["--mount", "--propagation", "private", "--", "/bin/sh", "-c", "mount -t tmpfs tmpfs /run"]
  probe.standardError = FileHandle.nullDevice
  do { try probe.run() } catch { return false }
  probe.waitUntilExit()
  return probe.terminationStatus == 0
}()

/// Parses one native-protocol datagram (docs/JOURNAL_NATIVE_PROTOCOL.md): `NAME=value\n`, or
/// for values containing a newline `NAME\n` + 64-bit little-endian length + bytes + `\n`.
func parseNativeDatagram(_ bytes: [UInt8]) throws -> [(name: String, value: String)] {
  var fields: [(name: String, value: String)] = []
  var index = 0
  while index < bytes.count {
    guard let lineEnd = bytes[index...].firstIndex(of: UInt8(ascii: "\n")) else {
      throw TestFailure("unterminated field at byte \(index)")
    }
    let line = bytes[index..<lineEnd]
    if let equals = line.firstIndex(of: UInt8(ascii: "=")) {
      fields.append((String(decoding: line[..<equals], as: UTF8.self), String(decoding: line[(equals + 1)...], as: UTF8.self)))
      index = lineEnd + 1
    } else {
      let name = String(decoding: line, as: UTF8.self)
      let lengthStart = lineEnd + 1
      guard lengthStart + 8 <= bytes.count else { throw TestFailure("truncated length of \(name)") }
      var length = 0
      for offset in 0..<8 { length |= Int(bytes[lengthStart + offset]) << (8 * offset) }
      let valueStart = lengthStart + 8
      guard valueStart + length < bytes.count, bytes[valueStart + length] == UInt8(ascii: "\n") else {
        throw TestFailure("bad binary value of \(name)")
      }
      fields.append((name, String(decoding: bytes[valueStart..<(valueStart + length)], as: UTF8.self)))
      index = valueStart + length + 1
    }
  }
  return fields
}

@Suite struct NativeJournalTests {
  @Test func parserUnderstandsBothEncodings() throws {
    var datagram = Array("PRIORITY=6\nMESSAGE\n".utf8)
    let value = Array("a\nb".utf8)
    for shift in 0..<8 { datagram.append(UInt8((value.count >> (8 * shift)) & 0xff)) }
    datagram += value + [UInt8(ascii: "\n")]
    let fields = try parseNativeDatagram(datagram)
    #expect(fields.map(\.name) == ["PRIORITY", "MESSAGE"])
    #expect(fields.map(\.value) == ["6", "a\nb"])
  }

  @Test func sdJournalSendvDeliversStructuredEntries() throws {
    try #require(
      mountNamespacesAvailable,
      "needs root and unshare(1) (util-linux) for a private /run: run the Swift tests as root, as `make test` does")
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    let outputPath = directory.path + "/captured"
    let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")

    let child = Process()
    child.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
    child.arguments = [
      "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
      """
      mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/journal && export \(childOutputVariable)="$1" \
        && exec "$0" --testing-library swift-testing --filter NativeJournalChild
      """,
      executable, outputPath,
    ]
    let log = Pipe()
    child.standardOutput = log
    child.standardError = log
    try child.run()
    let childLog = String(decoding: log.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    child.waitUntilExit()
    try #require(child.terminationStatus == 0, "child failed:\n\(childLog)")

    let captured = try Data(contentsOf: URL(fileURLWithPath: outputPath + ".native"))
    let fields = try parseNativeDatagram(Array(captured))
    func values(_ name: String) -> [String] { fields.filter { $0.name == name }.map(\.value) }
    #expect(values("MESSAGE") == ["Unseal failed\nsecond line"])
    #expect(values("PRIORITY") == ["3"])
    #expect(values("SYSLOG_IDENTIFIER") == ["vk-test"])
    #expect(values("LOGGER") == ["vaultkeeper.unseal"])
    #expect(values("CODE_FILE").first?.hasSuffix("NativeJournalTests.swift") == true)
    #expect(values("CODE_FUNC") == ["sendsIntoPrivateJournalSocket()"])
    #expect(values("CODE_LINE").first.flatMap { Int($0) } != nil)
    #expect(values("DUTY_NAME") == ["unseal"])
    #expect(values("MESSAGE_ID") == ["8d45620c1a4348ce8ed3b6a1e1f3b8f4"])
    #expect(values("VAULT_NODE_ID") == ["n1"])
    #expect(fields.allSatisfy { journalFieldName($0.name) == $0.name })

    // With a stream socket at the path, sendmsg fails (EPROTOTYPE), so the entry must show up
    // on "stderr" in the fallback format instead of being lost.
    let fallback = try String(contentsOfFile: outputPath + ".fallback", encoding: .utf8)
    #expect(fallback == "<4>journal refused node=n1\n")
  }
}

/// Runs only inside the private namespace set up by `sdJournalSendvDeliversStructuredEntries`:
/// the child half of that test, not a test of its own, so outside the child it is not run (this
/// condition is not a skip of anything the parent run should check).
@Suite(.enabled(if: ProcessInfo.processInfo.environment[childOutputVariable] != nil))
struct NativeJournalChild {
  @Test func sendsIntoPrivateJournalSocket() throws {
    let outputPath = try #require(ProcessInfo.processInfo.environment[childOutputVariable])
    let socket = try DatagramSocket(address: JournalSink.journalSocketPath)
    let pipe = try TestPipe()
    defer { pipe.close() }
    let output = JournalOutput(sink: .native, syslogIdentifier: "vk-test", fallback: .prefixedStderr, fileDescriptor: pipe.writeEnd)
    var logger = Logger(label: "vaultkeeper.unseal") { JournalLogHandler(label: $0, output: output) }
    logger[metadataKey: "duty.name"] = "unseal"
    logger.error(
      "Unseal failed\nsecond line",
      metadata: ["message_id": "8D45620C-1A43-48CE-8ED3-B6A1E1F3B8F4", "vault": ["node": ["id": "n1"]]])
    let datagram = try #require(socket.receive())
    try Data(datagram).write(to: URL(fileURLWithPath: outputPath + ".native"))
    #expect(output.failureCount == 0)

    // Replace the datagram socket with a stream socket: sd_journal_sendv now fails.
    unlink(JournalSink.journalSocketPath)
    let stream = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
      for (index, byte) in JournalSink.journalSocketPath.utf8.enumerated() { raw[index] = byte }
    }
    let bound = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(stream, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    try #require(bound == 0)
    defer { close(stream) }
    let plain = Logger(label: "vaultkeeper") { JournalLogHandler(label: $0, output: output) }
    plain.warning("journal refused", metadata: ["node": "n1"])
    try pipe.drain().write(toFile: outputPath + ".fallback", atomically: true, encoding: .utf8)
    #expect(output.failureCount == 1)
  }
}
