// SPDX-License-Identifier: Apache-2.0
/// The one-line `STATUS=` an operator reads in `systemctl status`, e.g.
/// `vault active (1.15.0) · unsealed 3m ago · 2/2 nodes ok`.
/// The local node leads; the first peer that is not ok is named (in configuration order).
public enum StatusLine {
  public static func render(_ report: DaemonReport, now: Double) -> String {
    guard let local = report.nodes.first else { return "no nodes configured" }
    var parts: [String] = []
    var head = "vault \(local.state.name)"
    if let version = local.version { head += " (\(version))" }
    if let hold = local.hold { head += ", \(hold)" }
    parts.append(head)
    if let unsealed = report.nodes.compactMap(\.lastUnsealTime).max() {
      parts.append("unsealed \(DurationParsing.humanize(.seconds(max(now - unsealed, 0)))) ago")
    }
    let ok = report.nodes.filter { $0.state.isHealthy }.count
    var nodesPart = "\(ok)/\(report.nodes.count) nodes ok"
    let troubled = report.nodes.dropFirst().filter { !$0.state.isHealthy }
    if let first = troubled.first {
      nodesPart += " (\(first.address) \(first.state.name)\(troubled.count > 1 ? ", +\(troubled.count - 1) more" : ""))"
    }
    parts.append(nodesPart)
    if let fragment = report.snapshot?.statusFragment(now: now) { parts.append(fragment) }
    if let fragment = report.certificate?.statusFragment(now: now) { parts.append(fragment) }
    if let fragment = report.drill?.statusFragment(now: now) { parts.append(fragment) }
    return String(parts.joined(separator: " · ").prefix(400))
  }
}
