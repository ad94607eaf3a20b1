// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing

@testable import VaultKeeper

@Suite struct DrillScheduleTests {
  let t0 = 1_800_000_000.0
  let day: Duration = .seconds(86400)

  func schedule(interval: Duration = .seconds(7 * 86400), ledger: DrillLedger? = nil) -> DrillSchedule {
    DrillSchedule(interval: interval, ledger: ledger ?? DrillLedger(trackingSince: t0))
  }

  func mark(_ file: String, _ time: Double) -> DrillSchedule.SnapshotMark { .init(file: file, time: time) }

  @Test func nothingToDrillUntilASnapshotIsCommitted() {
    var s = schedule()
    #expect(s.decide(now: t0 + 100, active: true) == .wait(until: nil))
    s.snapshotCommitted(mark("a.snap", t0 + 50))
    #expect(s.decide(now: t0 + 100, active: true) == .drill(mark("a.snap", t0 + 50)))
  }

  @Test func aStandbyNeverDrills() {
    var s = schedule()
    s.snapshotCommitted(mark("a.snap", t0))
    #expect(s.decide(now: t0 + 100, active: false) == .standby)
  }

  @Test func afterAPassTheNextIsDueAnIntervalLaterWithANewerSnapshot() {
    var s = schedule()
    let a = mark("a.snap", t0)
    s.snapshotCommitted(a)
    s.drillFinished(a, at: t0 + 60, duration: .seconds(20), failure: nil)
    #expect(s.ledger.lastPassed?.file == "a.snap")
    // The same snapshot is never drilled twice, however long we wait.
    #expect(s.decide(now: t0 + 30 * 86400, active: true) == .wait(until: nil))
    s.snapshotCommitted(mark("b.snap", t0 + 3600))
    #expect(s.decide(now: t0 + 7200, active: true) == .wait(until: t0 + 60 + day.seconds * 7))
    #expect(s.decide(now: t0 + 60 + day.seconds * 7, active: true) == .drill(mark("b.snap", t0 + 3600)))
  }

  @Test func anOlderSnapshotReportDoesNotReplaceTheNewest() {
    var s = schedule()
    s.snapshotCommitted(mark("b.snap", t0 + 10))
    s.snapshotCommitted(mark("a.snap", t0))
    #expect(s.newest == mark("b.snap", t0 + 10))
  }

  @Test func afterAFailureItWaitsForANewerSnapshotAndAnHour() {
    var s = schedule()
    let a = mark("a.snap", t0)
    s.snapshotCommitted(a)
    s.drillFinished(a, at: t0 + 100, duration: .seconds(5), failure: DrillFailure(.unseal, .sharesRejected))
    #expect(s.ledger.lastPassed == nil)
    #expect(s.ledger.lastRun?.failure?.aboutShares == true)
    // No newer snapshot: no retry, even days later.
    #expect(s.decide(now: t0 + 3 * 86400, active: true) == .wait(until: nil))
    let b = mark("b.snap", t0 + 600)
    s.snapshotCommitted(b)
    #expect(s.decide(now: t0 + 700, active: true) == .wait(until: t0 + 100 + 3600))
    #expect(s.decide(now: t0 + 100 + 3600, active: true) == .drill(b))
  }

  @Test func retryDelayIsTheIntervalWhenThatIsShorter() {
    #expect(schedule(interval: .seconds(2)).retryDelay == .seconds(2))
    #expect(schedule().retryDelay == .seconds(3600))
  }

  @Test func aReloadRetriesTheFailedSnapshotOnce() {
    var s = schedule()
    let a = mark("a.snap", t0)
    s.snapshotCommitted(a)
    s.drillFinished(a, at: t0 + 100, duration: .seconds(5), failure: DrillFailure(.unseal, .sharesRejected))
    s.retryNow()
    #expect(s.decide(now: t0 + 101, active: true) == .drill(a))
    s.drillFinished(a, at: t0 + 130, duration: .seconds(5), failure: DrillFailure(.unseal, .sharesRejected))
    #expect(s.decide(now: t0 + 131, active: true) == .wait(until: nil), "only once per reload")
  }

  @Test func aReloadAfterAPassChangesNothing() {
    var s = schedule()
    let a = mark("a.snap", t0)
    s.snapshotCommitted(a)
    s.drillFinished(a, at: t0 + 100, duration: .seconds(5), failure: nil)
    s.retryNow()
    #expect(s.decide(now: t0 + 101, active: true) == .wait(until: nil))
  }

  @Test func aPassDatedInTheFutureIsNotBelieved() {
    let future = DrillLedger.Run(time: t0 + 30 * 86400, file: "a.snap", snapshotTime: t0, durationSeconds: 1)
    var s = schedule(ledger: DrillLedger(lastPassed: future, lastRun: future, trackingSince: t0))
    s.snapshotCommitted(mark("b.snap", t0 + 10))
    #expect(s.decide(now: t0 + 20, active: true) == .drill(mark("b.snap", t0 + 10)))
  }

  /// A failure dated in the future must not hold every drill back until then, and a time no
  /// clock can reach (a ledger edited by hand) must not trap anywhere.
  @Test func aFailureDatedInTheFutureIsNotBelieved() {
    let failure = DrillLedger.Failure(DrillFailure(.unseal, .sharesRejected))
    for when in [t0 + 30 * 86400, 1e300] {
      let future = DrillLedger.Run(time: when, file: "a.snap", snapshotTime: t0, durationSeconds: 1, failure: failure)
      var s = schedule(ledger: DrillLedger(lastRun: future, trackingSince: t0))
      #expect(s.earliest(now: t0 + 20) == t0 + 20)
      s.snapshotCommitted(mark("b.snap", t0 + 10))
      #expect(s.decide(now: t0 + 20, active: true) == .drill(mark("b.snap", t0 + 10)))
    }
  }

  @Test func theLedgerIsPrivateAndRoundTrips() throws {
    let directory = "/tmp/vk-dl-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let path = DrillLedger.path(snapshotLedgerPath: "\(directory)/snapshot-state.json")
    #expect(path == "\(directory)/drill-state.json")
    var s = schedule()
    let a = mark("a.snap", t0)
    s.drillFinished(a, at: t0 + 100, duration: .seconds(5), failure: DrillFailure(.verify, .badSnapshot("gzip")))
    try s.ledger.save(path: path)
    #expect(DrillLedger.load(path: path) == s.ledger)
    let mode = try #require(FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
    #expect(mode == 0o600)
    let text = try String(contentsOfFile: path, encoding: .utf8)
    #expect(text.contains("\"stage\" : \"verify\""))
    #expect(DrillLedger.directory(of: "/snapshot-state.json") == "/")
  }
}
