// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing

@testable import VaultKeeper

/// `SnapshotScheduler`, the snapshot duty's decisions, fed events in virtual time.
@Suite struct SnapshotSchedulerTests {
  let t0 = NodeTime(monotonic: ContinuousClock.now, wall: 1_800_000_000)
  let hourly = SnapshotScheduler.Settings(schedule: SnapshotSchedule(interval: .seconds(3600), dailyAt: nil, randomizedDelay: .zero))

  func scheduler(dueIn seconds: Double) -> SnapshotScheduler {
    SnapshotScheduler(settings: hourly, due: Date(timeIntervalSince1970: t0.wall + seconds))
  }

  @Test func activeTakesWhenDueAndWaitsUntilThenOtherwise() {
    #expect(scheduler(dueIn: 0).tick(at: t0, role: .take, tokenRefreshDue: nil) == .take)
    #expect(scheduler(dueIn: -60).tick(at: t0, role: .take, tokenRefreshDue: nil) == .take)
    // Not due: the role is looked at every 5 s, and the wait ends when the snapshot is due.
    let far = scheduler(dueIn: 600).tick(at: t0, role: .take, tokenRefreshDue: nil)
    #expect(far == .wait(.init(delay: .seconds(5), phase: .idle, waitingFor: nil, nextDue: t0.wall + 600)))
    let near = scheduler(dueIn: 2).tick(at: t0, role: .take, tokenRefreshDue: nil)
    #expect(near == .wait(.init(delay: .milliseconds(2001), phase: .idle, waitingFor: nil, nextDue: t0.wall + 2)))
  }

  @Test func standbyWaitsLookingEverySecond() {
    for due in [-60.0, 600] {
      #expect(scheduler(dueIn: due).tick(at: t0, role: .standby, tokenRefreshDue: nil) == .wait(.init(delay: .seconds(1), phase: .standby, waitingFor: nil, nextDue: nil)))
    }
  }

  @Test func unavailableIsIdleUntilDueThenWaitingWithItsReason() {
    let early = scheduler(dueIn: 600).tick(at: t0, role: .unavailable("vault is sealed"), tokenRefreshDue: nil)
    #expect(early == .wait(.init(delay: .seconds(5), phase: .idle, waitingFor: nil, nextDue: t0.wall + 600)))
    let overdue = scheduler(dueIn: -1).tick(at: t0, role: .unavailable("vault is sealed"), tokenRefreshDue: nil)
    #expect(overdue == .wait(.init(delay: .seconds(1), phase: .waiting, waitingFor: "vault is sealed", nextDue: t0.wall - 1)))
  }

  @Test func tokenRefreshComesFirstAndBoundsTheWait() {
    let s = scheduler(dueIn: 600)
    #expect(s.tick(at: t0, role: .take, tokenRefreshDue: t0.monotonic) == .renewToken)
    #expect(scheduler(dueIn: 0).tick(at: t0, role: .take, tokenRefreshDue: t0.monotonic.advanced(by: .seconds(-1))) == .renewToken)
    // Right after a renewal in the same turn: no second one, the wait stays short instead.
    #expect(s.tick(at: t0, role: .take, tokenRefreshDue: t0.monotonic, mayRenew: false) == .wait(.init(delay: .milliseconds(1), phase: .idle, waitingFor: nil, nextDue: t0.wall + 600)))
    guard case .wait(let wait) = s.tick(at: t0, role: .take, tokenRefreshDue: t0.monotonic.advanced(by: .seconds(3))) else {
      Issue.record("nothing to do yet")
      return
    }
    #expect(wait.delay == .seconds(3))
  }

  static let backoff: [(Int, Int)] = [(1, 60), (2, 120), (3, 240), (4, 480), (5, 960), (6, 1920), (7, 3600), (12, 3600)]

  @Test(arguments: backoff)
  func failuresBackOffFromAMinuteToAnHour(failures: Int, seconds: Int) {
    var s = scheduler(dueIn: 0)
    var retry: SnapshotScheduler.Retry?
    for _ in 0..<failures { retry = s.failed(at: t0) }
    #expect(retry?.delay == .seconds(seconds))
    #expect(retry?.consecutiveFailures == failures)
    #expect(s.due == Date(timeIntervalSince1970: t0.wall + Double(seconds)))
  }

  @Test func retriesNeverWaitLongerThanTheCadence() {
    let tenMinutes = SnapshotScheduler.Settings(schedule: SnapshotSchedule(interval: .seconds(600), dailyAt: nil, randomizedDelay: .zero))
    var s = SnapshotScheduler(settings: tenMinutes, due: Date(timeIntervalSince1970: t0.wall))
    let delays = (0..<6).map { _ in s.failed(at: t0).delay }
    #expect(delays == [.seconds(60), .seconds(120), .seconds(240), .seconds(480), .seconds(600), .seconds(600)])
  }

  @Test func aSuccessResetsTheBackOffAndSchedulesFromTheNamesTime() {
    var s = scheduler(dueIn: 0)
    _ = s.failed(at: t0)
    _ = s.failed(at: t0)
    let taken = Date(timeIntervalSince1970: t0.wall + 5)
    let next = s.succeeded(taken: taken, at: t0.advanced(by: .seconds(7)), random: 0)
    #expect(next == taken.addingTimeInterval(3600))
    #expect(s.consecutiveFailures == 0)
    #expect(s.failed(at: t0).delay == .seconds(60))
  }

  @Test func aFirstStartRecordsWhenWaitingBeganAndIsDueNow() {
    let start = SnapshotScheduler.start(ledger: nil, settings: hourly, at: t0, random: 0)
    #expect(start.saveLedger)
    #expect(start.ledger.trackingSince == t0.wall)
    #expect(start.lastSuccess == nil)
    #expect(!start.catchUp)
    #expect(start.scheduler.due == Date(timeIntervalSince1970: t0.wall))
    #expect(start.freshnessReference == t0.monotonic)
  }

  @Test func aMissedSnapshotIsCaughtUpOnce() {
    let ledger = SnapshotLedger(lastSuccess: .init(time: t0.wall - 7200, file: "f.snap", raftIndex: 1, bytes: 1, durationSeconds: 1), trackingSince: t0.wall - 86400)
    let start = SnapshotScheduler.start(ledger: ledger, settings: hourly, at: t0, random: 0)
    #expect(start.catchUp)
    #expect(!start.saveLedger)
    #expect(start.scheduler.due == Date(timeIntervalSince1970: t0.wall))
    #expect(start.freshnessReference == t0.monotonic.advanced(by: .seconds(-7200)))
    // Not missed: due an interval after the last one, no catch-up.
    let recent = SnapshotLedger(lastSuccess: .init(time: t0.wall - 600, file: "f.snap", raftIndex: 1, bytes: 1, durationSeconds: 1), trackingSince: t0.wall - 86400)
    let calm = SnapshotScheduler.start(ledger: recent, settings: hourly, at: t0, random: 0)
    #expect(!calm.catchUp)
    #expect(calm.scheduler.due == Date(timeIntervalSince1970: t0.wall + 3000))
  }

  @Test func recordsDatedInTheFutureAreNotBelieved() {
    let ledger = SnapshotLedger(lastSuccess: .init(time: t0.wall + 86400, file: "f.snap", raftIndex: 1, bytes: 1, durationSeconds: 1), trackingSince: t0.wall + 86400)
    let start = SnapshotScheduler.start(ledger: ledger, settings: hourly, at: t0, random: 0)
    #expect(start.futureRecord?.file == "f.snap")
    #expect(start.lastSuccess == nil)
    #expect(start.saveLedger)  // tracking_since was in the future: now, written at once
    #expect(start.ledger.trackingSince == t0.wall)
    #expect(start.scheduler.due == Date(timeIntervalSince1970: t0.wall))
    #expect(start.freshnessReference == t0.monotonic)
  }

  @Test func failuresCarriedOverAReloadKeepTheBackOff() {
    let start = SnapshotScheduler.start(ledger: nil, settings: hourly, consecutiveFailures: 2, at: t0, random: 0)
    var s = start.scheduler
    #expect(s.failed(at: t0).delay == .seconds(240))
  }
}
