// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif

/// One inotify instance watching a set of directories (inotify(7)).
///
/// - Important: used by the certificate watch thread only; deliberately not `Sendable`.
final class DirectoryInotify {
  let fd: Int32
  /// Watch descriptor → the directory it was added for. Two paths naming one inode share a
  /// descriptor; the kernel hands out the same one again when the inode is watched already.
  private(set) var watches: [Int32: String] = [:]

  /// The events that can mean a renewal. IN_CLOSE_WRITE and IN_MOVED_TO/IN_CREATE catch files
  /// written in place or renamed in (certbot's symlink swap is a rename); IN_DELETE and
  /// IN_MOVED_FROM catch the old name going; IN_ATTRIB catches `touch`, chmod and chown (a key
  /// made readable to us at last); IN_DELETE_SELF/IN_MOVE_SELF say the directory itself was
  /// replaced and must be watched again by path. IN_ONLYDIR: a path that became a file is not
  /// a directory to watch.
  static let mask: UInt32 = {
    let events = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_ATTRIB
      | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR
    return UInt32(truncatingIfNeeded: events)
  }()

  /// - Throws: the errno text when the instance cannot be created (`EMFILE` at
  ///   `fs.inotify.max_user_instances`).
  init() throws(FileAccess.Failure) {
    let flags = Int32(truncatingIfNeeded: IN_NONBLOCK) | Int32(truncatingIfNeeded: IN_CLOEXEC)
    let fd = inotify_init1(flags)
    guard fd >= 0 else { throw FileAccess.Failure(errno: errno, operation: "inotify_init1") }
    self.fd = fd
  }

  deinit { close(fd) }

  /// Makes the watched set equal `directories`: adds each (again: a directory replaced since
  /// the last call is a new inode and gets a new descriptor) and drops descriptors no path
  /// names any more.
  ///
  /// - Returns: the directories that could not be watched, with the reason (`EACCES`, or
  ///   `ENOSPC` at `fs.inotify.max_user_watches`); the slow re-check still covers them.
  @discardableResult
  func watch(_ directories: [String]) -> [(directory: String, reason: String)] {
    var current: [Int32: String] = [:]
    var failures: [(directory: String, reason: String)] = []
    for directory in directories {
      let wd = inotify_add_watch(fd, directory, Self.mask)
      if wd >= 0 {
        current[wd] = directory
      } else {
        failures.append((directory, String(cString: strerror(errno))))
      }
    }
    // The kernel may have dropped some already (IN_IGNORED after a delete); EINVAL is fine.
    for wd in watches.keys where current[wd] == nil { _ = inotify_rm_watch(fd, wd) }
    watches = current
    return failures
  }

  enum Wait: Equatable {
    /// At least one event that can mean a change was read (and the queue drained).
    case changed
    /// The timeout passed, or only bookkeeping events (IN_IGNORED) came.
    case quiet
    /// The descriptor failed; the caller goes on with the re-check timer alone.
    case failed(String)
  }

  /// Waits up to `timeout` for events and drains them all.
  ///
  /// Events are not told apart beyond "can this be a change": which file changed does not
  /// matter, since the files are read and compared as a whole once things are quiet.
  func wait(timeout: Duration) -> Wait {
    var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    let ready = poll(&descriptor, 1, Self.pollMilliseconds(timeout))
    if ready < 0 { return errno == EINTR ? .quiet : .failed(String(cString: strerror(errno))) }
    if ready == 0 { return .quiet }
    var changed = false
    // Room for many events at once; one event is 16 bytes plus a name of at most NAME_MAX + 1.
    var buffer = [UInt8](repeating: 0, count: 64 * 1024)
    while true {
      let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
      if count < 0 {
        if errno == EINTR { continue }
        if errno == EAGAIN || errno == EWOULDBLOCK { break }
        return .failed(String(cString: strerror(errno)))
      }
      if count == 0 { break }
      if Self.containsChange(buffer[0..<count]) { changed = true }
    }
    return changed ? .changed : .quiet
  }

  /// Whether a batch of raw `struct inotify_event`s holds anything but IN_IGNORED (which only
  /// says a watch went away; the event that made it go comes before it). IN_Q_OVERFLOW counts
  /// as a change: events were lost.
  static func containsChange(_ bytes: ArraySlice<UInt8>) -> Bool {
    let header = 16  // int wd; uint32_t mask, cookie, len;
    var offset = bytes.startIndex
    while offset + header <= bytes.endIndex {
      let mask = bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset - bytes.startIndex + 4, as: UInt32.self) }
      let nameLength = bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset - bytes.startIndex + 12, as: UInt32.self) }
      if mask & UInt32(truncatingIfNeeded: IN_IGNORED) == 0 { return true }
      offset += header + Int(nameLength)
    }
    return false
  }

  /// Milliseconds for poll(2), rounded up so a wait never ends just before its deadline and
  /// spins; negative durations are 0.
  static func pollMilliseconds(_ duration: Duration) -> Int32 {
    guard duration > .zero else { return 0 }
    let (seconds, attoseconds) = duration.components
    let milliseconds = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
    return Int32(clamping: milliseconds)
  }
}

@available(*, unavailable) extension DirectoryInotify: Sendable {}
