// SPDX-License-Identifier: Apache-2.0
import Synchronization

/// What the snapshot duty's three tasks share: the report (STATUS, state file, metrics), the
/// freshness judgement, and which future-dated names were already reported. The schedule, the
/// uploads and the freshness timer each change their part under the lock and then publish the
/// whole report, so none of them can hold up the others' reporting.
final class SnapshotDutyStatus: Sendable {
  struct Shared: Sendable {
    var report: SnapshotReport
    var freshness: SnapshotFreshness
    /// Future-dated names already reported, local and remote: reported once each, again only
    /// after they were gone for a while.
    var futureLocal: Set<String> = []
    var futureRemote: Set<String> = []
    /// Keys named for this cluster without its ID, already reported.
    var othersRemote: Set<String> = []
    /// Whether the schedule has set the phase (idle, standby, …) once: until then nothing is
    /// published, so a standby never shows "no snapshot yet" for a moment.
    var phaseKnown = false
  }

  private let shared: Mutex<Shared>
  private let board: StatusBoard

  init(report: SnapshotReport, freshness: SnapshotFreshness, board: StatusBoard) {
    shared = Mutex(Shared(report: report, freshness: freshness))
    self.board = board
  }

  /// Changes the shared state; returns what `body` returns.
  @discardableResult
  func update<T: Sendable>(_ body: (inout Shared) -> T) -> T {
    shared.withLock { body(&$0) }
  }

  var report: SnapshotReport { shared.withLock { $0.report } }

  /// Posts the current report to the board (once the schedule has set the phase).
  func publish() async {
    guard let report = shared.withLock({ $0.phaseKnown ? $0.report : nil }) else { return }
    await board.post(snapshot: report)
  }
}
