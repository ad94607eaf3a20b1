// SPDX-License-Identifier: Apache-2.0
/// What a notification is about. The raw value is the name in `[[notify]] events`, in the JSON
/// payload's `event`, and in `VAULTKEEPER_EVENT` for a command.
public enum AlertEvent: String, Sendable, Equatable, Hashable, CaseIterable, Codable {
  /// A node is sealed and vaultkeeper is not unsealing it (wrong key, too few shares, sealed on
  /// purpose, no unseal keys configured), or it stays sealed although vaultkeeper is (unseal
  /// requests failing, an auto-unseal seal that cannot reach its KMS).
  case sealed
  /// A node has not answered its health checks (or answered with something that is not Vault).
  case unreachable
  /// vaultkeeper unsealed a node (after a restart, usually). Information only; off by default.
  case unsealed
  /// Snapshots are failing.
  case snapshotFailed = "snapshot_failed"
  /// No good snapshot within `[snapshot] stale_after`.
  case snapshotStale = "snapshot_stale"
  /// An upload to object storage failed.
  case uploadFailed = "upload_failed"
  /// The certificate Vault serves (or its files) is close to its end, or past it.
  case certificateExpiring = "certificate_expiring"
  /// The certificate files fail a check, so Vault is not reloaded with them.
  case certificateRefused = "certificate_refused"
  /// Vault was reloaded but still serves another certificate, or the reload failed.
  case certificateNotServed = "certificate_not_served"
  /// The last restore drill failed.
  case drillFailed = "drill_failed"
  /// vaultkeeper started after its previous run ended without a clean stop.
  case crashed
  /// `vaultkeeper notify test`.
  case test

  /// Every event but `unsealed` (routine) and `test` (always sent by `notify test`).
  public static let defaultSubscription: Set<AlertEvent> = Set(allCases).subtracting([.unsealed, .test])

  /// The part of the report a problem of this event is read from (a node's problems: its address).
  var part: String {
    switch self {
    case .snapshotFailed, .snapshotStale, .uploadFailed: "snapshot"
    case .certificateExpiring, .certificateRefused, .certificateNotServed: "certificate"
    case .drillFailed: "drill"
    default: rawValue
    }
  }

  /// Events that are problems: they are gated (`min_failures`, `min_duration`), reminded of,
  /// and resolved. The others are single messages.
  public var isProblem: Bool {
    switch self {
    case .unsealed, .crashed, .test: false
    default: true
    }
  }
}

/// How urgent a message is; `[[notify]] min_severity` filters on it.
public enum AlertSeverity: String, Sendable, Equatable, Hashable, Comparable, CaseIterable, Codable {
  case info
  case warning
  case critical

  private var rank: Int {
    switch self {
    case .info: 0
    case .warning: 1
    case .critical: 2
    }
  }

  public static func < (lhs: AlertSeverity, rhs: AlertSeverity) -> Bool { lhs.rank < rhs.rank }
}

/// Where a problem is in its life, as a message says it.
public enum AlertStatus: String, Sendable, Equatable, Codable {
  /// A problem reported for the first time, or with a changed severity.
  case problem
  /// The same problem, still there a reminder interval later.
  case reminder
  /// A problem that was reported has cleared.
  case resolved
  /// A single message that opens no problem (`unsealed`, `crashed`, `test`).
  case info
}

/// A problem as it stands now, derived from the daemon's report (`AlertConditions`).
public struct AlertCondition: Sendable, Equatable {
  /// Names the problem across observations: the event and what it is about
  /// (`sealed https://10.0.0.2:8200`). A message about the same key updates the same problem.
  public var key: String
  public var event: AlertEvent
  public var severity: AlertSeverity
  /// One line, for people: `vault https://10.0.0.2:8200 is sealed: wrong unseal key`.
  public var summary: String
  /// The node it is about, if any.
  public var node: String?
  /// Changes with every health check that shows the problem (the node's last check time), so
  /// `min_failures` can count checks. nil for a verdict that one look establishes (failed
  /// snapshots, stale backups, an expiring certificate, a failed drill): those wait only for
  /// `min_duration`.
  public var occurrence: Double?

  /// What part of the report it is read from: the node's address, or `snapshot`,
  /// `certificate`, `drill`. A part not reported yet since start cannot clear a problem.
  public var part: String { node ?? event.part }

  public init(key: String, event: AlertEvent, severity: AlertSeverity, summary: String, node: String? = nil, occurrence: Double? = nil) {
    self.key = key
    self.event = event
    self.severity = severity
    self.summary = summary
    self.node = node
    self.occurrence = occurrence
  }
}

/// One notification, before it is formatted for a target. Holds no secret: summaries are
/// built from the report, which holds none.
public struct AlertMessage: Sendable, Equatable {
  public var key: String
  public var event: AlertEvent
  public var status: AlertStatus
  public var severity: AlertSeverity
  public var summary: String
  public var node: String?
  /// When the problem was first seen (for `resolved` and reminders: how long it lasted).
  public var since: Double
  /// When this message was made.
  public var time: Double
  /// Messages this target dropped (its queue was full) before this one.
  public var droppedBefore: Int = 0

  public init(
    key: String, event: AlertEvent, status: AlertStatus, severity: AlertSeverity, summary: String, node: String? = nil, since: Double,
    time: Double
  ) {
    self.key = key
    self.event = event
    self.status = status
    self.severity = severity
    self.summary = summary
    self.node = node
    self.since = since
    self.time = time
  }

  /// A single message that opens no problem.
  public static func info(_ event: AlertEvent, severity: AlertSeverity, summary: String, node: String? = nil, key: String? = nil, time: Double)
    -> AlertMessage
  {
    AlertMessage(key: key ?? event.rawValue, event: event, status: .info, severity: severity, summary: summary, node: node, since: time, time: time)
  }

  /// The title line: `[CRITICAL] vault https://… is sealed: wrong unseal key`,
  /// `[RESOLVED] …`.
  public var title: String {
    switch status {
    case .resolved: "[RESOLVED] \(summary)"
    case .reminder: "[\(severity.rawValue.uppercased()), still] \(summary)"
    case .problem, .info: "[\(severity.rawValue.uppercased())] \(summary)"
    }
  }
}
