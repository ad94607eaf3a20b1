// SPDX-License-Identifier: Apache-2.0
/// The fields of `GET /v1/sys/health` that the daemon uses (vault-api.md §1). Everything is
/// optional except the three flags every Vault version sends.
public struct HealthBody: Decodable, Sendable, Equatable {
  public var initialized: Bool
  public var sealed: Bool
  public var standby: Bool
  public var performanceStandby: Bool?
  public var replicationDRMode: String?
  public var version: String?
  public var clusterName: String?
  public var clusterID: String?
  public var removedFromCluster: Bool?
  public var haConnectionHealthy: Bool?

  enum CodingKeys: String, CodingKey {
    case initialized, sealed, standby, version
    case performanceStandby = "performance_standby"
    case replicationDRMode = "replication_dr_mode"
    case clusterName = "cluster_name"
    case clusterID = "cluster_id"
    case removedFromCluster = "removed_from_cluster"
    case haConnectionHealthy = "ha_connection_healthy"
  }

  public init(initialized: Bool, sealed: Bool, standby: Bool, performanceStandby: Bool? = nil, replicationDRMode: String? = nil,
    version: String? = nil, clusterName: String? = nil, clusterID: String? = nil, removedFromCluster: Bool? = nil,
    haConnectionHealthy: Bool? = nil)
  {
    self.initialized = initialized
    self.sealed = sealed
    self.standby = standby
    self.performanceStandby = performanceStandby
    self.replicationDRMode = replicationDRMode
    self.version = version
    self.clusterName = clusterName
    self.clusterID = clusterID
    self.removedFromCluster = removedFromCluster
    self.haConnectionHealthy = haConnectionHealthy
  }
}

/// `GET /v1/sys/seal-status`, also the answer of `PUT /v1/sys/unseal` (vault-api.md §2).
public struct SealStatus: Decodable, Sendable, Equatable {
  public var type: String
  public var initialized: Bool
  public var sealed: Bool
  public var threshold: Int
  public var shares: Int
  public var progress: Int
  public var nonce: String
  public var version: String?
  public var recoverySeal: Bool?
  public var clusterID: String?

  enum CodingKeys: String, CodingKey {
    case type, initialized, sealed, progress, nonce, version
    case threshold = "t"
    case shares = "n"
    case recoverySeal = "recovery_seal"
    case clusterID = "cluster_id"
  }

  public init(type: String = "shamir", initialized: Bool = true, sealed: Bool, threshold: Int, shares: Int, progress: Int, nonce: String,
    version: String? = nil, recoverySeal: Bool? = false, clusterID: String? = nil)
  {
    self.type = type
    self.initialized = initialized
    self.sealed = sealed
    self.threshold = threshold
    self.shares = shares
    self.progress = progress
    self.nonce = nonce
    self.version = version
    self.recoverySeal = recoverySeal
    self.clusterID = clusterID
  }

  /// Shamir seals are the only ones we submit shares to. With auto-unseal (`awskms`,
  /// `transit`, …) Vault unseals itself and `t`/`n` describe recovery keys, which must never be
  /// sent to `/sys/unseal`.
  public var acceptsUnsealShares: Bool { type == "shamir" && recoverySeal != true }
}

/// Vault's error envelope, `{"errors":[…]}`.
struct ErrorBody: Decodable {
  var errors: [String]?
}
