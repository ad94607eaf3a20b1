// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import VaultKeeper

/// `vaultkeeper status`: the running daemon's view, read from the state file it writes
/// atomically in its runtime directory (no IPC, works for any user who can read the file).
struct Status: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Show the running daemon's view of every node.",
    discussion: "Exit 0 when the daemon's state could be read, 3 when it is not running or its state file is missing or stale (not updated for 2 minutes).")

  @Option(help: ArgumentHelp("State file written by `vaultkeeper run`.", valueName: "path"))
  var stateFile: String?

  @Flag(help: "Print the state as JSON.")
  var json = false

  func run() async throws {
    let path = Self.stateFilePath(stateFile)
    let report: DaemonReport
    do {
      let bytes = try FileAccess.readBytes(path: path, limit: 4 << 20)
      report = try JSONDecoder().decode(DaemonReport.self, from: Data(bytes))
    } catch {
      printError("vaultkeeper status: cannot read \(path): \(error) (is `vaultkeeper run` running?)")
      throw ExitCode(3)
    }
    let now = Date().timeIntervalSince1970
    // EPERM means the process exists but belongs to another user (the daemon's): running.
    let running = kill(report.pid, 0) == 0 || errno == EPERM
    // The daemon rewrites the file at least every few seconds while its duties run.
    let stale = now - report.updatedAt > 120
    if json {
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
      print(String(decoding: try encoder.encode(report), as: UTF8.self))
    } else {
      print(StatusLine.render(report, now: now))
      print("daemon pid \(report.pid)\(running ? "" : " (not running)")\(stale ? " (state is stale)" : ""), config \(report.configPath), updated \(DurationParsing.humanize(.seconds(max(now - report.updatedAt, 0)))) ago")
      for node in report.nodes {
        var line = "  \(node.address): \(node.state.name)"
        if let version = node.version { line += " \(version)" }
        if node.since > 0 { line += ", since \(DurationParsing.humanize(.seconds(max(now - node.since, 0)))) ago" }
        if let hold = node.hold { line += ", \(hold)" }
        if let problem = node.problem { line += " — \(problem)" }
        print(line)
      }
      for target in report.notifications ?? [] {
        var line = "  notify \(target.name): \(target.delivered) delivered, \(target.failed) failed, \(target.dropped) dropped"
        if let last = target.lastFailure { line += ", last failure \(DurationParsing.humanize(.seconds(max(now - last, 0)))) ago" }
        print(line)
      }
    }
    if !running || stale { throw ExitCode(3) }
  }

  /// `--state-file`, else `$RUNTIME_DIRECTORY/state.json`, else the unit's runtime directory.
  static func stateFilePath(_ explicit: String?) -> String {
    let runtime = ProcessEnvironment.current()["RUNTIME_DIRECTORY"]?.split(separator: ":").first.map(String.init)
    return explicit ?? runtime.map { "\($0)/state.json" } ?? "/run/vaultkeeper/state.json"
  }

  /// The running daemon's report, if its state file is readable and fresh (nil otherwise).
  static func liveReport(_ explicit: String?) -> DaemonReport? {
    guard let bytes = try? FileAccess.readBytes(path: stateFilePath(explicit), limit: 4 << 20),
      let report = try? JSONDecoder().decode(DaemonReport.self, from: Data(bytes)),
      Date().timeIntervalSince1970 - report.updatedAt <= 120, kill(report.pid, 0) == 0 || errno == EPERM
    else { return nil }
    return report
  }
}
