// SPDX-License-Identifier: Apache-2.0
import Logging

/// The one journal entry per drill, the same for `snapshot drill` and the daemon's scheduled
/// drill (MESSAGE_IDs `snapshotDrillPassed`/`snapshotDrillFailed`, with catalog text).
public enum DrillJournal {
  /// The line a passed drill prints and journals.
  public static func passedLine(path: String, report: DrillReport) -> String {
    let login = report.loggedIn ? ", AppRole login ok" : ""
    let seconds = DurationParsing.format(.seconds(Int64(report.duration.seconds.rounded(.up))))
    let server = report.server.map { ", by \($0.description)" } ?? ""
    return "restore drill passed: \(path) restored (raft index \(report.facts.index), applied \(report.appliedIndex)) and unsealed with "
      + "\(report.sharesUsed) of the shares vaultkeeper holds\(login), in \(seconds)\(server)"
  }

  public static func entry(path: String, outcome: Result<DrillReport, DrillFailure>) -> JournalEntry {
    switch outcome {
    case .success(let report):
      return JournalEntry(
        level: .notice, message: passedLine(path: path, report: report), id: .snapshotDrillPassed,
        fields: ["snapshot.file": path, "snapshot.index": "\(report.facts.index)"].merging(
          report.server.map { ["drill.binary": $0.path] } ?? [:], uniquingKeysWith: { first, _ in first }))
    case .failure(let failure):
      return JournalEntry(
        level: .error, message: "restore drill of \(path) failed at \(failure.stage.rawValue): \(failure.reason.message)", id: .snapshotDrillFailed,
        fields: ["snapshot.file": path, "drill.stage": failure.stage.rawValue, "drill.reason": failure.reason.name])
    }
  }

  public static func log(_ entry: JournalEntry, to logger: Logger) {
    var metadata: Logger.Metadata = [:]
    if let id = entry.id { metadata["message_id"] = "\(id.rawValue)" }
    for (name, value) in entry.fields { metadata[name] = "\(value)" }
    logger.log(level: entry.level, "\(entry.message)", metadata: metadata)
  }
}
