// SPDX-License-Identifier: Apache-2.0
import Foundation
import Glibc
import Logging
import Synchronization
import Platform
import Testing

@testable import Systemd

private let fixedTime = WallClockTime(seconds: 1_795_347_000, nanoseconds: 123_000_000)

private func output(_ sink: JournalSink, fd: Int32) -> JournalOutput {
  JournalOutput(sink: sink, syslogIdentifier: "vaultkeeper", fallback: .prefixedStderr, fileDescriptor: fd, clock: { fixedTime })
}

@Suite struct JournalLogHandlerTests {
  @Test func plainSinkWritesReadableLines() throws {
    let pipe = try TestPipe()
    defer { pipe.close() }
    let out = output(.plainStderr, fd: pipe.writeEnd)
    var logger = Logger(label: "vaultkeeper.unseal") { JournalLogHandler(label: $0, output: out) }
    logger[metadataKey: "duty.name"] = "unseal"
    logger.warning("Vault is sealed", metadata: ["vault.addr": "https://127.0.0.1:8200"])
    logger.debug("not shown at the default level")
    #expect(
      pipe.drain()
        == "2026-11-22T11:30:00.123Z warning vaultkeeper.unseal: Vault is sealed duty.name=unseal vault.addr=https://127.0.0.1:8200\n"
    )
    #expect(out.failureCount == 0)
  }

  @Test func prefixedSinkWritesPriorityLines() throws {
    let pipe = try TestPipe()
    defer { pipe.close() }
    let out = output(.prefixedStderr, fd: pipe.writeEnd)
    var logger = Logger(label: "vaultkeeper") { JournalLogHandler(label: $0, output: out) }
    logger.logLevel = .trace
    logger.error("Unseal failed\nkey share rejected", metadata: ["attempt": "2"])
    logger.trace("detail")
    #expect(pipe.drain() == "<3>Unseal failed attempt=2\n<3>key share rejected\n<7>detail\n")
  }

  @Test func metadataProviderAndHandlerLevelAreHonoured() throws {
    let pipe = try TestPipe()
    defer { pipe.close() }
    let out = output(.prefixedStderr, fd: pipe.writeEnd)
    let provider = Logger.MetadataProvider { ["request.id": "r-7"] }
    let logger = Logger(label: "vaultkeeper") {
      JournalLogHandler(label: $0, output: out, logLevel: .notice, metadataProvider: provider)
    }
    logger.info("dropped: below notice")
    logger.notice("kept")
    #expect(pipe.drain() == "<5>kept request.id=r-7\n")
  }

  @Test func recordUsesTheCallSiteLocation() {
    let out = output(.plainStderr, fd: -1)
    let handler = JournalLogHandler(label: "vaultkeeper.health", output: out)
    let event = LogEvent(
      level: .info, message: "ok", metadata: ["a": "1"], source: nil, file: "VaultKeeper/Health/HealthDuty.swift",
      function: "check()", line: 17)
    let built = handler.record(for: event)
    #expect(built.file == "VaultKeeper/Health/HealthDuty.swift")
    #expect(built.function == "check()")
    #expect(built.line == 17)
    #expect(built.label == "vaultkeeper.health")
    #expect(built.metadata == [MetadataPair(key: "a", value: "1")])
  }

  @Test func writeFailuresAreCountedNotThrown() {
    let out = output(.plainStderr, fd: -1)  // EBADF on every write
    let logger = Logger(label: "vaultkeeper") { JournalLogHandler(label: $0, output: out) }
    logger.error("nowhere to go")
    logger.error("still nowhere")
    #expect(out.failureCount == 2)
  }

  /// Eight threads log long multi-line entries at once; every entry must come out whole and
  /// contiguous (one `write(2)` under the lock), never interleaved with another.
  @Test func concurrentEntriesNeverInterleave() throws {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    let path = directory.path + "/stderr"
    let fd = open(path, O_CREAT | O_WRONLY | O_APPEND | O_CLOEXEC, 0o600)
    try #require(fd >= 0)
    defer { close(fd) }
    let out = output(.prefixedStderr, fd: fd)
    let threads = 8
    let perThread = 200
    let padding = String(repeating: "x", count: 3000)

    final class Counter: Sendable { let value = Atomic<Int>(0) }
    let done = Counter()
    for thread in 0..<threads {
      let started = NamedThread.start(name: "vk-log-\(thread)") {
        let logger = Logger(label: "vaultkeeper") { JournalLogHandler(label: $0, output: out) }
        for entry in 0..<perThread {
          logger.info("start \(thread)-\(entry) \(padding)\nend \(thread)-\(entry)")
        }
        done.value.add(1, ordering: .releasing)
      }
      try #require(started == 0)
    }
    let deadline = ContinuousClock.now + .seconds(30)
    while done.value.load(ordering: .acquiring) < threads, ContinuousClock.now < deadline { usleep(1000) }
    try #require(done.value.load(ordering: .acquiring) == threads)

    let contents = try String(contentsOfFile: path, encoding: .utf8)
    let lines = contents.split(separator: "\n")
    #expect(lines.count == threads * perThread * 2)
    var pairs = 0
    for index in stride(from: 0, to: lines.count - 1, by: 2) {
      let start = lines[index]
      let end = lines[index + 1]
      guard start.hasPrefix("<6>start "), end.hasPrefix("<6>end ") else { continue }
      let id = start.dropFirst("<6>start ".count).prefix { $0 != " " }
      if end == "<6>end \(id)", start.hasSuffix(padding) { pairs += 1 }
    }
    #expect(pairs == threads * perThread)
  }
}
