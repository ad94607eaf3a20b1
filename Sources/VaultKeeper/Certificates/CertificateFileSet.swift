// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif

/// The files Vault's TLS listener reads: certificate, private key and, when configured
/// separately, the chain and the CA bundle. Paths as configured; they may be symlinks
/// (certbot's `live/NAME/*.pem` point into `archive/NAME/`).
public struct CertificateFileSet: Sendable, Equatable {
  public var certificate: String
  public var key: String
  public var chain: String?
  public var ca: String?

  public init(certificate: String, key: String, chain: String? = nil, ca: String? = nil) {
    self.certificate = certificate
    self.key = key
    self.chain = chain
    self.ca = ca
  }

  /// Every configured path, in a fixed order (the fingerprint depends on it).
  public var all: [String] { [certificate, key] + [chain, ca].compactMap { $0 } }

  /// The directories to watch so that any renewal shows up as an event.
  ///
  /// Directories rather than the files themselves: an inotify watch follows an inode, and a
  /// renewal never changes the old inode. certbot writes `archive/NAME/cert4.pem` and then
  /// renames a new symlink over `live/NAME/cert.pem`; other tools write a temp file and rename
  /// it over the old one. Both are events in a directory (IN_MOVED_TO, IN_CREATE), not in the
  /// file. So each path's own directory is watched, plus the directory of every hop of its
  /// symlink chain and of its final target, which is where the new bytes are written.
  /// A directory that does not exist (yet) is stood in for by its nearest existing ancestor,
  /// whose IN_CREATE/IN_MOVED_TO then tells us to look again.
  ///
  /// Recomputed after every batch of events: a swapped symlink can point into a new directory.
  public func directoriesToWatch() -> [String] {
    var directories: [String] = []
    func add(_ directory: String) {
      // Canonical, so `live/example/../../archive/example` and `archive/example` are one entry.
      let existing = Self.nearestExistingDirectory(directory)
      let canonical = Self.realPath(existing) ?? existing
      if !directories.contains(canonical) { directories.append(canonical) }
    }
    for path in all {
      add(Self.directory(of: path))
      for hop in Self.symlinkChain(path) { add(Self.directory(of: hop)) }
      if let resolved = Self.realPath(path) { add(Self.directory(of: resolved)) }
    }
    return directories
  }

  /// `dirname(3)` on a string: `/a/b` → `/a`, `/a` → `/`, `b` → `.`.
  static func directory(of path: String) -> String {
    var trimmed = Substring(path)
    while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
    guard let slash = trimmed.lastIndex(of: "/") else { return "." }
    if slash == trimmed.startIndex { return "/" }
    var parent = trimmed[..<slash]
    while parent.count > 1, parent.hasSuffix("/") { parent = parent.dropLast() }
    return String(parent)
  }

  /// The targets a symlink chain passes through, each made absolute against the directory of
  /// the link that names it (`readlink` gives certbot's `../../archive/NAME/cert3.pem`).
  /// Bounded like the kernel's own limit, so a loop ends.
  static func symlinkChain(_ path: String) -> [String] {
    var hops: [String] = []
    var current = path
    while hops.count < 40, let target = readLink(current) {
      let next = target.hasPrefix("/") ? target : directory(of: current) + "/" + target
      hops.append(next)
      current = next
    }
    return hops
  }

  private static func readLink(_ path: String) -> String? {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let count = readlink(path, &buffer, buffer.count - 1)
    guard count > 0 else { return nil }
    return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
  }

  private static func realPath(_ path: String) -> String? {
    guard let resolved = realpath(path, nil) else { return nil }
    defer { free(resolved) }
    return String(cString: resolved)
  }

  static func nearestExistingDirectory(_ directory: String) -> String {
    var candidate = directory
    while !FileAccess.isDirectory(path: candidate) {
      let parent = Self.directory(of: candidate)
      if parent == candidate { break }
      candidate = parent
    }
    return candidate
  }
}
