// SPDX-License-Identifier: Apache-2.0
import Glibc

/// Where log entries go. Chosen once at bootstrap; see `JournalSink.select`.
public enum JournalSink: String, Sendable, Equatable, CustomStringConvertible {
  /// Structured entries through `sd_journal_sendv`: metadata becomes searchable fields.
  case native
  /// Lines with a `<N>` priority prefix on stderr, which is a journal stream.
  case prefixedStderr
  /// Human-readable lines with time, level and label, for terminals and files.
  case plainStderr

  public var description: String { rawValue }

  /// The identity of an open file as `fstat(2)` reports it; what `$JOURNAL_STREAM` names.
  public struct FileIdentity: Sendable, Equatable {
    public var device: UInt64
    public var inode: UInt64

    public init(device: UInt64, inode: UInt64) {
      self.device = device
      self.inode = inode
    }

    /// `fstat` of an open descriptor, or nil when it is closed or invalid.
    public init?(fileDescriptor: Int32) {
      var info = stat()
      guard fstat(fileDescriptor, &info) == 0 else { return nil }
      self.init(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
    }

    /// Parses `$JOURNAL_STREAM`, which systemd sets to `<device>:<inode>` in decimal.
    public init?(journalStream: String) {
      let parts = journalStream.split(separator: ":", omittingEmptySubsequences: false)
      guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return nil }
      self.init(device: device, inode: inode)
    }
  }

  /// True when stderr is the stream systemd connected to the journal.
  ///
  /// `$JOURNAL_STREAM` being set is not enough: it is inherited by children and survives a
  /// `2>file` redirect, so it is compared with what stderr actually is (sd-daemon(3)).
  public static func stderrIsJournalStream(journalStream: String?, stderr: FileIdentity?) -> Bool {
    guard let journalStream, let stderr, let expected = FileIdentity(journalStream: journalStream) else {
      return false
    }
    return expected == stderr
  }

  /// Chooses the sink. Pure, so every case is unit-tested.
  ///
  /// - Parameters:
  ///   - journalStream: the value of `$JOURNAL_STREAM`, if set.
  ///   - stderr: `fstat` identity of the stderr descriptor, nil if it is closed.
  ///   - journalSocketAvailable: whether journald's native socket exists. `sd_journal_sendv`
  ///     returns 0 (success) when the socket is missing, so it must be checked up front or every
  ///     entry would vanish without an error.
  ///   - forceNative: use the native protocol whatever stderr is (a configuration switch, for
  ///     running under systemd with stderr sent elsewhere).
  /// - Returns: `.native` when forced or when stderr is the journal stream and the socket exists;
  ///   `.prefixedStderr` when stderr is the journal stream but the socket is missing (a
  ///   container with only a stream, or `InaccessiblePaths=/run/systemd`); `.plainStderr`
  ///   otherwise.
  public static func select(
    journalStream: String?,
    stderr: FileIdentity?,
    journalSocketAvailable: Bool,
    forceNative: Bool = false
  ) -> JournalSink {
    // Forced native output without journald would vanish: sd_journal_sendv reports success
    // even when nothing listens. Then stderr is the only place left.
    if forceNative { return journalSocketAvailable ? .native : .plainStderr }
    guard stderrIsJournalStream(journalStream: journalStream, stderr: stderr) else { return .plainStderr }
    return journalSocketAvailable ? .native : .prefixedStderr
  }

  /// journald's native socket, fixed in libsystemd (not configurable through the environment).
  public static let journalSocketPath = "/run/systemd/journal/socket"

  /// True when `path` exists and is a socket.
  static func isSocket(atPath path: String) -> Bool {
    var info = stat()
    guard stat(path, &info) == 0 else { return false }
    return (info.st_mode & S_IFMT) == S_IFSOCK
  }
}
