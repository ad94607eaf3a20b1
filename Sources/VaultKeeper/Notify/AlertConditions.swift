// SPDX-License-Identifier: Apache-2.0
/// Reads the problems out of the daemon's report: the same report STATUS, the state file and the
/// metrics are rendered from, so a notification never tells a different story than they do.
///
/// A value type with one memory (each node's last unseal time, to notice a new unseal); no
/// clock of its own: `now` comes in with each report.
public struct AlertConditions: Sendable {
  /// Whether vaultkeeper holds unseal keys: without them every sealed node is a problem.
  public var unsealEnabled: Bool
  private var lastUnseal: [String: Double?] = [:]
  /// The duties' parts seen in a report since start (`snapshot`, `certificate`, `drill`).
  private var seenParts: Set<String> = []

  public init(unsealEnabled: Bool) {
    self.unsealEnabled = unsealEnabled
  }

  /// What one look at `report` finds: the problems standing now, and single events
  /// (`unsealed`) that happened since the last look.
  public struct Look: Sendable, Equatable {
    public var problems: [AlertCondition]
    public var events: [AlertMessage]
    /// Parts not judged yet since start (a node before its first check, a duty before its
    /// first report): a problem restored from before a restart is not cleared by their silence.
    public var unjudged: Set<String> = []
  }

  public mutating func look(at report: DaemonReport, now: Double) -> Look {
    var problems: [AlertCondition] = []
    var events: [AlertMessage] = []
    var unjudged: Set<String> = []
    for (part, present) in [("snapshot", report.snapshot != nil), ("certificate", report.certificate != nil), ("drill", report.drill != nil)] {
      if present { seenParts.insert(part) } else if !seenParts.contains(part) { unjudged.insert(part) }
    }
    for node in report.nodes where node.lastCheck == 0 { unjudged.insert(node.address) }
    for node in report.nodes {
      if let problem = Self.nodeProblem(node, unsealEnabled: unsealEnabled) { problems.append(problem) }
      // An unseal we did: the node's last unseal time moved since we last looked. The first
      // look only learns it (an unseal before this run is old news).
      if node.lastCheck > 0 {
        if let seen = lastUnseal[node.address], let time = node.lastUnsealTime, time != seen {
          events.append(
            .info(.unsealed, severity: .info, summary: "vault \(node.address) was sealed and vaultkeeper unsealed it", node: node.address,
              key: "unsealed \(node.address)", time: now))
        }
        lastUnseal[node.address] = .some(node.lastUnsealTime)
      }
    }
    if let snapshot = report.snapshot { problems += Self.snapshotProblems(snapshot, now: now) }
    if let certificate = report.certificate { problems += Self.certificateProblems(certificate, now: now) }
    if let drill = report.drill, let problem = Self.drillProblem(drill) { problems.append(problem) }
    return Look(problems: problems, events: events, unjudged: unjudged)
  }

  static func nodeProblem(_ node: NodeReport, unsealEnabled: Bool) -> AlertCondition? {
    switch node.state {
    case .sealed:
      // Sealed and being unsealed is routine (a restart, opened within a second); the gate's
      // thresholds keep it quiet. Still sealed past them, it is a problem whatever the reason:
      // a hold, no keys, unseal requests that keep failing, an auto-unseal seal that cannot
      // reach its KMS.
      let why: String
      let severity: AlertSeverity
      switch node.hold {
      case .deliberateSeal?:
        (why, severity) = ("it was sealed on purpose (vaultkeeper holds off until Vault restarts or an operator says so)", .warning)
      case .wrongKey?:
        (why, severity) = ("Vault refuses the unseal key shares vaultkeeper holds (rekeyed, or another cluster's)", .critical)
      case .tooFewShares(let have, let need)?:
        (why, severity) = ("vaultkeeper holds \(have) unseal key shares and Vault needs \(need)", .critical)
      case nil where !unsealEnabled:
        (why, severity) = ("vaultkeeper holds no unseal keys ([unseal] is off)", .critical)
      case nil:
        let detail = node.problem.map { ": \($0)" } ?? ""
        return AlertCondition(
          key: "sealed \(node.address)", event: .sealed, severity: .critical,
          summary: "vault \(node.address) is still sealed: unsealing it has not worked\(detail)", node: node.address, occurrence: node.lastCheck)
      }
      return AlertCondition(
        key: "sealed \(node.address)", event: .sealed, severity: severity,
        summary: "vault \(node.address) is sealed and not being unsealed: \(why)", node: node.address, occurrence: node.lastCheck)
    case .unreachable, .protocolError:
      let what = node.state == .unreachable ? "unreachable" : "not answering like Vault"
      let detail = node.problem.map { ": \($0)" } ?? ""
      return AlertCondition(
        key: "unreachable \(node.address)", event: .unreachable, severity: .critical, summary: "vault \(node.address) is \(what)\(detail)",
        node: node.address, occurrence: node.lastCheck)
    default:
      return nil
    }
  }

  static func snapshotProblems(_ snapshot: SnapshotReport, now: Double) -> [AlertCondition] {
    guard snapshot.phase != .standby else { return [] }
    var problems: [AlertCondition] = []
    if snapshot.consecutiveFailures > 0 {
      let attempts = snapshot.consecutiveFailures == 1 ? "1 attempt" : "\(snapshot.consecutiveFailures) attempts in a row"
      problems.append(
        AlertCondition(
          key: "snapshot_failed", event: .snapshotFailed, severity: .warning,
          summary: "snapshots are failing (\(attempts)): \(snapshot.lastFailureReason ?? "see the journal")"))
    }
    if snapshot.stale {
      let last = snapshot.lastSuccess.map { "the last good snapshot is \(DurationParsing.humanize(.seconds(max(now - $0, 0)))) old" } ?? "no good snapshot yet"
      problems.append(
        AlertCondition(
          key: "snapshot_stale", event: .snapshotStale, severity: .critical,
          summary: "backups are stale: \(last) (stale after \(DurationParsing.humanize(.seconds(snapshot.staleAfterSeconds))))"))
    }
    if let failed = snapshot.lastUploadFailure, (snapshot.lastUpload ?? 0) < failed {
      problems.append(
        AlertCondition(
          key: "upload_failed", event: .uploadFailed, severity: .warning,
          summary: "snapshot upload failed: \(snapshot.lastUploadFailureReason ?? "see the journal") (the local snapshot is kept)"))
    }
    return problems
  }

  static func certificateProblems(_ certificate: CertificateReport, now: Double) -> [AlertCondition] {
    var problems: [AlertCondition] = []
    switch certificate.state {
    case .invalid:
      problems.append(
        AlertCondition(
          key: "certificate_refused", event: .certificateRefused, severity: .critical,
          summary: "the renewed certificate files are refused, Vault is not reloaded with them: \(certificate.problems.first ?? "see the journal")"))
    case .reloadFailed:
      problems.append(
        AlertCondition(
          key: "certificate_not_served", event: .certificateNotServed, severity: .critical,
          summary: "reloading Vault for the renewed certificate failed; Vault serves the old one"))
    case .notServed:
      let detail = certificate.servedError.map { " (\($0))" } ?? ""
      problems.append(
        AlertCondition(
          key: "certificate_not_served", event: .certificateNotServed, severity: .critical,
          summary: "Vault was reloaded but does not serve the renewed certificate\(detail)"))
    case .ok, .unknown:
      break
    }
    // What clients see: the served certificate; the file's when Vault could not be asked.
    let served = certificate.servedNotAfter != nil
    if let level = served ? certificate.servedExpiry : certificate.fileExpiry, level != .ok,
      let notAfter = served ? certificate.servedNotAfter : certificate.fileNotAfter
    {
      let which = served ? "the certificate Vault serves" : "the certificate file"
      let when =
        level == .expired
        ? "expired \(DurationParsing.humanize(.seconds(max(now - notAfter, 0)))) ago"
        : "expires in \(Int(((notAfter - now) / 86400).rounded(.down)))d"
      problems.append(
        AlertCondition(
          key: "certificate_expiring", event: .certificateExpiring, severity: level == .warning ? .warning : .critical,
          summary: "\(which) \(when)"))
    }
    return problems
  }

  static func drillProblem(_ drill: DrillDutyReport) -> AlertCondition? {
    guard drill.lastResult == .failed, let stage = drill.lastFailureStage else { return nil }
    let aboutShares = drill.lastFailureAboutShares == true
    return AlertCondition(
      key: "drill_failed", event: .drillFailed, severity: aboutShares ? .critical : .warning,
      summary: "the restore drill failed at \(stage.rawValue): \(drill.lastFailureMessage ?? drill.lastFailureReason ?? "see the journal")")
  }
}
