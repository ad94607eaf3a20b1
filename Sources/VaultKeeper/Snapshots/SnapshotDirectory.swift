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

  /// Applies `policy` to our snapshots in `directory` and deletes what it does not keep. Every
  /// file we named was verified before it got its name, so each counts as verified (the newest
  /// is therefore never deleted). Runs blocking file I/O: call it off the cooperative pool.
  public static func applyRetention(_ policy: RetentionPolicy, directory: String, now: Date) -> [Deletion] {
    let entries = list(directory)
    let items = entries.map { RetentionPolicy.Item(name: $0.name.fileName, time: $0.name.time, verified: true) }
    var deletions: [Deletion] = []
    for doomed in policy.apply(to: items, now: now).delete {
      let failed = unlink("\(directory)/\(doomed.name)") == 0 ? nil : String(cString: strerror(errno))
      deletions.append(Deletion(fileName: doomed.name, reason: doomed.reason, error: failed))
    }
    if deletions.contains(where: { $0.error == nil }) { FileAccess.syncDirectory(directory) }
    return deletions
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
