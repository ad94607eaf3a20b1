// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif

/// A file in `directory` that never has a name: `open(directory, O_TMPFILE)`, or, on a
/// filesystem without it, a file created and unlinked before a single byte is written. The
/// kernel frees it when the last descriptor closes, so a kill, a crash or Ctrl-C leaves nothing
/// behind. It is where `snapshot restore --identity` puts the decrypted snapshot: on disk, not in
/// memory (snapshots can be GiBs), and then sent from this very descriptor.
///
/// Not thread safe; one owner writes it, then hands `descriptor` to a transfer it outlives.
public final class UnnamedFile {
  public let directory: String
  /// Read and write; closed by `deinit`.
  public let descriptor: Int32
  public private(set) var bytesWritten: Int64 = 0

  public struct Failure: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
  }

  /// glibc's `O_TMPFILE` (`__O_TMPFILE | O_DIRECTORY`): Swift does not import the macro, which
  /// glibc defines only under `_GNU_SOURCE`. The value is the generic Linux one (x86_64, arm64).
  static let tmpfileFlag: Int32 = 0o20000000 | O_DIRECTORY

  public init(directory: String) throws(Failure) {
    self.directory = directory
    var fd = open(directory, Self.tmpfileFlag | O_RDWR | O_CLOEXEC, 0o600)
    if fd < 0, errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL {
      // No O_TMPFILE here (EISDIR: a kernel older than 3.11): name it, unlink it at once.
      fd = Self.createUnlinked(in: directory)
    }
    guard fd >= 0 else {
      throw Failure(message: "cannot create a file in \(directory): \(String(cString: strerror(errno)))")
    }
    _ = fchmod(fd, 0o600)  // whatever the umask
    descriptor = fd
  }

  deinit { close(descriptor) }

  private static func createUnlinked(in directory: String) -> Int32 {
    var random = UInt64.random(in: 0...UInt64.max)
    let path = "\(directory)/\(SnapshotFileWriter.temporaryPrefix)\(String(random, radix: 36)).tmp"
    random = 0
    let fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
    if fd >= 0 { unlink(path) }
    return fd
  }

  public func write(_ bytes: UnsafeRawBufferPointer) throws(Failure) {
    guard let base = bytes.baseAddress else { return }
    var offset = 0
    while offset < bytes.count {
      let n = Glibc.write(descriptor, base + offset, bytes.count - offset)
      if n < 0 {
        if errno == EINTR { continue }
        let code = errno
        throw Failure(message: code == ENOSPC ? "the disk holding \(directory) is full" : "cannot write: \(String(cString: strerror(code)))")
      }
      offset += n
    }
    bytesWritten += Int64(bytes.count)
  }
}
