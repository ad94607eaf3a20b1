// SPDX-License-Identifier: Apache-2.0
/// What the daemon knows about one node: the single source of truth that STATUS, the state
/// file, metrics and `vaultkeeper status` are all rendered from.
public struct NodeReport: Sendable, Equatable, Codable {
  public var address: String
  public var state: NodeState
  public var since: Double
  public var lastCheck: Double
  public var latencyMilliseconds: Double
  public var version: String?
  public var clusterName: String?
  public var clusterID: String?
  public var problem: String?
  /// Why we are not unsealing a sealed node, if so.
  public var hold: HoldReason?
  public var lastUnsealTime: Double?
  public var unsealAttempts: [String: Int]
  public var consecutiveFailures: Int

  public init(address: String, state: NodeState, since: Double, lastCheck: Double) {
    self.address = address
    self.state = state
    self.since = since
    self.lastCheck = lastCheck
    self.latencyMilliseconds = 0
    self.unsealAttempts = [:]
    self.consecutiveFailures = 0
  }

  enum CodingKeys: String, CodingKey {
    case address, state, since, version, problem, hold
    case lastCheck = "last_check"
    case latencyMilliseconds = "latency_ms"
    case clusterName = "cluster_name"
    case clusterID = "cluster_id"
    case lastUnsealTime = "last_unseal"
    case unsealAttempts = "unseal_attempts"
    case consecutiveFailures = "consecutive_failures"
  }
}

/// The whole picture, as written to the state file.
public struct DaemonReport: Sendable, Equatable, Codable {
  public var pid: Int32
  public var startedAt: Double
  public var updatedAt: Double
  public var configPath: String
  public var nodes: [NodeReport]
  /// The snapshot duty's report, when `[snapshot]` is enabled.
  public var snapshot: SnapshotReport?
  /// The certificate duty's report, when `[certificate]` is enabled.
  public var certificate: CertificateReport?
  /// The scheduled restore drill's report, when `[snapshot.drill]` is enabled.
  public var drill: DrillDutyReport?
  /// sd_notify datagrams dropped because systemd did not read the notify socket and the queue
  /// stayed full (`QueuedNotifier`); nil where no queue counts them.
  public var notifyDatagramsDropped: Int?
  /// Each `[[notify]]` target's deliveries; nil without `[[notify]]`.
  public var notifications: [NotifyTargetStats]?

  enum CodingKeys: String, CodingKey {
    case pid, nodes, snapshot, certificate, drill, notifications
    case notifyDatagramsDropped = "notify_datagrams_dropped"
    case startedAt = "started_at"
    case updatedAt = "updated_at"
    case configPath = "config"
  }

  public init(pid: Int32, startedAt: Double, updatedAt: Double, configPath: String, nodes: [NodeReport]) {
    self.pid = pid
    self.startedAt = startedAt
    self.updatedAt = updatedAt
    self.configPath = configPath
    self.nodes = nodes
  }
}
