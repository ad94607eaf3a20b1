// SPDX-License-Identifier: Apache-2.0
/// The Monitoring Plugins verdict for `vaultkeeper check`. Pure, so every combination is
/// unit-tested: the worst node decides, perfdata carries every node's latency.
public enum CheckVerdict {
  public struct Outcome: Sendable, Equatable {
    /// 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    public var code: Int
    public var text: String
  }

  public static let words = ["OK", "WARNING", "CRITICAL", "UNKNOWN"]

  /// - Parameter snapshot: the snapshot freshness verdict when `[snapshot]` is enabled. It can
  ///   raise the verdict to WARNING/CRITICAL; its UNKNOWN (unreadable state) only replaces an OK,
  ///   so it never hides a real problem.
  public static func evaluate(_ nodes: [(name: String, observation: HealthObservation)], ok: Set<String>, warning: Set<String>,
    warnLatency: Double, critLatency: Double, snapshot: SnapshotCheck.Result? = nil, certificate: Outcome? = nil, drill: DrillCheck.Result? = nil) -> Outcome
  {
    guard !nodes.isEmpty else { return Outcome(code: 3, text: "VAULT UNKNOWN: no nodes configured") }
    var worst = 0
    var lines: [String] = []
    var perf: [String] = []
    var okCount = 0
    for (index, entry) in nodes.enumerated() {
      let observation = entry.observation
      let latency = observation.latency.seconds
      var code = ok.contains(observation.state.name) ? 0 : (warning.contains(observation.state.name) ? 1 : 2)
      if !observation.state.isFailure {
        if latency >= critLatency { code = max(code, 2) } else if latency >= warnLatency { code = max(code, 1) }
      }
      if code == 0 { okCount += 1 }
      worst = max(worst, code)
      var line = "\(words[code]): \(entry.name) \(observation.state.name)"
      if let version = observation.version { line += " (\(version))" }
      if let problem = observation.problem { line += ": \(problem)" }
      lines.append(line)
      let label = index == 0 ? "latency" : "latency_\(index)"
      perf.append("'\(label)'=\(formatSeconds(latency))s;\(formatSeconds(warnLatency));\(formatSeconds(critLatency));0")
    }
    let first = nodes[0].observation
    // UNKNOWN (state that cannot be read) only replaces an OK; it never hides a WARNING or
    // CRITICAL, whichever part reports it.
    let extra = [snapshot?.code, certificate?.code, drill?.code].compactMap { $0 }
    worst = max(worst, extra.filter { $0 != 3 }.max() ?? 0)
    if worst == 0, extra.contains(3) { worst = 3 }
    var summary = "VAULT \(words[worst]): \(first.state.name)"
    if let version = first.version { summary += " (\(version))" }
    summary += ", \(okCount)/\(nodes.count) nodes ok"
    perf.append("'nodes_ok'=\(okCount);;;0;\(nodes.count)")
    if let snapshot {
      if snapshot.code != 0 { summary += ", backups \(snapshot.code == 3 ? "unknown" : "stale")" }
      lines.append(snapshot.line)
      if let age = snapshot.ageSeconds {
        perf.append("'snapshot_age'=\(formatSeconds(age.rounded()))s;\(formatSeconds(snapshot.warnSeconds));\(formatSeconds(snapshot.critSeconds));0")
      }
    }
    if let certificate {
      // Its first line is "CERT WORD: summary | perfdata"; the rest are detail lines.
      let first = certificate.text.split(separator: "\n", maxSplits: 1).first.map(String.init) ?? ""
      let parts = first.split(separator: "|", maxSplits: 1).map { String($0).trimmingWhitespace() }
      if certificate.code != 0 { summary += ", certificate \(words[certificate.code].lowercased())" }
      lines.append("\(words[certificate.code]): certificate: " + (parts.first.map { String($0.drop { $0 != ":" }.dropFirst()).trimmingWhitespace() } ?? ""))
      if parts.count > 1 { perf.append(parts[1]) }
    }
    if let drill {
      if drill.code != 0 { summary += ", restore drill " + ["ok", "stale or failed", "FAILED on the shares", "unknown"][drill.code] }
      lines.append(drill.line)
      if let age = drill.ageSeconds { perf.append("'drill_age'=\(formatSeconds(age.rounded()))s;\(formatSeconds(drill.staleSeconds));;0") }
    }
    return Outcome(code: worst, text: ([summary + " | " + perf.joined(separator: " ")] + lines).joined(separator: "\n"))
  }

  static func formatSeconds(_ value: Double) -> String {
    let micro = Int((value * 1_000_000).rounded())
    let whole = micro / 1_000_000
    var fraction = String(micro % 1_000_000)
    while fraction.count < 6 { fraction = "0" + fraction }
    while fraction.hasSuffix("0") { fraction.removeLast() }
    return fraction.isEmpty ? "\(whole)" : "\(whole).\(fraction)"
  }
}
