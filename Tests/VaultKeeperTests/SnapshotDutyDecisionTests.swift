// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
@testable import VaultKeeper

@Suite struct TokenLifetimeTests {
  let t0 = ContinuousClock.now

  @Test func staticTokenIsAlwaysUsed() {
    let life = TokenLifetime(issued: t0, ttl: .zero, renewable: false)
    #expect(life.action(at: t0.advanced(by: .seconds(86400 * 365))) == .use)
    #expect(life.refreshDue == nil)
  }

  static let hourCases: [(Int, Bool, TokenLifetime.Action)] = [
    (0, true, .use), (599, true, .use), (2399, true, .use), (2400, true, .renew), (3599, true, .renew),
    (3600, true, .login), (9999, true, .login), (2399, false, .use), (2400, false, .login), (3600, false, .login),
  ]

  @Test(arguments: hourCases)
  func actionsOverAnHourLongToken(elapsed: Int, renewable: Bool, expected: TokenLifetime.Action) {
    let life = TokenLifetime(issued: t0, ttl: .seconds(3600), renewable: renewable)
    #expect(life.action(at: t0.advanced(by: .seconds(elapsed))) == expected)
    #expect(life.refreshDue == t0.advanced(by: .seconds(2400)))
  }

  @Test func renewalThatExtendsStaysRenewable() {
    let life = TokenLifetime(issued: t0, ttl: .seconds(3600), renewable: true)
    let now = t0.advanced(by: .seconds(2500))
    let renewed = life.renewed(at: now, newTTL: .seconds(3600), renewable: true)
    #expect(renewed.renewable)
    #expect(renewed.issued == now)
    #expect(renewed.action(at: now.advanced(by: .seconds(100))) == .use)
  }

  @Test func renewalCappedByMaxTTLMeansLoginNext() {
    // 1100 s were left; Vault's max_ttl allowed only 1000 more: renewing again cannot help.
    let life = TokenLifetime(issued: t0, ttl: .seconds(3600), renewable: true)
    let now = t0.advanced(by: .seconds(2500))
    let capped = life.renewed(at: now, newTTL: .seconds(1000), renewable: true)
    #expect(!capped.renewable)
    #expect(capped.action(at: now.advanced(by: .seconds(700))) == .login)
    // Vault saying "not renewable" wins even when the TTL grew.
    #expect(!life.renewed(at: now, newTTL: .seconds(3600), renewable: false).renewable)
  }

  @Test func shortTokenAsOpenBaoCapsIt() {
    // token_ttl=3s, token_max_ttl=8s, as OpenBao 2.7 answered: 3, 3, then "capped to 2s" with
    // only ~1.3 s really left (max TTL counted from a creation time in whole seconds).
    var life = TokenLifetime(issued: t0, ttl: .seconds(3), renewable: true)
    #expect(life.refreshDue == t0.advanced(by: .seconds(2)))
    var now = t0.advanced(by: .seconds(2))
    #expect(life.action(at: now) == .renew)
    life = life.renewed(at: now, newTTL: .seconds(3), renewable: true)
    #expect(life.renewable && !life.capped)
    now = now.advanced(by: .seconds(2))
    life = life.renewed(at: now, newTTL: .seconds(3), renewable: true)
    now = now.advanced(by: .seconds(2))
    // Capped: never renewed again (OpenBao would answer 500 "past the max TTL"), and replaced
    // by a login a second before the rounded TTL runs out, not at two thirds of it.
    life = life.renewed(at: now, newTTL: .seconds(2), renewable: true)
    #expect(life.capped && !life.renewable)
    #expect(life.refreshDue == now.advanced(by: .seconds(1)))
    #expect(life.action(at: now.advanced(by: .milliseconds(999))) == .use)
    #expect(life.action(at: now.advanced(by: .seconds(1))) == .login)
    // Capped to one second: replace it at once.
    let last = life.renewed(at: now, newTTL: .seconds(1), renewable: true)
    #expect(last.refreshDue == now && last.action(at: now) == .login)
  }

  @Test func aLoginIsNeverRefreshedAtOnceHoweverShortItsTTL() {
    // A role with token_ttl=1s: two thirds of it, not "a second early" (that would log in again
    // and again in a loop).
    let life = TokenLifetime(issued: t0, ttl: .seconds(1), renewable: true)
    #expect(!life.capped)
    #expect(life.refreshDue == t0.advanced(by: .seconds(1) * 2 / 3))
    #expect(life.action(at: t0) == .use)
  }
}

@Suite struct SnapshotPlanTests {
  static let roles: [(NodeState, SnapshotPlan.Role)] = [
    (.active, .take), (.standby, .standby), (.performanceStandby, .standby), (.drSecondary, .standby),
    (.sealed, .unavailable("vault is sealed")), (.unreachable, .unavailable("vault is unreachable")),
    (.standbyUnhealthy, .unavailable("vault is standby-unhealthy")), (.unknown, .unavailable("vault's state is not known yet")),
  ]

  @Test(arguments: roles)
  func onlyTheActiveNodeTakes(state: NodeState, role: SnapshotPlan.Role) {
    #expect(SnapshotPlan.role(localState: state) == role)
  }

  @Test func retryBackoffDoublesToTheCadenceCap() {
    let hour = Duration.seconds(3600)
    let delays = (1...9).map { SnapshotPlan.retryDelay(failures: $0, cadence: hour) }
    #expect(delays == [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600].map { Duration.seconds($0) })
    // A daily schedule still retries within an hour at most.
    #expect(SnapshotPlan.retryDelay(failures: 20, cadence: .seconds(86400)) == .seconds(3600))
    // Test-grade cadences retry within the cadence.
    #expect(SnapshotPlan.retryDelay(failures: 1, cadence: .seconds(2)) == .seconds(1))
    #expect(SnapshotPlan.retryDelay(failures: 5, cadence: .seconds(2)) == .seconds(2))
    #expect(SnapshotPlan.retryDelay(failures: 0, cadence: hour) == .seconds(60))
  }

  @Test func staleness() {
    let now = Date(timeIntervalSince1970: 1_800_000_000)
    let since = now.addingTimeInterval(-10 * 86400)
    let limit = Duration.seconds(3 * 3600)
    #expect(!SnapshotPlan.isStale(lastSuccess: now.addingTimeInterval(-3 * 3600), trackingSince: since, staleAfter: limit, now: now))
    #expect(SnapshotPlan.isStale(lastSuccess: now.addingTimeInterval(-3 * 3600 - 1), trackingSince: since, staleAfter: limit, now: now))
    // Never a snapshot: counted from when the duty started waiting.
    #expect(SnapshotPlan.isStale(lastSuccess: nil, trackingSince: since, staleAfter: limit, now: now))
    #expect(!SnapshotPlan.isStale(lastSuccess: nil, trackingSince: now.addingTimeInterval(-60), staleAfter: limit, now: now))
  }

  @Test func cadence() throws {
    #expect(SnapshotSchedule(interval: .seconds(3600), dailyAt: nil, randomizedDelay: .zero).cadence == .seconds(3600))
    #expect(SnapshotSchedule(interval: nil, dailyAt: SnapshotSchedule.TimeOfDay("03:00"), randomizedDelay: .zero).cadence == .seconds(86400))
    #expect(SnapshotSchedule(interval: .seconds(7 * 86400), dailyAt: SnapshotSchedule.TimeOfDay("03:00"), randomizedDelay: .zero).cadence == .seconds(86400))
  }
}

@Suite struct SnapshotLedgerTests {
  let t = Date(timeIntervalSince1970: 1_800_000_000)

  @Test func newestOfLedgerAndDirectoryWins() {
    var ledger = SnapshotLedger(trackingSince: 0)
    #expect(ledger.lastSuccessTime(newestInDirectory: nil) == nil)
    #expect(ledger.lastSuccessTime(newestInDirectory: t) == t)
    ledger.lastSuccess = .init(time: t.timeIntervalSince1970, file: "f", raftIndex: 1, bytes: 2, durationSeconds: 3)
    #expect(ledger.lastSuccessTime(newestInDirectory: nil) == t)
    #expect(ledger.lastSuccessTime(newestInDirectory: t.addingTimeInterval(-60)) == t)  // pruned or older
    #expect(ledger.lastSuccessTime(newestInDirectory: t.addingTimeInterval(60)) == t.addingTimeInterval(60))  // `snapshot now`
  }

  @Test func roundTripIsPrivateAndDurable() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vk-ledger-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let path = "\(dir)/snapshot-state.json"
    #expect(SnapshotLedger.load(path: path) == nil)
    let ledger = SnapshotLedger(
      lastSuccess: .init(time: 1, file: "a.snap", raftIndex: 7, bytes: 9, durationSeconds: 0.5),
      lastFailure: .init(time: 2, reason: "space", message: "m"), trackingSince: 0.25)
    try ledger.save(path: path)
    #expect(SnapshotLedger.load(path: path) == ledger)
    let mode = try #require(FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
    #expect(mode == 0o600)
    try Data("{not json".utf8).write(to: URL(fileURLWithPath: path))
    #expect(SnapshotLedger.load(path: path) == nil)  // a damaged ledger is replaced, not fatal
  }

  @Test func pathResolution() {
    var config = SnapshotConfig(
      enabled: true, directory: "/srv/snaps", auth: .token(.file("/t")), schedule: .init(interval: .seconds(60), dailyAt: nil, randomizedDelay: .zero),
      retention: .init(), minFreeBytes: 0, staleAfter: .seconds(60), maxDuration: nil, stateFile: nil)
    #expect(SnapshotLedger.path(config: config, environment: ["STATE_DIRECTORY": "/var/lib/vaultkeeper:/other"]) == "/var/lib/vaultkeeper/snapshot-state.json")
    config.stateFile = "/etc/x.json"
    #expect(SnapshotLedger.path(config: config, environment: ["STATE_DIRECTORY": "/var/lib/vaultkeeper"]) == "/etc/x.json")
  }
}

@Suite struct SnapshotDirectoryRetentionTests {
  @Test func deletesOnlyOurOldFilesAndLeftovers() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vk-ret-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let names = (0..<4).map { SnapshotName(cluster: "c", time: Date(timeIntervalSince1970: 1_800_000_000 + Double($0) * 3600), raftIndex: UInt64($0), encrypted: false).fileName }
    for name in names + ["notes.txt", "vaultkeeper-c-garbage.snap", ".vaultkeeper-snapshot-abc.tmp"] {
      _ = FileManager.default.createFile(atPath: "\(dir)/\(name)", contents: Data("x".utf8))
    }
    let deleted = SnapshotDirectory.applyRetention(
      RetentionPolicy(keepLast: 2), directory: dir, now: Date(timeIntervalSince1970: 1_800_020_000), cluster: "c", justWritten: nil
    ).deletions
    #expect(deleted.map(\.fileName).sorted() == names.prefix(2).sorted())
    #expect(deleted.allSatisfy { $0.error == nil })
    #expect(SnapshotDirectory.removeLeftovers(dir) == [".vaultkeeper-snapshot-abc.tmp"])
    let left = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
    #expect(left == (Array(names.suffix(2)) + ["notes.txt", "vaultkeeper-c-garbage.snap"]).sorted())
    // A policy that would delete everything still keeps the newest.
    let all = SnapshotDirectory.applyRetention(
      RetentionPolicy(maxAge: .seconds(3600)), directory: dir, now: Date(timeIntervalSince1970: 1_900_000_000), cluster: "c", justWritten: nil
    ).deletions
    #expect(all.map(\.fileName) == [names[2]])
  }
}

@Suite struct SnapshotLeftoverTests {
  @Test func aTemporaryFileBeingWrittenIsNotALeftover() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vk-left-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    // Another process's download in progress (its writer holds the lock) vs. a killed run's file.
    let live = try SnapshotFileWriter(directory: dir)
    _ = FileManager.default.createFile(atPath: "\(dir)/.vaultkeeper-snapshot-killed.tmp", contents: Data("x".utf8))
    #expect(SnapshotDirectory.removeLeftovers(dir) == [".vaultkeeper-snapshot-killed.tmp"])
    #expect(FileManager.default.fileExists(atPath: live.temporaryPath))
    live.abort()
    #expect(!FileManager.default.fileExists(atPath: live.temporaryPath))
  }
}

@Suite struct SnapshotReportingTests {
  let now = 1_800_000_000.0

  @Test func statusFragments() {
    var r = SnapshotReport(phase: .idle, staleAfterSeconds: 10800)
    #expect(r.statusFragment(now: now) == "no snapshot yet")
    r.lastSuccess = now - 23 * 60
    #expect(r.statusFragment(now: now) == "snapshot 23m ago")
    r.consecutiveFailures = 1
    r.lastFailureReason = "space"
    #expect(r.statusFragment(now: now) == "snapshot 23m ago (last attempt failed: space)")
    r.phase = .running
    #expect(r.statusFragment(now: now) == "snapshot running")
    r.stale = true
    r.lastSuccess = now - 26 * 3600
    #expect(r.statusFragment(now: now) == "backups STALE: last snapshot 1d2h ago")
    r.phase = .standby
    #expect(r.statusFragment(now: now) == nil)
  }

  @Test func statusLineCarriesTheSnapshot() {
    var report = DaemonReport(pid: 1, startedAt: 0, updatedAt: 0, configPath: "/c", nodes: [NodeReport(address: "https://v:8200", state: .active, since: 0, lastCheck: 0)])
    var snap = SnapshotReport(phase: .idle, staleAfterSeconds: 60)
    snap.lastSuccess = now - 120
    report.snapshot = snap
    #expect(StatusLine.render(report, now: now) == "vault active · 1/1 nodes ok · snapshot 2m ago")
  }

  @Test func metrics() {
    var report = DaemonReport(pid: 1, startedAt: 0, updatedAt: 0, configPath: "/c", nodes: [])
    #expect(!MetricsText.render(report).contains("snapshot"))
    var snap = SnapshotReport(phase: .idle, staleAfterSeconds: 60)
    snap.lastSuccess = 1_800_000_000
    snap.lastBytes = 4096
    snap.lastDurationSeconds = 1.5
    snap.failures = ["space": 2]
    snap.stale = true
    report.snapshot = snap
    let text = MetricsText.render(report)
    #expect(text.contains("\nvaultkeeper_snapshot_last_success_timestamp_seconds 1800000000\n"))
    #expect(text.contains("\nvaultkeeper_snapshot_last_size_bytes 4096\n"))
    #expect(text.contains("\nvaultkeeper_snapshot_last_duration_seconds 1.5\n"))
    #expect(text.contains("\nvaultkeeper_snapshot_failures_total{reason=\"space\"} 2\n"))
    #expect(text.contains("\nvaultkeeper_snapshot_failures_total{reason=\"verification\"} 0\n"))
    #expect(text.contains("\nvaultkeeper_snapshot_stale 1\n"))
  }

  static let ages: [(Double, NodeState, Int)] = [
    (3600, .active, 0), (10801, .active, 1), (21601, .active, 2), (21601, .sealed, 2), (356_400, .standby, 0),
  ]

  @Test(arguments: ages)
  func checkThresholds(age: Double, state: NodeState, code: Int) {
    let now = Date(timeIntervalSince1970: 1_800_000_000)
    let result = SnapshotCheck.evaluate(
      .known(lastSuccess: now.addingTimeInterval(-age), trackingSince: nil), localState: state, now: now, warnAfter: .seconds(3 * 3600),
      critAfter: .seconds(6 * 3600))
    #expect(result.code == code)
  }

  @Test func checkWithoutSnapshots() {
    let now = Date(timeIntervalSince1970: 1_800_000_000)
    let warn = Duration.seconds(3600)
    let crit = Duration.seconds(7200)
    #expect(SnapshotCheck.evaluate(.known(lastSuccess: nil, trackingSince: nil), localState: .active, now: now, warnAfter: warn, critAfter: crit).code == 2)
    #expect(SnapshotCheck.evaluate(.known(lastSuccess: nil, trackingSince: now.addingTimeInterval(-60)), localState: .active, now: now, warnAfter: warn, critAfter: crit).code == 0)
    let unreadable = SnapshotCheck.evaluate(.unreadable("cannot read"), localState: .active, now: now, warnAfter: warn, critAfter: crit)
    #expect(unreadable.code == 3)
    // UNKNOWN replaces an OK, never a CRITICAL.
    let node = HealthObservation(state: .sealed, latency: .milliseconds(5))
    let verdict = CheckVerdict.evaluate([("v", node)], ok: ["active"], warning: [], warnLatency: 1, critLatency: 3, snapshot: unreadable)
    #expect(verdict.code == 2)
    let stale = SnapshotCheck.evaluate(.known(lastSuccess: now.addingTimeInterval(-5000), trackingSince: nil), localState: .active, now: now, warnAfter: warn, critAfter: crit)
    let active = HealthObservation(state: .active, latency: .milliseconds(5))
    let warned = CheckVerdict.evaluate([("v", active)], ok: ["active"], warning: [], warnLatency: 1, critLatency: 3, snapshot: stale)
    #expect(warned.code == 1)
    #expect(warned.text.hasPrefix("VAULT WARNING: active, 1/1 nodes ok, backups stale | "))
    #expect(warned.text.contains("'snapshot_age'=5000s;3600;7200;0"))
    #expect(warned.text.contains("\nWARNING: snapshots: last good snapshot 1h23m old (warning after 1h)"))
  }
}
