// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif

/// Writes a snapshot into its directory so that a crash, a full disk or a failed verification
/// never leaves a partial file behind and never touches earlier snapshots:
/// a hidden temporary file in the same directory (`O_EXCL`, mode 0600), written as bytes
/// arrive, then fsync, rename to the final name, fsync the directory. `abort()` (or
/// deinitialising without `commit`) removes the temporary file.
///
/// Not thread safe; it lives on the transfer thread that feeds it.
public final class SnapshotFileWriter {
  public let directory: String
  public let temporaryPath: String
  /// Temporary files are hidden and never match `SnapshotName`, so nothing lists or retains them.
  public static let temporaryPrefix = ".vaultkeeper-snapshot-"
  private var fd: Int32
  public private(set) var bytesWritten: Int64 = 0
  private var done = false

  public struct Failure: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
  }

  public init(directory: String) throws(Failure) {
    self.directory = directory
    var random = UInt64.random(in: 0...UInt64.max)
    let suffix = String(random, radix: 36)
    random = 0
    temporaryPath = "\(directory)/\(Self.temporaryPrefix)\(suffix).tmp"
    fd = open(temporaryPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
    guard fd >= 0 else { throw Failure(message: "cannot create a file in \(directory): \(String(cString: strerror(errno)))") }
    _ = fchmod(fd, 0o600)  // whatever the umask
    // Held until the file is renamed or removed: `SnapshotDirectory.removeLeftovers` (daemon
    // start, reload) only removes temporary files nobody holds, never a running download of
    // `snapshot now` or a restore's decrypted copy in another process.
    _ = flock(fd, LOCK_EX | LOCK_NB)
  }

  deinit { abort() }

  public func write(_ bytes: UnsafeRawBufferPointer) throws(Failure) {
    guard !done, let base = bytes.baseAddress else { return }
    var offset = 0
    while offset < bytes.count {
      let n = Glibc.write(fd, base + offset, bytes.count - offset)
      if n < 0 {
        if errno == EINTR { continue }
        let code = errno
        abort()
        throw Failure(message: code == ENOSPC ? "the disk holding \(directory) is full" : "cannot write snapshot: \(String(cString: strerror(code)))")
      }
      offset += n
    }
    bytesWritten += Int64(bytes.count)
  }

  /// Makes the file durable under its final name (`name` is a file name, not a path).
  public func commit(as name: String) throws(Failure) -> String {
    guard !done else { throw Failure(message: "snapshot file already closed") }
    let final = "\(directory)/\(name)"
    if fsync(fd) != 0 {
      let code = errno
      abort()
      throw Failure(message: "cannot fsync snapshot: \(String(cString: strerror(code)))")
    }
    close(fd)
    fd = -1
    guard rename(temporaryPath, final) == 0 else {
      let code = errno
      unlink(temporaryPath)
      done = true
      throw Failure(message: "cannot rename snapshot into place: \(String(cString: strerror(code)))")
    }
    done = true
    // The rename is durable only once the directory entry is.
    FileAccess.syncDirectory(directory)
    return final
  }

  /// Removes the temporary file; earlier snapshots are untouched.
  public func abort() {
    guard !done else { return }
    done = true
    if fd >= 0 {
      close(fd)
      fd = -1
    }
    unlink(temporaryPath)
  }
}
