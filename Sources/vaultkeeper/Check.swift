// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import VaultKeeper

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
#endif

/// `vaultkeeper check`: a Monitoring Plugins (Nagios/Icinga) check.
struct Check: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Check every configured node once; Monitoring Plugins output and exit codes.",
    discussion: """
      Prints one status line with performance data, then one line per node. Exit 0 OK, \
      1 WARNING, 2 CRITICAL, 3 UNKNOWN (configuration error). The worst node decides. \
      State names: active, standby, perf-standby, dr-secondary, standby-unhealthy, sealed, \
      uninitialized, removed, unreachable, protocol-error.
      """)

  @OptionGroup var config: ConfigOption

  @Option(name: .customLong("ok"), help: ArgumentHelp("States that count as OK (comma-separated).", valueName: "states"))
  var okStates: String = "active,standby,perf-standby,dr-secondary"

  @Option(name: .customLong("warning"), help: ArgumentHelp("States that count as WARNING; any other state is CRITICAL.", valueName: "states"))
  var warningStates: String = "standby-unhealthy,uninitialized"

  @Option(help: ArgumentHelp("Latency (seconds) above which a node is WARNING.", valueName: "seconds"))
  var warnLatency: Double = 1

  @Option(help: ArgumentHelp("Latency (seconds) above which a node is CRITICAL.", valueName: "seconds"))
  var critLatency: Double = 3

  @Option(help: ArgumentHelp("With [snapshot]: age of the last good snapshot above which the check is WARNING (default: snapshot.stale_after).", valueName: "duration"))
  var snapshotWarning: String?

  @Option(help: ArgumentHelp("With [snapshot]: age above which it is CRITICAL (default: twice the warning age).", valueName: "duration"))
  var snapshotCritical: String?

  @Option(help: ArgumentHelp("The running daemon's state file, read for the snapshot age and the restore drill (default as for `vaultkeeper status`).", valueName: "path"))
  var stateFile: String?

  func run() async throws {
    // Monitoring Plugins report bad arguments as UNKNOWN (3), not as a usage error.
    // `unknown` is the daemon's "not looked at yet"; a check always looks.
    let known = NodeState.allCases.filter { $0 != .unknown }.map(\.name)
    for name in (okStates + "," + warningStates).split(separator: ",") where !known.contains(String(name)) {
      print("VAULT UNKNOWN: unknown state \"\(name)\" (known: \(known.joined(separator: ", ")))")
      throw ExitCode(3)
    }
    let loaded: Config
    do {
      loaded = try ConfigLoader().load(path: config.path)
    } catch {
      print("VAULT UNKNOWN: \(error)")
      throw ExitCode(3)
    }
    var snapshotThresholds: (Duration, Duration)?
    if let snapshot = loaded.snapshot, snapshot.enabled {
      guard let warn = snapshotWarning.map(DurationParsing.parse) ?? snapshot.staleAfter,
        let crit = snapshotCritical.map(DurationParsing.parse) ?? warn * 2
      else {
        print("VAULT UNKNOWN: --snapshot-warning/--snapshot-critical take durations such as \"26h\" or \"2d\"")
        throw ExitCode(3)
      }
      snapshotThresholds = (warn, crit)
    }
    let ok = Set(okStates.split(separator: ",").map(String.init))
    let warning = Set(warningStates.split(separator: ",").map(String.init))
    let results = await OneShot.withClients(loaded) { clients in
      var results: [(NodeConfig, HealthObservation)] = []
      for (node, client) in clients { results.append((node, await client.health())) }
      return results
    }
    var snapshotResult: SnapshotCheck.Result?
    if let snapshot = loaded.snapshot, let (warn, crit) = snapshotThresholds, let local = results.first {
      snapshotResult = SnapshotCheck.evaluate(
        snapshotKnowledge(snapshot), localState: local.1.state, now: Date(), warnAfter: warn, critAfter: crit)
    }
    var drillResult: DrillCheck.Result?
    if let snapshot = loaded.snapshot, snapshot.enabled, let drill = snapshot.drill, drill.enabled, let local = results.first {
      drillResult = DrillCheck.evaluate(drillKnowledge(snapshot, drill), localState: local.1.state, now: Date().timeIntervalSince1970, staleAfter: drill.staleAfter)
    }
    var certificateOutcome: CheckVerdict.Outcome?
    if let certificate = loaded.certificate, certificate.enabled {
      certificateOutcome = await CertCheck.outcome(loaded, certificate)
    }
    let outcome = CheckVerdict.evaluate(
      results.map { ($0.0.name, $0.1) }, ok: ok, warning: warning, warnLatency: warnLatency, critLatency: critLatency, snapshot: snapshotResult,
      certificate: certificateOutcome, drill: drillResult)
    print(outcome.text)
    throw ExitCode(Int32(outcome.code))
  }

  /// The running daemon's view first (its state file is world-readable, so the check works as
  /// any user, e.g. nagios); else what the duty recorded in the state directory; only without
  /// that record, the newest snapshot name in the directory that is not dated in the future.
  func snapshotKnowledge(_ config: SnapshotConfig) -> SnapshotCheck.Knowledge {
    if let live = Status.liveReport(stateFile)?.snapshot, live.phase != .standby || live.lastSuccess != nil {
      return .known(lastSuccess: live.lastSuccess.map { Date(timeIntervalSince1970: $0) }, trackingSince: live.trackingSince.map { Date(timeIntervalSince1970: $0) })
    }
    let ledgerPath = SnapshotLedger.path(config: config, environment: ProcessEnvironment.current())
    let ledger = SnapshotLedger.load(path: ledgerPath)
    let now = Date()
    // The ledger decides, as in the daemon (a record dated in the future is not believed). Only
    // without one do file names count, and never a name dated in the future.
    if let ledger { return .known(lastSuccess: ledger.believedLastSuccess(now: now), trackingSince: ledger.believedTrackingSince(now: now)) }
    guard access(config.directory, R_OK | X_OK) == 0 else {
      return .unreadable("cannot read \(config.directory) or \(ledgerPath) (run the check as root or as the vaultkeeper user)")
    }
    let newest = SnapshotDirectory.newest(SnapshotDirectory.list(config.directory), cluster: nil, now: now)?.name.time
    return .known(lastSuccess: newest, trackingSince: nil)
  }

  /// The running daemon's drill report first (world-readable), else the drill ledger in the
  /// state directory (root or the vaultkeeper user).
  func drillKnowledge(_ snapshot: SnapshotConfig, _ drill: SnapshotDrillConfig) -> DrillCheck.Knowledge {
    if let live = Status.liveReport(stateFile)?.drill { return .known(live) }
    let path = DrillLedger.path(snapshotLedgerPath: SnapshotLedger.path(config: snapshot, environment: ProcessEnvironment.current()))
    guard let ledger = DrillLedger.load(path: path) else {
      if access(path, F_OK) == 0 { return .unreadable("cannot read \(path) (run the check as root or as the vaultkeeper user)") }
      return .unreadable("no restore drill state in \(path): is vaultkeeper running with [snapshot.drill] enabled?")
    }
    var report = DrillDutyReport(phase: .idle, trackingSince: ledger.trackingSince, staleAfterSeconds: drill.staleAfter.seconds)
    report.apply(ledger)
    return .known(report)
  }
}
