// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import Synchronization

/// What the state file (for `vaultkeeper status`) and the metrics textfile are written from.
public struct ReportFiles: Sendable {
  public var report: DaemonReport
  public var stateFile: String?
  public var metricsFile: String?
}

/// Writes the state file and the metrics textfile from a thread of its own, latest report
/// wins. Encoding and writing (which blocks on a slow or full disk) never hold up the status
/// board, and so never a health check or an unseal; a report superseded before it was written
/// is simply skipped.
final class ReportFileWriter: Sendable {
  private let outbox: CoalescingOutbox<ReportFiles>

  /// Which files failed last time: a failure is logged once, a recovery silently clears it.
  private final class Problems: Sendable {
    let kinds = Mutex<Set<String>>([])
  }

  init(logger: Logger) {
    let problems = Problems()
    outbox = CoalescingOutbox(capacity: 1) { files in ReportFileWriter.write(files, problems: problems, logger: logger) }
  }

  func write(_ files: ReportFiles) {
    outbox.enqueue(files, coalescingKey: "files")
  }

  /// Waits, for at most `limit`, until the latest report is on disk.
  func drain(within limit: Duration) async -> Bool { await outbox.drain(within: limit) }

  private static func write(_ files: ReportFiles, problems: Problems, logger: Logger) {
    if let stateFile = files.stateFile {
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
      if let data = try? encoder.encode(files.report) {
        record("state", path: stateFile, problems: problems, logger: logger) {
          try FileAccess.writeAtomically(path: stateFile, bytes: Array(data) + [0x0A], mode: 0o644, durable: false)
        }
      }
    }
    if let metricsFile = files.metricsFile {
      record("metrics", path: metricsFile, problems: problems, logger: logger) {
        try FileAccess.writeAtomically(path: metricsFile, bytes: Array(MetricsText.render(files.report).utf8), mode: 0o644, durable: false)
      }
    }
  }

  private static func record(_ kind: String, path: String, problems: Problems, logger: Logger, _ body: () throws -> Void) {
    do {
      try body()
      _ = problems.kinds.withLock { $0.remove(kind) }
    } catch {
      if problems.kinds.withLock({ $0.insert(kind).inserted }) { logger.warning("cannot write \(kind) file \(path): \(error)") }
    }
  }
}
