// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing

@testable import VaultKeeper

@Suite struct DrillReportingTests {
  let now = 1_800_000_000.0
  let week = 7.0 * 86400

  func report(passedAgo: Double? = nil, failure: DrillFailure? = nil, trackingAgo: Double = 3600) -> DrillDutyReport {
    var ledger = DrillLedger(trackingSince: now - trackingAgo)
    if let passedAgo {
      let run = DrillLedger.Run(time: now - passedAgo, file: "a.snap", snapshotTime: now - passedAgo - 60, durationSeconds: 12)
      ledger.lastPassed = run
      ledger.lastRun = run
    }
    if let failure {
      ledger.lastRun = DrillLedger.Run(time: now - 60, file: "b.snap", snapshotTime: now - 120, durationSeconds: 3, failure: .init(failure))
    }
    var report = DrillDutyReport(phase: .idle, trackingSince: ledger.trackingSince, staleAfterSeconds: 2 * week)
    report.apply(ledger)
    return report
  }

  @Test func statusFragments() {
    #expect(report(passedAgo: 2 * 86400).statusFragment(now: now) == "restore drill ok 2d ago")
    #expect(report(passedAgo: 86400, failure: DrillFailure(.unseal, .sharesRejected)).statusFragment(now: now) == "restore drill FAILED (shares)")
    #expect(report(failure: DrillFailure(.start, .binary("x"))).statusFragment(now: now) == "restore drill FAILED (start)")
    #expect(report().statusFragment(now: now) == "no restore drill yet")
    #expect(report(passedAgo: 15 * 86400, trackingAgo: 30 * 86400).statusFragment(now: now) == "restore drill STALE: last passed 15d ago")
    #expect(report(trackingAgo: 15 * 86400).statusFragment(now: now) == "restore drill STALE: none passed yet")
    var running = report(passedAgo: 60)
    running.phase = .running
    #expect(running.statusFragment(now: now) == "restore drill running")
    var standby = report(failure: DrillFailure(.unseal, .sharesRejected))
    standby.phase = .standby
    #expect(standby.statusFragment(now: now) == nil)
  }

  @Test func statusLineCarriesTheFragment() {
    var daemon = DaemonReport(pid: 1, startedAt: now, updatedAt: now, configPath: "/c", nodes: [NodeReport(address: "n", state: .active, since: 0, lastCheck: now)])
    daemon.drill = report(passedAgo: 2 * 86400)
    #expect(StatusLine.render(daemon, now: now).hasSuffix(" · restore drill ok 2d ago"))
  }

  @Test func metricsNameEveryStage() {
    var daemon = DaemonReport(pid: 1, startedAt: now, updatedAt: now, configPath: "/c", nodes: [])
    var drill = report(passedAgo: 86400, failure: DrillFailure(.unseal, .sharesRejected))
    drill.failures = ["unseal": 2]
    drill.stale = true
    daemon.drill = drill
    let text = MetricsText.render(daemon)
    #expect(text.contains("vaultkeeper_snapshot_drill_last_success_timestamp_seconds \(Int(now - 86400))\n"))
    #expect(text.contains("vaultkeeper_snapshot_drill_duration_seconds 3\n"))
    for stage in DrillStage.allCases {
      #expect(text.contains("vaultkeeper_snapshot_drill_failures_total{stage=\"\(stage.rawValue)\"} \(stage == .unseal ? 2 : 0)\n"))
    }
    #expect(text.contains("vaultkeeper_snapshot_drill_last_failed_on_shares 1\n"))
    #expect(text.contains("vaultkeeper_snapshot_drill_stale 1\n"))
    daemon.drill = nil
    #expect(!MetricsText.render(daemon).contains("drill"))
  }

  @Test func stateFileRoundTrips() throws {
    var daemon = DaemonReport(pid: 1, startedAt: now, updatedAt: now, configPath: "/c", nodes: [])
    daemon.drill = report(passedAgo: 86400, failure: DrillFailure(.unseal, .tooFewShares(held: 2, threshold: 3)))
    let data = try JSONEncoder().encode(daemon)
    #expect(try JSONDecoder().decode(DaemonReport.self, from: data) == daemon)
    let text = String(decoding: data, as: UTF8.self)
    #expect(text.contains("\"last_failure_stage\":\"unseal\""))
    #expect(text.contains("\"last_failure_about_shares\":true"))
  }

  func check(_ report: DrillDutyReport, state: NodeState = .active) -> DrillCheck.Result {
    DrillCheck.evaluate(.known(report), localState: state, now: now, staleAfter: .seconds(Int64(2 * week)))
  }

  @Test func checkVerdicts() {
    #expect(check(report(passedAgo: 86400)).code == 0)
    #expect(check(report(passedAgo: 86400)).line == "OK: restore drill last passed 1d ago")
    let shares = check(report(passedAgo: 86400, failure: DrillFailure(.unseal, .sharesRejected)))
    #expect(shares.code == 2)
    #expect(shares.line.hasPrefix("CRITICAL: restore drill failed on the shares 1m ago: the shares we hold do not unseal this snapshot"))
    #expect(check(report(passedAgo: 86400, failure: DrillFailure(.start, .binary("gone")))).code == 1)
    let stale = check(report(passedAgo: 15 * 86400, trackingAgo: 30 * 86400))
    #expect(stale.code == 1)
    #expect(stale.line == "WARNING: restore drill last passed 15d ago (stale after 14d)")
    #expect(check(report(trackingAgo: 15 * 86400)).code == 1)
    #expect(check(report(trackingAgo: 86400)).code == 0, "a new installation is given stale_after for its first drill")
    #expect(check(report(failure: DrillFailure(.unseal, .sharesRejected)), state: .standby).code == 0, "a standby does not drill")
    #expect(DrillCheck.evaluate(.unreadable("no state"), localState: .active, now: now, staleAfter: .seconds(60)).code == 3)
  }

  @Test func checkVerdictFoldsTheDrillIn() {
    let node = HealthObservation(state: .active, latency: .milliseconds(10))
    let critical = check(report(passedAgo: 86400, failure: DrillFailure(.unseal, .sharesRejected)))
    let outcome = CheckVerdict.evaluate([("n", node)], ok: ["active"], warning: [], warnLatency: 1, critLatency: 3, drill: critical)
    #expect(outcome.code == 2)
    #expect(outcome.text.hasPrefix("VAULT CRITICAL: active, 1/1 nodes ok, restore drill FAILED on the shares |"))
    #expect(outcome.text.contains("'drill_age'=86400s;1209600;;0"))
    #expect(outcome.text.contains("\nCRITICAL: restore drill failed on the shares"))
    let unknown = DrillCheck.evaluate(.unreadable("x"), localState: .active, now: now, staleAfter: .seconds(60))
    #expect(CheckVerdict.evaluate([("n", node)], ok: ["active"], warning: [], warnLatency: 1, critLatency: 3, drill: unknown).code == 3)
    #expect(CheckVerdict.evaluate([("n", node)], ok: ["active"], warning: [], warnLatency: 1, critLatency: 3, drill: check(report(passedAgo: 60))).code == 0)
  }
}
