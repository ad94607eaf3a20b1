// SPDX-License-Identifier: Apache-2.0
import CSystemd
import Glibc
import Synchronization

/// The process-wide destination of `JournalLogHandler`s: the chosen sink plus the lock that
/// keeps stderr lines whole.
///
/// swift-log creates one handler per `Logger`, and loggers are copied freely between tasks, so
/// the state that must be shared (the write lock, the failure counter) lives here and every
/// handler holds a reference to the one instance created at bootstrap.
///
/// - Important: each entry is written with a single `write(2)` under `writeLock`, so lines from
///   different threads never interleave, and journald's stream reader never sees half a line.
public final class JournalOutput: Sendable {
  /// Where entries go.
  public let sink: JournalSink
  /// Used for native entries whose `sd_journal_sendv` fails (e.g. `EPERM` from a seccomp or
  /// address-family filter): the entry is written to stderr in this format instead of lost.
  public let fallback: JournalSink
  /// `SYSLOG_IDENTIFIER=` of native entries; `journalctl -t vaultkeeper` matches it.
  public let syslogIdentifier: String

  private let fileDescriptor: Int32
  private let clock: @Sendable () -> WallClockTime
  private let writeLock = Mutex(())
  private let failures = Atomic<Int>(0)

  /// - Parameters:
  ///   - sink: where entries go; normally from `detect`.
  ///   - syslogIdentifier: `SYSLOG_IDENTIFIER=` of native entries.
  ///   - fallback: the stderr format used when a native send fails. Must not be `.native`
  ///     (treated as `.prefixedStderr`).
  ///   - fileDescriptor: where stderr lines go; injectable so tests can read them back.
  public convenience init(
    sink: JournalSink,
    syslogIdentifier: String = "vaultkeeper",
    fallback: JournalSink = .prefixedStderr,
    fileDescriptor: Int32 = STDERR_FILENO
  ) {
    self.init(
      sink: sink, syslogIdentifier: syslogIdentifier, fallback: fallback, fileDescriptor: fileDescriptor,
      clock: { WallClockTime.now() })
  }

  init(
    sink: JournalSink,
    syslogIdentifier: String,
    fallback: JournalSink,
    fileDescriptor: Int32,
    clock: @escaping @Sendable () -> WallClockTime
  ) {
    self.sink = sink
    self.syslogIdentifier = syslogIdentifier
    self.fallback = fallback == .native ? .prefixedStderr : fallback
    self.fileDescriptor = fileDescriptor
    self.clock = clock
  }

  /// Inspects the process once and picks the sink: reads `$JOURNAL_STREAM`, `fstat`s stderr and
  /// checks for journald's socket, then applies `JournalSink.select`.
  ///
  /// Call it once, before `LoggingSystem.bootstrap`; the environment is not re-read later.
  ///
  /// - Parameters:
  ///   - syslogIdentifier: `SYSLOG_IDENTIFIER=` of native entries.
  ///   - forceNative: send natively even when stderr is not the journal stream.
  ///   - fileDescriptor: the descriptor treated as stderr (injectable for tests).
  ///   - journalSocketPath: where journald's socket is expected (injectable for tests; libsystemd
  ///     itself always uses `/run/systemd/journal/socket`).
  public static func detect(
    syslogIdentifier: String = "vaultkeeper",
    forceNative: Bool = false,
    fileDescriptor: Int32 = STDERR_FILENO,
    journalSocketPath: String = JournalSink.journalSocketPath
  ) -> JournalOutput {
    let journalStream = getenv("JOURNAL_STREAM").map { String(cString: $0) }
    let identity = JournalSink.FileIdentity(fileDescriptor: fileDescriptor)
    let sink = JournalSink.select(
      journalStream: journalStream, stderr: identity,
      journalSocketAvailable: JournalSink.isSocket(atPath: journalSocketPath), forceNative: forceNative)
    let onJournal = JournalSink.stderrIsJournalStream(journalStream: journalStream, stderr: identity)
    return JournalOutput(
      sink: sink, syslogIdentifier: syslogIdentifier, fallback: onJournal ? .prefixedStderr : .plainStderr,
      fileDescriptor: fileDescriptor)
  }

  /// How many entries could not be delivered as intended (native send or stderr write failed).
  /// Nothing is printed about it: there is nowhere left to print to.
  public var failureCount: Int { failures.load(ordering: .relaxed) }

  /// Delivers one entry to the sink.
  func emit(_ record: JournalRecord) {
    switch sink {
    case .native:
      let result = Self.sendNative(journalFields(for: record, syslogIdentifier: syslogIdentifier))
      if result < 0 {
        failures.add(1, ordering: .relaxed)
        emitToStderr(record, as: fallback)
      }
    case .prefixedStderr, .plainStderr:
      emitToStderr(record, as: sink)
    }
  }

  private func emitToStderr(_ record: JournalRecord, as format: JournalSink) {
    let text = format == .plainStderr ? plainStderrText(record, at: clock()) : prefixedStderrText(record)
    if !writeWhole(text) { failures.add(1, ordering: .relaxed) }
  }

  /// Writes `text` with one `write(2)` (more only if the kernel accepts part of it, which for
  /// pipes happens only above `PIPE_BUF`), under the lock so entries never interleave.
  private func writeWhole(_ text: String) -> Bool {
    var bytes = Array(text.utf8)
    return writeLock.withLock { _ in
      bytes.withUnsafeMutableBytes { buffer -> Bool in
        guard let base = buffer.baseAddress else { return true }
        var offset = 0
        while offset < buffer.count {
          let written = write(fileDescriptor, base + offset, buffer.count - offset)
          if written < 0 {
            if errno == EINTR { continue }
            return false
          }
          offset += written
        }
        return true
      }
    }
  }

  /// Sends the fields as one journal entry through `sd_journal_sendv`.
  ///
  /// - Returns: `sd_journal_sendv`'s result: `>= 0` on success (including "journald not
  ///   running"), `-errno` on failure.
  static func sendNative(_ fields: [JournalField]) -> Int32 {
    let packed = PackedJournalEntry(fields)
    return packed.bytes.withUnsafeBytes { buffer -> Int32 in
      guard let base = buffer.baseAddress else { return 0 }
      let vectors = packed.ranges.map { range in
        iovec(iov_base: UnsafeMutableRawPointer(mutating: base + range.lowerBound), iov_len: range.count)
      }
      return vectors.withUnsafeBufferPointer { iov in
        sd_journal_sendv(iov.baseAddress, Int32(iov.count))
      }
    }
  }
}
