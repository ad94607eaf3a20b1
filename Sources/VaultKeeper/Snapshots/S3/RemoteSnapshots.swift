// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A snapshot in the bucket: a key directly under the prefix whose last part is a name we write.
public struct RemoteSnapshot: Sendable, Equatable {
  public var key: String
  public var name: SnapshotName
  public var bytes: Int64
  public var lastModified: Date?
  /// `x-amz-meta-vaultkeeper-cluster-id`, recorded at upload (from a HEAD; nil: not asked, or
  /// the object has none).
  public var clusterID: String? = nil
}

/// The cluster whose snapshots these are: `name` as it appears in file names (sanitized
/// `cluster_name`), `id` Vault's `cluster_id` (a UUID), both from the node's `sys/health`.
public struct SnapshotCluster: Sendable, Equatable {
  public var name: String
  public var id: String

  public init(name: String, id: String) {
    self.name = SnapshotName.sanitize(name)
    self.id = id
  }

  /// The object metadata an upload records (`x-amz-meta-` + key).
  public static let idMetadataKey = "vaultkeeper-cluster-id"
}

/// One key remote retention removed, and why (for the journal).
public struct RemoteDeletion: Sendable, Equatable {
  public var key: String
  public var reason: String
}

/// Which keys are ours, and which of them retention removes. Pure, table-tested.
public enum RemoteSnapshots {
  /// Our snapshots among `objects`, newest first. Keys in "subdirectories" of the prefix, or
  /// whose names we did not write, are never ours: retention leaves them alone.
  public static func ours(_ objects: [ObjectInfo], prefix: String) -> [RemoteSnapshot] {
    objects.compactMap { object -> RemoteSnapshot? in
      guard object.key.hasPrefix(prefix) else { return nil }
      let rest = String(object.key.dropFirst(prefix.count))
      guard !rest.contains("/"), let name = SnapshotName(fileName: rest) else { return nil }
      return RemoteSnapshot(key: object.key, name: name, bytes: object.size, lastModified: object.lastModified)
    }.sorted { $0.name != $1.name ? $0.name > $1.name : $0.key > $1.key }
  }

  /// The keys `policy` removes. Every remote snapshot passed its check at upload, so all count as
  /// verified, and the newest is never removed whatever the policy says. Names dated in the
  /// future count for nothing and are never removed (`RetentionPolicy`).
  public static func deletions(_ snapshots: [RemoteSnapshot], policy: RetentionPolicy, now: Date) -> [RemoteDeletion] {
    plan(snapshots, policy: policy, now: now, protecting: []).deletions
  }

  /// Which of `candidates` (named for this cluster, `clusterID` filled in by a HEAD) are this
  /// cluster's: those whose recorded cluster ID is `cluster.id`. The name alone is not enough:
  /// two clusters may share a `cluster_name` (both called "prod") and a prefix. Objects without
  /// the ID (uploaded by hand, or by another cluster) are never counted nor deleted.
  public static func attributed(_ candidates: [RemoteSnapshot], to cluster: SnapshotCluster) -> (ours: [RemoteSnapshot], others: [RemoteSnapshot]) {
    let named = candidates.filter { $0.name.cluster == cluster.name }
    return (named.filter { $0.clusterID == cluster.id }, named.filter { $0.clusterID != cluster.id })
  }

  /// Remote retention's decision over this cluster's snapshots.
  public struct Plan: Sendable, Equatable {
    public var deletions: [RemoteDeletion]
    /// Keys dated in the future: kept, not counted, to be reported.
    public var future: [String]
  }

  /// - Parameter protecting: keys kept whatever the policy says (those just uploaded).
  public static func plan(_ ours: [RemoteSnapshot], policy: RetentionPolicy, now: Date, protecting: Set<String>) -> Plan {
    let decision = policy.apply(
      to: ours.map { RetentionPolicy.Item(name: $0.key, time: $0.name.time, verified: true) }, now: now, protecting: protecting)
    return Plan(deletions: decision.delete.map { RemoteDeletion(key: $0.name, reason: $0.reason) }, future: decision.future)
  }

  /// The local snapshots to upload, newest first: every one of `local` (this cluster's verified
  /// files, none dated in the future) that the bucket lacks (no object of ours under its key
  /// with its size), when remote retention would keep it among what the bucket already holds.
  /// The newest local one is always uploaded when missing. So an upload lost to a reload, a
  /// restart or a failure is made up on the next run, while a snapshot the bucket's policy
  /// already dropped (kept longer locally) is not sent again just to be deleted.
  public static func missing(local: [SnapshotDirectory.Entry], remote ours: [RemoteSnapshot], prefix: String, policy: RetentionPolicy, now: Date)
    -> [SnapshotDirectory.Entry]
  {
    let present = Dictionary(ours.map { ($0.key, $0.bytes) }, uniquingKeysWith: { a, _ in a })
    let absent = local.filter { present[prefix + $0.name.fileName] != $0.bytes }
    guard let newest = local.max(by: { $0.name < $1.name }), !absent.isEmpty else { return [] }
    let absentKeys = Set(absent.map { prefix + $0.name.fileName })
    let union = ours.filter { !absentKeys.contains($0.key) }.map { RetentionPolicy.Item(name: $0.key, time: $0.name.time, verified: true) }
      + absent.map { RetentionPolicy.Item(name: prefix + $0.name.fileName, time: $0.name.time, verified: true) }
    let kept = Set(policy.apply(to: union, now: now).keep)
    return absent.filter { $0.name == newest.name || kept.contains(prefix + $0.name.fileName) }.sorted { $0.name > $1.name }
  }
}
