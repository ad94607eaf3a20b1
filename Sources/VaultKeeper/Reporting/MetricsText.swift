// SPDX-License-Identifier: Apache-2.0
/// Renders the Prometheus text exposition for node_exporter's textfile collector. Pure: the
/// daemon writes the result atomically (`vaultkeeper.prom`). Metric names follow Prometheus
/// conventions (prefix, base units, `_total` counters); labels are the node address only.
public enum MetricsText {
  public static let unsealResults = ["success", "wrong_key", "error", "duplicate"]

  public static func render(_ report: DaemonReport) -> String {
    var out = ""
    func family(_ name: String, _ type: String, _ help: String, _ samples: [(labels: String, value: String)]) {
      out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
      for sample in samples { out += sample.labels.isEmpty ? "\(name) \(sample.value)\n" : "\(name){\(sample.labels)} \(sample.value)\n" }
    }
    func label(_ node: NodeReport) -> String { "node=\"\(escape(node.address))\"" }
    family("vaultkeeper_vault_up", "gauge", "1 if the node answered its last health check with a Vault status.",
      report.nodes.map { (label($0), $0.state.answered ? "1" : "0") })
    family("vaultkeeper_vault_sealed", "gauge", "1 if the node reports itself sealed.",
      report.nodes.map { (label($0), $0.state == .sealed ? "1" : "0") })
    family("vaultkeeper_vault_health_status", "gauge", "1 for the node's current health state, 0 for the others.",
      report.nodes.flatMap { node in NodeState.allCases.map { ("\(label(node)),state=\"\($0.name)\"", node.state == $0 ? "1" : "0") } })
    family("vaultkeeper_health_check_duration_seconds", "gauge", "Duration of the last health check.",
      report.nodes.map { (label($0), format($0.latencyMilliseconds / 1000)) })
    family("vaultkeeper_health_check_timestamp_seconds", "gauge", "Time of the last health check.",
      report.nodes.map { (label($0), format($0.lastCheck)) })
    family("vaultkeeper_unseal_attempts_total", "counter", "Unseal share submissions by result.",
      report.nodes.flatMap { node in unsealResults.map { ("\(label(node)),result=\"\($0)\"", "\(node.unsealAttempts[$0] ?? 0)") } })
    family("vaultkeeper_last_unseal_timestamp_seconds", "gauge", "Time vaultkeeper last unsealed the node (0 = never).",
      report.nodes.map { (label($0), format($0.lastUnsealTime ?? 0)) })
    family("vaultkeeper_unseal_held", "gauge", "1 while a sealed node is deliberately left sealed (operator seal, wrong key, too few shares).",
      report.nodes.map { (label($0), $0.hold == nil ? "0" : "1") })
    if let dropped = report.notifyDatagramsDropped {
      family("vaultkeeper_notify_datagrams_dropped_total", "counter",
        "sd_notify datagrams dropped because systemd did not read the notify socket and the queue stayed full.",
        [("", "\(dropped)")])
    }
    if let snapshot = report.snapshot { renderSnapshot(snapshot, family) }
    if let certificate = report.certificate { renderCertificate(certificate, family) }
    if let drill = report.drill { renderDrill(drill, family) }
    if let targets = report.notifications, !targets.isEmpty {
      family("vaultkeeper_notifications_total", "counter",
        "[[notify]] messages since start, by target and result (delivered; failed: given up after retries or refused; dropped: queue full).",
        targets.flatMap { t in
          [("delivered", t.delivered), ("failed", t.failed), ("dropped", t.dropped)].map {
            ("target=\"\(escape(t.name))\",result=\"\($0.0)\"", "\($0.1)")
          }
        })
    }
    return out
  }

  /// Snapshot reasons, always all rendered so `rate()` and alerts see a 0 before the first failure.
  public static let snapshotFailureReasons = ["credentials", "auth", "vault", "verification", "disk", "space", "upload"]

  private static func renderSnapshot(_ s: SnapshotReport, _ family: (String, String, String, [(labels: String, value: String)]) -> Void) {
    family("vaultkeeper_snapshot_last_success_timestamp_seconds", "gauge", "Time of the last good (verified) snapshot (0 = none yet).",
      [("", format(s.lastSuccess ?? 0))])
    family("vaultkeeper_snapshot_last_duration_seconds", "gauge", "Duration of the last good snapshot (download, verification, fsync).",
      [("", format(s.lastDurationSeconds ?? 0))])
    family("vaultkeeper_snapshot_last_size_bytes", "gauge", "Size of the last good snapshot file.", [("", "\(s.lastBytes ?? 0)")])
    family("vaultkeeper_snapshot_last_raft_index", "gauge", "Raft index of the last good snapshot.", [("", "\(s.lastRaftIndex ?? 0)")])
    let reasons = snapshotFailureReasons + s.failures.keys.filter { !snapshotFailureReasons.contains($0) }.sorted()
    family("vaultkeeper_snapshot_failures_total", "counter", "Failed snapshots since vaultkeeper started, by reason.",
      reasons.map { ("reason=\"\(escape($0))\"", "\(s.failures[$0] ?? 0)") })
    family("vaultkeeper_snapshot_stale", "gauge", "1 while no good snapshot is younger than stale_after.", [("", s.stale ? "1" : "0")])
    family("vaultkeeper_snapshot_next_due_timestamp_seconds", "gauge", "When the next scheduled snapshot is due (0 = not this node's job).",
      [("", format(s.nextDue ?? 0))])
    family("vaultkeeper_snapshot_retention_deleted_total", "counter", "Snapshots deleted by the retention policy since start.",
      [("", "\(s.retentionDeleted)")])
    family("vaultkeeper_snapshot_last_upload_timestamp_seconds", "gauge", "Time of the last verified upload to object storage (0 = none).",
      [("", format(s.lastUpload ?? 0))])
    family("vaultkeeper_snapshot_future_dated", "gauge", "Snapshot names dated in the future (locally or in the bucket): not counted, never deleted.",
      [("", "\(s.futureDated ?? 0)")])
  }

  /// Every stage is rendered, so `increase()` and alerts see a 0 before the first failure.
  private static func renderDrill(_ d: DrillDutyReport, _ family: (String, String, String, [(labels: String, value: String)]) -> Void) {
    family("vaultkeeper_snapshot_drill_last_success_timestamp_seconds", "gauge",
      "Time the last restore drill passed: a snapshot restored into a throwaway server and unsealed with the shares vaultkeeper holds (0 = none yet).",
      [("", format(d.lastPassed ?? 0))])
    family("vaultkeeper_snapshot_drill_duration_seconds", "gauge", "Duration of the last finished restore drill, passed or failed.",
      [("", format(d.lastDurationSeconds ?? 0))])
    family("vaultkeeper_snapshot_drill_failures_total", "counter", "Failed restore drills since vaultkeeper started, by the stage that failed.",
      DrillStage.allCases.map { ("stage=\"\($0.rawValue)\"", "\(d.failures[$0.rawValue] ?? 0)") })
    family("vaultkeeper_snapshot_drill_last_failed_on_shares", "gauge",
      "1 while the last restore drill failed because the shares vaultkeeper holds do not unseal the snapshot (rekeyed, or another cluster).",
      [("", d.lastResult == .failed && d.lastFailureAboutShares == true ? "1" : "0")])
    family("vaultkeeper_snapshot_drill_stale", "gauge",
      "1 while no restore drill passed within [snapshot.drill] stale_after (counted from when drills began to be tracked).",
      [("", d.stale ? "1" : "0")])
  }

  private static func renderCertificate(_ c: CertificateReport, _ family: (String, String, String, [(labels: String, value: String)]) -> Void) {
    var expiry: [(labels: String, value: String)] = []
    if let file = c.fileNotAfter { expiry.append(("source=\"file\"", format(file))) }
    if let served = c.servedNotAfter { expiry.append(("source=\"served\"", format(served))) }
    family("vaultkeeper_certificate_expiry_timestamp_seconds", "gauge", "notAfter of the certificate in cert_file and of the one Vault serves.", expiry)
    family("vaultkeeper_certificate_valid", "gauge", "1 if the certificate files pass every check before a reload (key, chain, validity, names).",
      [("", c.state == .unknown ? "0" : (c.problems.isEmpty ? "1" : "0"))])
    family("vaultkeeper_certificate_served_matches_file", "gauge", "1 if Vault serves the certificate in cert_file (by SHA-256).",
      [("", c.servedSHA256 != nil && c.servedSHA256 == c.fileSHA256 ? "1" : "0")])
    family("vaultkeeper_certificate_reloads_total", "counter", "Reloads of Vault for a renewed certificate since start, by result.",
      CertificateReloadResult.allCases.map { ("result=\"\($0.rawValue)\"", "\(c.reloads[$0] ?? 0)") })
    family("vaultkeeper_certificate_watch_inotify", "gauge",
      "1 while inotify follows the certificate files, 0 when only the check_interval re-check does (inotify unavailable or failed).",
      [("", c.watching == .inotify ? "1" : "0")])
  }

  static func escape(_ value: String) -> String {
    value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
  }

  static func format(_ value: Double) -> String {
    if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
    return String(value)
  }
}

extension String {
  fileprivate func replacingOccurrences(of target: String, with replacement: String) -> String {
    split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
  }
}
