// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
@testable import VaultKeeper

@Suite struct SnapshotScheduleTests {
  let t = Date(timeIntervalSince1970: 1_763_800_000)  // 2025-11-22T08:26:40Z

  @Test func firstSnapshotIsDueNow() {
    let s = SnapshotSchedule(interval: .seconds(3600), dailyAt: nil, randomizedDelay: .seconds(60))
    #expect(s.nextDue(lastSuccess: nil, now: t, random: 0) == t)
    #expect(s.nextDue(lastSuccess: nil, now: t, random: 1) == t.addingTimeInterval(60))
  }

  @Test func intervalFromLastSuccess() {
    let s = SnapshotSchedule(interval: .seconds(3600), dailyAt: nil, randomizedDelay: .zero)
    #expect(s.nextDue(lastSuccess: t.addingTimeInterval(-600), now: t, random: 0.5) == t.addingTimeInterval(3000))
  }

  @Test func missedSlotsCatchUpOnceNotInABurst() {
    let s = SnapshotSchedule(interval: .seconds(3600), dailyAt: nil, randomizedDelay: .seconds(120))
    // Down for ten intervals: one snapshot soon, not ten.
    let due = s.nextDue(lastSuccess: t.addingTimeInterval(-36_000), now: t, random: 0.5)
    #expect(due == t.addingTimeInterval(60))
    // After that catch-up succeeds, the next is a full interval later.
    #expect(s.nextDue(lastSuccess: due, now: due, random: 0) == due.addingTimeInterval(3600))
  }

  @Test func dailyTimeOfDay() throws {
    let at = try #require(SnapshotSchedule.TimeOfDay("03:30"))
    let s = SnapshotSchedule(interval: nil, dailyAt: at, randomizedDelay: .zero)
    // Last success yesterday 03:30 → today 03:30 already passed at 08:26 → catch up now.
    let yesterday = SnapshotName.parseStamp("20251121T033000Z")
    #expect(s.nextDue(lastSuccess: yesterday, now: t, random: 0) == t)
    // Last success today 03:30 → tomorrow 03:30.
    let today = SnapshotName.parseStamp("20251122T033000Z")
    #expect(s.nextDue(lastSuccess: today, now: t, random: 0) == SnapshotName.parseStamp("20251123T033000Z"))
  }

  @Test func bothRulesTakeTheEarlier() throws {
    let s = SnapshotSchedule(interval: .seconds(6 * 3600), dailyAt: SnapshotSchedule.TimeOfDay("09:00"), randomizedDelay: .zero)
    #expect(s.nextDue(lastSuccess: t, now: t, random: 0) == SnapshotName.parseStamp("20251122T090000Z"))
  }

  @Test(arguments: ["24:00", "3:30", "03:60", "0330", "aa:bb", ""])
  func rejectsBadTimes(text: String) {
    #expect(SnapshotSchedule.TimeOfDay(text) == nil)
  }
}

@Suite struct RetentionPolicyTests {
  let now = SnapshotName.parseStamp("20251122T120000Z") ?? Date()

  func item(_ stamp: String, verified: Bool = true) -> RetentionPolicy.Item {
    RetentionPolicy.Item(name: stamp, time: SnapshotName.parseStamp(Substring(stamp)) ?? Date(), verified: verified)
  }

  @Test func keepLast() {
    let items = ["20251122T110000Z", "20251122T100000Z", "20251122T090000Z", "20251122T080000Z"].map { item($0) }
    let d = RetentionPolicy(keepLast: 2).apply(to: items, now: now)
    #expect(d.keep == ["20251122T110000Z", "20251122T100000Z"])
    #expect(d.delete.map(\.name) == ["20251122T090000Z", "20251122T080000Z"])
  }

  @Test func keepDailyKeepsTheNewestOfEachDay() {
    let items = ["20251122T110000Z", "20251122T010000Z", "20251121T230000Z", "20251121T120000Z", "20251120T120000Z"].map { item($0) }
    let d = RetentionPolicy(keepDaily: 2).apply(to: items, now: now)
    #expect(d.keep == ["20251122T110000Z", "20251121T230000Z"])
  }

  @Test func weeklyAndMonthlyBuckets() {
    // 2025-11-17 is a Monday: ISO weeks 47 (17–23 Nov), 46 (10–16 Nov).
    let items = ["20251122T110000Z", "20251117T010000Z", "20251116T230000Z", "20251031T120000Z", "20251001T120000Z"].map { item($0) }
    #expect(RetentionPolicy(keepWeekly: 2).apply(to: items, now: now).keep == ["20251122T110000Z", "20251116T230000Z"])
    #expect(RetentionPolicy(keepMonthly: 2).apply(to: items, now: now).keep == ["20251122T110000Z", "20251031T120000Z"])
  }

  @Test func rulesCombineAsUnion() {
    // 22 Nov 11:00 (last, daily, monthly), 21 Nov (daily), 31 Oct (monthly); 22 Nov 10:00 goes.
    let items = ["20251122T110000Z", "20251122T100000Z", "20251121T100000Z", "20251031T100000Z"].map { item($0) }
    let d = RetentionPolicy(keepLast: 1, keepDaily: 2, keepMonthly: 2).apply(to: items, now: now)
    #expect(d.keep == ["20251122T110000Z", "20251121T100000Z", "20251031T100000Z"])
    #expect(d.delete.map(\.name) == ["20251122T100000Z"])
  }

  @Test func maxAgeWinsOverKeepRules() {
    let items = ["20251122T110000Z", "20251001T100000Z"].map { item($0) }
    let d = RetentionPolicy(keepLast: 10, maxAge: .seconds(30 * 86400)).apply(to: items, now: now)
    #expect(d.keep == ["20251122T110000Z"])
    #expect(d.delete.first?.reason.contains("max_age") == true)
  }

  @Test func noRulesKeepEverythingYoungEnough() {
    let items = ["20251122T110000Z", "20251101T100000Z"].map { item($0) }
    #expect(RetentionPolicy().apply(to: items, now: now).delete.isEmpty)
  }

  @Test func neverDeletesTheNewestVerifiedSnapshot() {
    // Everything is older than max_age and keep_last is 0: the newest good one still stays.
    let items = [item("20250101T000000Z", verified: false), item("20241201T000000Z"), item("20241101T000000Z")]
    let d = RetentionPolicy(keepLast: 0, maxAge: .seconds(86400)).apply(to: items, now: now)
    #expect(d.keep == ["20241201T000000Z"])
    #expect(d.delete.map(\.name) == ["20250101T000000Z", "20241101T000000Z"])
  }

  @Test func emptyInputIsFine() {
    #expect(RetentionPolicy(keepLast: 3).apply(to: [], now: now) == RetentionPolicy.Decision(keep: [], delete: []))
  }
}

@Suite struct SnapshotNameTests {
  @Test func roundTrips() throws {
    let time = try #require(SnapshotName.parseStamp("20251122T083000Z"))
    let name = SnapshotName(cluster: "Vault Cluster_01", time: time.addingTimeInterval(0.7), raftIndex: 4711, encrypted: true)
    #expect(name.fileName == "vaultkeeper-vault-cluster-01-20251122T083000Z-4711.snap.age")
    #expect(SnapshotName(fileName: name.fileName) == name)
  }

  @Test(arguments: ["backup.snap", "vaultkeeper-x-20251122T083000Z.snap", "vaultkeeper-x-20251322T083000Z-1.snap", "vaultkeeper--20251122T083000Z-1.snap",
    "vaultkeeper-X-20251122T083000Z-1.snap", "vaultkeeper-x-20251122T083000Z-1.snap.tmp", "vaultkeeper-x-20251122T083000Z-a.snap",
    // Not the name we write for these values (found by fuzzing): retention would delete the
    // canonical name, another file or none.
    "vaultkeeper-x-20251122T083000Z-0007.snap", "vaultkeeper-x-20251122T083000Z-+7.snap"])
  func ignoresForeignFiles(name: String) {
    #expect(SnapshotName(fileName: name) == nil)
  }

  @Test func stampsAreCalendarExact() {
    #expect(SnapshotName.stamp(Date(timeIntervalSince1970: 0)) == "19700101T000000Z")
    #expect(SnapshotName.stamp(Date(timeIntervalSince1970: 951_782_400)) == "20000229T000000Z")
    #expect(SnapshotName.parseStamp("20000229T000000Z") == Date(timeIntervalSince1970: 951_782_400))
    #expect(SnapshotName.stamp(Date(timeIntervalSince1970: 4_102_444_799)) == "20991231T235959Z")
  }

  @Test func sortsByTime() throws {
    let a = try #require(SnapshotName(fileName: "vaultkeeper-c-20251121T000000Z-9.snap"))
    let b = try #require(SnapshotName(fileName: "vaultkeeper-c-20251122T000000Z-1.snap"))
    #expect(a < b)
  }
}
