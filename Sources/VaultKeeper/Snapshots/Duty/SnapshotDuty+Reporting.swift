// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging

/// What the snapshot duty says about its snapshots besides taking them: staleness (judged every
/// second by the freshness task, whatever a transfer is doing) and names dated in the future.
extension SnapshotDuty {
  /// Snapshot files of any cluster whose names are dated in the future: a clock that was ahead
  /// when they were written. They count for nothing and are never deleted; say so once.
  func reportFutureFiles(_ status: SnapshotDutyStatus) async {
    let directory = context.config.directory
    let now = Date(timeIntervalSince1970: context.clock.now().wall)
    let future = await OffPool.run { SnapshotDirectory.list(directory).filter { RetentionPolicy.isFuture($0.name.time, now: now) }.map(\.name.fileName) }
    reportFuture(local: future, status)
  }

  /// Logs the future-dated local names not reported yet, and keeps the count for the metric.
  func reportFuture(local names: [String], _ status: SnapshotDutyStatus) {
    let directory = context.config.directory
    let fresh = status.update { s -> [String] in
      let new = names.filter { !s.futureLocal.contains($0) }
      s.futureLocal = Set(names)
      s.report.futureDated = s.futureLocal.count + s.futureRemote.count
      return new
    }
    for name in fresh {
      context.logger.warning(
        "\(directory)/\(name) is dated in the future (was the clock ahead?): it does not count as the newest snapshot, for retention or for staleness, and is never deleted; remove it by hand once you have checked it",
        metadata: ["message_id": "\(MessageID.snapshotFutureDated.rawValue)", "snapshot.file": "\(directory)/\(name)"])
    }
  }

  /// Judges staleness once from the shared freshness state; `run()` does this every second,
  /// whatever the schedule and the uploads are doing (a hung transfer cannot hold the alert back).
  func judgeFreshness(_ status: SnapshotDutyStatus) async {
    let role = SnapshotPlan.role(localState: await context.board.state(of: context.node.name))
    var judged = true
    if case .standby = role { judged = false }  // the active node's vaultkeeper judges it
    let now = context.clock.now().monotonic
    let (verdict, report, age) = status.update { s -> (SnapshotFreshness.Verdict, SnapshotReport, Duration) in
      let verdict = s.freshness.judge(now: now, judged: judged)
      if case .stale = verdict { s.report.stale = true } else { s.report.stale = false }
      return (verdict, s.report, s.freshness.age(at: now))
    }
    if case .stale(announce: true) = verdict { announceStale(report, age: age) }
    await status.publish()
  }

  private func announceStale(_ report: SnapshotReport, age: Duration) {
    let limit = DurationParsing.format(context.config.staleAfter)
    var metadata: Logger.Metadata = ["message_id": "\(MessageID.snapshotsStale.rawValue)", "snapshot.stale_after": "\(limit)"]
    let message: String
    if report.lastSuccess != nil {
      let shown = DurationParsing.humanize(age)
      metadata["snapshot.age"] = "\(shown)"
      message = "backups are stale: the last good snapshot is \(shown) old (stale_after \(limit))"
    } else {
      message = "backups are stale: no good snapshot for \(limit) since vaultkeeper started watching"
    }
    var detail = message
    if let reason = report.lastFailureReason, report.consecutiveFailures > 0 {
      detail += "; last attempt failed (\(reason))"
    } else if let waiting = report.waitingFor {
      detail += "; waiting: \(waiting)"
    } else if report.phase == .running {
      detail += "; a snapshot download is still running"
    }
    context.logger.error("\(detail)", metadata: metadata)
  }
}
