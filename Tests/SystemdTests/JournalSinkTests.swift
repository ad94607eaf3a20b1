// SPDX-License-Identifier: Apache-2.0
import Glibc
import Testing

@testable import Systemd

/// Opens a temporary file to stand in for stderr; its real `fstat` identity is what a matching
/// `$JOURNAL_STREAM` must name.
private struct FakeStderr {
  let directory: TemporaryDirectory
  let fd: Int32
  let identity: JournalSink.FileIdentity

  init() throws {
    directory = try TemporaryDirectory()
    fd = open(directory.path + "/stderr", O_CREAT | O_WRONLY | O_CLOEXEC, 0o600)
    guard fd >= 0, let identity = JournalSink.FileIdentity(fileDescriptor: fd) else {
      throw TestFailure("cannot open fake stderr")
    }
    self.identity = identity
  }

  var journalStream: String { "\(identity.device):\(identity.inode)" }

  func remove() {
    close(fd)
    directory.remove()
  }
}

@Suite struct JournalSinkSelectionTests {
  @Test func fileIdentityComesFromFstat() throws {
    let stderr = try FakeStderr()
    defer { stderr.remove() }
    var info = stat()
    #expect(stat(stderr.directory.path + "/stderr", &info) == 0)
    #expect(stderr.identity == JournalSink.FileIdentity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino)))
    #expect(JournalSink.FileIdentity(fileDescriptor: -1) == nil)
  }

  @Test func parsesJournalStream() {
    #expect(JournalSink.FileIdentity(journalStream: "8:12345") == .init(device: 8, inode: 12345))
    #expect(JournalSink.FileIdentity(journalStream: "8:") == nil)
    #expect(JournalSink.FileIdentity(journalStream: "8") == nil)
    #expect(JournalSink.FileIdentity(journalStream: "x:1") == nil)
    #expect(JournalSink.FileIdentity(journalStream: "1:2:3") == nil)
  }

  @Test func matchingStreamWithSocketIsNative() throws {
    let stderr = try FakeStderr()
    defer { stderr.remove() }
    let sink = JournalSink.select(journalStream: stderr.journalStream, stderr: stderr.identity, journalSocketAvailable: true)
    #expect(sink == .native)
  }

  @Test func matchingStreamWithoutSocketIsPrefixedStderr() throws {
    let stderr = try FakeStderr()
    defer { stderr.remove() }
    let sink = JournalSink.select(journalStream: stderr.journalStream, stderr: stderr.identity, journalSocketAvailable: false)
    #expect(sink == .prefixedStderr)
  }

  @Test func redirectedStderrIsPlain() throws {
    let stderr = try FakeStderr()
    defer { stderr.remove() }
    // $JOURNAL_STREAM inherited, but stderr now points at another file (e.g. `2>log`).
    let other = "\(stderr.identity.device):\(stderr.identity.inode + 1)"
    #expect(JournalSink.select(journalStream: other, stderr: stderr.identity, journalSocketAvailable: true) == .plainStderr)
  }

  @Test func absentOrGarbledStreamIsPlain() throws {
    let stderr = try FakeStderr()
    defer { stderr.remove() }
    #expect(JournalSink.select(journalStream: nil, stderr: stderr.identity, journalSocketAvailable: true) == .plainStderr)
    #expect(JournalSink.select(journalStream: "garbage", stderr: stderr.identity, journalSocketAvailable: true) == .plainStderr)
    #expect(JournalSink.select(journalStream: stderr.journalStream, stderr: nil, journalSocketAvailable: true) == .plainStderr)
  }

  @Test func forcedNativeWinsWhenJournaldListens() {
    #expect(JournalSink.select(journalStream: nil, stderr: nil, journalSocketAvailable: true, forceNative: true) == .native)
  }

  @Test func forcedNativeWithoutJournaldFallsBackToStderr() {
    // sd_journal_sendv "succeeds" with no journald: forcing native there would lose everything.
    #expect(JournalSink.select(journalStream: nil, stderr: nil, journalSocketAvailable: false, forceNative: true) == .plainStderr)
  }

  @Test func socketCheckRequiresASocket() throws {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    let path = directory.path + "/socket"
    #expect(!JournalSink.isSocket(atPath: path))
    let socket = try DatagramSocket(address: path)
    #expect(JournalSink.isSocket(atPath: path))
    let regular = directory.path + "/file"
    close(open(regular, O_CREAT | O_WRONLY, 0o600))
    #expect(!JournalSink.isSocket(atPath: regular))
    _ = socket
  }
}

extension ProcessEnvironmentTests {
  /// `detect` reads `$JOURNAL_STREAM` itself, so these change the environment.
  @Suite struct JournalDetectionTests {
    @Test func detectUsesEnvironmentFstatAndSocket() throws {
      let stderr = try FakeStderr()
      defer { stderr.remove() }
      let socketPath = stderr.directory.path + "/journal.socket"
      let socket = try DatagramSocket(address: socketPath)
      defer { _ = socket }

      let native = withEnvironment(["JOURNAL_STREAM": stderr.journalStream]) {
        JournalOutput.detect(fileDescriptor: stderr.fd, journalSocketPath: socketPath)
      }
      #expect(native.sink == .native)
      #expect(native.fallback == .prefixedStderr)

      let noSocket = withEnvironment(["JOURNAL_STREAM": stderr.journalStream]) {
        JournalOutput.detect(fileDescriptor: stderr.fd, journalSocketPath: socketPath + ".missing")
      }
      #expect(noSocket.sink == .prefixedStderr)

      let plain = withEnvironment(["JOURNAL_STREAM": nil]) {
        JournalOutput.detect(fileDescriptor: stderr.fd, journalSocketPath: socketPath)
      }
      #expect(plain.sink == .plainStderr)

      let forced = withEnvironment(["JOURNAL_STREAM": nil]) {
        JournalOutput.detect(syslogIdentifier: "vk-test", forceNative: true, fileDescriptor: stderr.fd, journalSocketPath: socketPath)
      }
      #expect(forced.sink == .native)
      #expect(forced.fallback == .plainStderr)  // stderr is not the journal: fall back to readable lines
      #expect(forced.syslogIdentifier == "vk-test")
    }
  }
}
