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
  /// verified, and the newest is never removed whatever the policy says.
  public static func deletions(_ snapshots: [RemoteSnapshot], policy: RetentionPolicy, now: Date) -> [RemoteDeletion] {
    guard let newest = snapshots.max(by: { $0.name < $1.name }) else { return [] }
    let decision = policy.apply(to: snapshots.map { RetentionPolicy.Item(name: $0.key, time: $0.name.time, verified: true) }, now: now)
    return decision.delete.filter { $0.name != newest.key }.map { RemoteDeletion(key: $0.name, reason: $0.reason) }
  }
}
