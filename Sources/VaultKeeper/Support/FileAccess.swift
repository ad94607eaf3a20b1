// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif

/// The few file operations the core needs, on plain POSIX calls: reading small files whole,
/// checking ownership and mode, and replacing a file atomically. (Foundation's FileManager hides
/// the details we must check, such as who owns a key file.)
public enum FileAccess {
  public struct Failure: Error, Sendable, CustomStringConvertible {
    public var errno: Int32
    public var operation: String
    public var description: String { "\(operation): \(String(cString: strerror(errno)))" }
  }

  public enum Kind: Sendable, Equatable {
    case regular, missing, other
    case inaccessible(String)
  }

  public static func kind(path: String) -> Kind {
    var info = stat()
    if stat(path, &info) != 0 {
      let code = errno
      if code == ENOENT || code == ENOTDIR { return .missing }
      return .inaccessible(String(cString: strerror(code)))
    }
    return (info.st_mode & S_IFMT) == S_IFREG ? .regular : .other
  }

  /// The size of the file at `path` (following symlinks), nil if it cannot be stat'ed.
  public static func size(path: String) -> Int64? {
    var info = stat()
    return stat(path, &info) == 0 ? Int64(info.st_size) : nil
  }

  public static func isDirectory(path: String) -> Bool {
    var info = stat()
    return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
  }

  public struct Ownership: Sendable, Equatable {
    public var uid: UInt32
    public var mode: UInt32
    public var isRegularFile: Bool = true
  }

  /// Owner and permission bits of an open file (fstat, so the answer is about the file we read).
  static func ownership(fd: Int32) -> Ownership? {
    var info = stat()
    guard fstat(fd, &info) == 0 else { return nil }
    return Ownership(uid: info.st_uid, mode: UInt32(info.st_mode) & 0o7777, isRegularFile: (info.st_mode & S_IFMT) == S_IFREG)
  }

  /// Reads a whole file of at most `limit` bytes.
  public static func readBytes(path: String, limit: Int) throws(Failure) -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw Failure(errno: errno, operation: "open \(path)") }
    defer { close(fd) }
    return try readAll(fd: fd, path: path, limit: limit)
  }

  /// Reads into one buffer allocated up front and trimmed in place: key files pass through
  /// here, and a growing array would leave copies of their content in freed memory. The caller
  /// wipes the result (`SecretBytes.wipe`) when it held key material.
  static func readAll(fd: Int32, path: String, limit: Int) throws(Failure) -> [UInt8] {
    var result = [UInt8](repeating: 0, count: limit + 1)
    var filled = 0
    while filled <= limit {
      let n = result.withUnsafeMutableBytes { read(fd, $0.baseAddress! + filled, $0.count - filled) }
      if n < 0 {
        if errno == EINTR { continue }
        let code = errno
        SecretBytes.wipe(&result)
        throw Failure(errno: code, operation: "read \(path)")
      }
      if n == 0 { break }
      filled += n
    }
    if filled > limit {
      SecretBytes.wipe(&result)
      throw Failure(errno: EFBIG, operation: "read \(path) (larger than \(limit) bytes)")
    }
    result.removeSubrange(filled...)  // shrinks in place; the capacity (and the zeroed tail) stays
    return result
  }

  public static func readText(path: String, limit: Int) throws(Failure) -> String {
    String(decoding: try readBytes(path: path, limit: limit), as: UTF8.self)
  }

  /// Writes `bytes` to `path` atomically: a temporary file in the same directory (exclusive
  /// create, `mode`), fsync (when `durable`), rename over the target. A crash leaves either the old file or the
  /// new one, never half of it; a failure removes the temporary file.
  public static func writeAtomically(path: String, bytes: [UInt8], mode: mode_t = 0o644, durable: Bool = true) throws(Failure) {
    let temp = "\(path).tmp.\(getpid())"
    let fd = try createExclusively(temp, mode: mode)
    var ok = false
    defer {
      if !ok { unlink(temp) }
    }
    var written = 0
    while written < bytes.count {
      let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, $0.count - written) }
      if n < 0 {
        if errno == EINTR { continue }
        let code = errno
        close(fd)
        throw Failure(errno: code, operation: "write \(temp)")
      }
      written += n
    }
    _ = fchmod(fd, mode)  // the umask may have narrowed it; we want exactly `mode`
    if durable, fsync(fd) != 0 {
      let code = errno
      close(fd)
      throw Failure(errno: code, operation: "fsync \(temp)")
    }
    close(fd)
    guard rename(temp, path) == 0 else { throw Failure(errno: errno, operation: "rename \(temp) to \(path)") }
    ok = true
    if durable, let slash = path.lastIndex(of: "/") { syncDirectory(slash == path.startIndex ? "/" : String(path[..<slash])) }
  }

  /// `open(O_CREAT | O_EXCL)` of a temporary name. A leftover of an earlier process with our
  /// PID (a crash, a PID reused) is removed once and the create tried once more; a leftover
  /// that cannot be removed (a directory, a file of another user in a sticky directory) is an
  /// error, never a loop.
  static func createExclusively(_ temp: String, mode: mode_t) throws(Failure) -> Int32 {
    for attempt in 0..<2 {
      let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode)
      if fd >= 0 { return fd }
      let code = errno
      guard code == EEXIST, attempt == 0 else { throw Failure(errno: code, operation: "create \(temp)") }
      if unlink(temp) != 0 { throw Failure(errno: errno, operation: "remove the leftover \(temp)") }
    }
    throw Failure(errno: EEXIST, operation: "create \(temp)")
  }

  /// fsync of a directory: makes renames and unlinks in it durable.
  public static func syncDirectory(_ directory: String) {
    let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard fd >= 0 else { return }
    _ = fsync(fd)
    close(fd)
  }

  /// Bytes available to unprivileged users on the filesystem holding `path`.
  public static func freeBytes(path: String) -> Int64? {
    var info = statvfs()
    guard statvfs(path, &info) == 0 else { return nil }
    return Int64(info.f_bavail) * Int64(info.f_frsize)
  }
}
