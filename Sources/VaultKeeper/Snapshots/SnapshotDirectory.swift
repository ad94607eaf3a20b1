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
