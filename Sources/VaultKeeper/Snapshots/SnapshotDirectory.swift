// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// The snapshots vaultkeeper wrote in a directory, recognised by name (`SnapshotName`); every
/// other file is ignored, so retention can never touch a file it did not write.
public enum SnapshotDirectory {
  public struct Entry: Sendable, Equatable {
    public var name: SnapshotName
    public var bytes: Int64
  }

  /// Newest first.
  public static func list(_ directory: String) -> [Entry] {
    guard let dir = opendir(directory) else { return [] }
    defer { closedir(dir) }
    var entries: [Entry] = []
    while let item = readdir(dir) {
      let fileName = withUnsafeBytes(of: item.pointee.d_name) { raw in
        String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
      }
      guard let name = SnapshotName(fileName: fileName) else { continue }
      var info = stat()
      guard lstat("\(directory)/\(fileName)", &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { continue }
      entries.append(Entry(name: name, bytes: Int64(info.st_size)))
    }
    return entries.sorted { $0.name > $1.name }
  }
}

extension SnapshotDirectory {
  public struct Deletion: Sendable, Equatable {
    public var fileName: String
    public var reason: String
    /// nil when the file is gone; otherwise why it could not be removed.
    public var error: String?
  }

  /// What retention decided for a directory, before anything is deleted. Pure.
  public struct Plan: Sendable, Equatable {
    public var decision: RetentionPolicy.Decision
    /// Files named for another cluster: never counted, never deleted.
    public var otherClusters: [String]
  }

  /// A local file belongs to this cluster when the cluster part of its name is this cluster's
  /// (`SnapshotName.sanitize` of Vault's `cluster_name`). Only those count and may be deleted;
  /// a name dated in the future counts for nothing and stays (`RetentionPolicy`). Every file
  /// we named was verified before it got its name, so each counts as verified.
  /// - Parameters:
  ///   - cluster: this cluster's name (`vault` when Vault names none, as in the file names);
  ///     nil counts every cluster's files.
  ///   - justWritten: the file just committed: kept whatever the policy says.
  public static func plan(_ entries: [Entry], policy: RetentionPolicy, cluster: String?, justWritten: String?, now: Date) -> Plan {
    let mine = cluster.map(SnapshotName.sanitize)
    let ours = entries.filter { mine == nil || $0.name.cluster == mine }
    let others = entries.filter { mine != nil && $0.name.cluster != mine }.map(\.name.fileName)
    let items = ours.map { RetentionPolicy.Item(name: $0.name.fileName, time: $0.name.time, verified: true) }
    let decision = policy.apply(to: items, now: now, protecting: justWritten.map { [$0] } ?? [])
    return Plan(decision: decision, otherClusters: others)
  }

  /// This cluster's newest snapshot whose name is not dated in the future. Pure.
  public static func newest(_ entries: [Entry], cluster: String?, now: Date) -> Entry? {
    let mine = cluster.map(SnapshotName.sanitize)
    return entries.filter { (mine == nil || $0.name.cluster == mine) && !RetentionPolicy.isFuture($0.name.time, now: now) }.max { $0.name < $1.name }
  }

  /// What retention did in a directory.
  public struct Outcome: Sendable, Equatable {
    public var deletions: [Deletion]
    /// Files dated in the future (any cluster's): kept, not counted, to be reported.
    public var future: [String]
    public var otherClusters: [String]
  }

  /// Applies `policy` to this cluster's snapshots in `directory` (see `plan`) and deletes what
  /// it does not keep. Runs blocking file I/O: call it off the cooperative pool.
  public static func applyRetention(_ policy: RetentionPolicy, directory: String, now: Date, cluster: String?, justWritten: String?) -> Outcome {
    let entries = list(directory)
    let plan = plan(entries, policy: policy, cluster: cluster, justWritten: justWritten, now: now)
    var deletions: [Deletion] = []
    for doomed in plan.decision.delete {
      let failed = unlink("\(directory)/\(doomed.name)") == 0 ? nil : String(cString: strerror(errno))
      deletions.append(Deletion(fileName: doomed.name, reason: doomed.reason, error: failed))
    }
    if deletions.contains(where: { $0.error == nil }) { FileAccess.syncDirectory(directory) }
    let future = entries.filter { RetentionPolicy.isFuture($0.name.time, now: now) }.map(\.name.fileName)
    return Outcome(deletions: deletions, future: future, otherClusters: plan.otherClusters)
  }

  /// Removes temporary files a killed vaultkeeper left behind (`.vaultkeeper-snapshot-*.tmp`;
  /// only a SIGKILL or power loss mid-download can leave one). A file whose writer is alive is
  /// skipped: `SnapshotFileWriter` holds an exclusive `flock` on it until it is renamed or
  /// removed. Returns the names removed.
  public static func removeLeftovers(_ directory: String) -> [String] {
    guard let dir = opendir(directory) else { return [] }
    var names: [String] = []
    while let item = readdir(dir) {
      let fileName = withUnsafeBytes(of: item.pointee.d_name) { raw in
        String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
      }
      if fileName.hasPrefix(SnapshotFileWriter.temporaryPrefix), fileName.hasSuffix(".tmp") { names.append(fileName) }
    }
    closedir(dir)
    return names.filter { name in
      let path = "\(directory)/\(name)"
      let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
      guard fd >= 0 else { return false }
      defer { close(fd) }
      guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { return false }  // still being written
      return unlink(path) == 0
    }
  }
}
