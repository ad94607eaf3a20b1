// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif

/// Files whose content decides where unseal keys and snapshots go: the configuration file, the
/// `ca_file`s (which servers are trusted with shares, tokens and backups) and
/// `age_recipients_file` (who can read the backups). Anyone who may write one of them can
/// redirect shares or backups, so such a file is refused like an insecure key file (exit 77).
///
/// The rule: never writable by "other"; writable by its group only when that group is root
/// (gid 0), as root-owned files in /etc often are; and, when the file has a POSIX access ACL
/// (`setfacl`), writable through it only by root: a named user or group entry (or the owning
/// group's entry) that grants write within the ACL mask, for anyone but uid/gid 0, is refused
/// too. The mode bits alone cannot show such an entry: with an ACL the group bits are the mask,
/// so `setfacl -m u:nobody:rw` on a root:root 0644 file reads as an acceptable 0664.
/// Reading is not restricted: none of them holds a secret. The owner is not checked: whoever
/// owns a file can change it anyway, and root, vaultkeeper's user or Vault's user are all
/// reasonable owners.
public enum TrustedFile {
  public enum Problem: Sendable, Equatable {
    case writableByOthers(mode: UInt32)
    case writableByGroup(mode: UInt32, gid: UInt32)
    /// A POSIX ACL entry grants write: `entry` is `PosixACL.Writer`.
    case writableThroughACL(mode: UInt32, writer: PosixACL.Writer)
  }

  /// Why a file with these permission bits and group must not be trusted; nil if it may.
  /// Without an ACL (`acl` nil), the mode bits are the whole story.
  public static func problem(mode: UInt32, gid: UInt32, acl: PosixACL? = nil) -> Problem? {
    if mode & 0o002 != 0 { return .writableByOthers(mode: mode & 0o7777) }
    guard let acl else {
      if mode & 0o020 != 0 && gid != 0 { return .writableByGroup(mode: mode & 0o7777, gid: gid) }
      return nil
    }
    // With an ACL the group bits are only the mask: the entries say who may write.
    if let writer = acl.writers(owningGroup: gid).first(where: { !$0.isRoot }) {
      return .writableThroughACL(mode: mode & 0o7777, writer: writer)
    }
    return nil
  }

  /// The problem of the file `fd` is open on (fstat and its ACL: the file that is read, not a name).
  static func problem(fd: Int32) -> Problem? {
    var info = stat()
    guard fstat(fd, &info) == 0 else { return nil }
    return problem(mode: UInt32(info.st_mode), gid: info.st_gid, acl: PosixACL.read(fd: fd, mode: UInt32(info.st_mode)))
  }

  /// The problem of the file at `path` (following symlinks, as its readers do). Opened once,
  /// so the mode and the ACL are the same file's.
  static func problem(path: String) -> Problem? {
    let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
    guard fd >= 0 else {
      // Not readable by us (a later read reports it): judge the mode bits at least.
      var info = stat()
      guard stat(path, &info) == 0 else { return nil }
      return problem(mode: UInt32(info.st_mode), gid: info.st_gid)
    }
    defer { close(fd) }
    return problem(fd: fd)
  }

  /// `PATH is writable by …(mode 0666): whoever can change it decides ROLE. Fix it with: …`
  static func message(_ problem: Problem, path: String, decides role: String) -> String {
    switch problem {
    case .writableByOthers(let mode):
      return "\(path) is writable by any user (mode \(octal(mode))): whoever can change it decides \(role). "
        + "Fix it with: chmod o-w \(path)"
    case .writableByGroup(let mode, let gid):
      return "\(path) is writable by group \(groupName(gid)) (mode \(octal(mode))): whoever can change it decides \(role). "
        + "Fix it with: chmod g-w \(path) (group write is accepted only for group root)"
    case .writableThroughACL(let mode, let writer):
      return "\(path) is writable by \(writer.description) through a POSIX ACL (mode \(octal(mode)), see getfacl \(path)): "
        + "whoever can change it decides \(role). Fix it with: setfacl \(writer.removal) \(path)"
    }
  }

  static func octal(_ mode: UInt32) -> String {
    let digits = String(mode, radix: 8)
    return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
  }

  static func userName(_ uid: UInt32) -> String {
    guard let entry = getpwuid(uid), let name = entry.pointee.pw_name else { return "\(uid)" }
    return "\(String(cString: name)) (uid \(uid))"
  }

  static func groupName(_ gid: UInt32) -> String {
    guard let entry = getgrgid(gid), let name = entry.pointee.gr_name else { return "\(gid)" }
    return "\(String(cString: name)) (gid \(gid))"
  }
}

/// A file's POSIX access ACL, as the kernel stores it in the `system.posix_acl_access` extended
/// attribute (`posix_acl_xattr`: a little-endian version 2 header, then 8-byte entries of tag,
/// permissions and id). Only what `TrustedFile` needs: who may write.
public struct PosixACL: Sendable, Equatable {
  public struct Entry: Sendable, Equatable {
    public var tag: UInt16
    public var permissions: UInt16
    public var id: UInt32
  }

  /// Someone an entry lets write the file.
  public struct Writer: Sendable, Equatable, CustomStringConvertible {
    /// `unknown`: an ACL that is there but could not be read or parsed.
    public enum Kind: Sendable, Equatable { case user, group, unknown }
    public var kind: Kind
    public var id: UInt32
    /// The owning group's entry (`group::`), not a named one.
    public var owningGroup: Bool

    /// uid or gid 0: root may write anyway.
    public var isRoot: Bool { kind != .unknown && id == 0 }

    public var description: String {
      switch kind {
      case .user: return "user \(TrustedFile.userName(id))"
      case .group: return "\(owningGroup ? "the owning group" : "group") \(TrustedFile.groupName(id))"
      case .unknown: return "whomever its ACL names (the ACL could not be read)"
      }
    }

    /// `setfacl` arguments that take this writer's write permission away.
    var removal: String {
      switch (kind, owningGroup) {
      case (.user, _): return "-x u:\(id)"
      case (.group, false): return "-x g:\(id)"
      case (.group, true): return "-m g::r"
      case (.unknown, _): return "-b"
      }
    }
  }

  /// Entry tags (<linux/posix_acl.h>); `ACL_USER_OBJ` (0x01) and `ACL_OTHER` (0x20) are the
  /// mode's owner and other bits, which the mode rule judges.
  public static let user: UInt16 = 0x02, groupObj: UInt16 = 0x04, group: UInt16 = 0x08, mask: UInt16 = 0x10
  static let write: UInt16 = 0x02

  public var entries: [Entry]

  public init(entries: [Entry]) { self.entries = entries }

  /// Parses the attribute's value; nil for anything that is not a version 2 ACL.
  public init?(xattr bytes: [UInt8]) {
    guard bytes.count >= 4, (bytes.count - 4) % 8 == 0 else { return nil }
    func u16(_ at: Int) -> UInt16 { UInt16(bytes[at]) | UInt16(bytes[at + 1]) << 8 }
    func u32(_ at: Int) -> UInt32 { UInt32(u16(at)) | UInt32(u16(at + 2)) << 16 }
    guard u32(0) == 2 else { return nil }
    entries = stride(from: 4, to: bytes.count, by: 8).map { Entry(tag: u16($0), permissions: u16($0 + 2), id: u32($0 + 4)) }
  }

  /// Everyone but the owner whom an entry lets write, within the mask (which caps named users,
  /// named groups and the owning group; without one, nothing caps them). "Other" is the mode's
  /// business (its bits are the `other::` entry).
  public func writers(owningGroup gid: UInt32) -> [Writer] {
    let maskEntry = entries.first { $0.tag == Self.mask }
    let mask = maskEntry?.permissions ?? 0o7
    if unreadable { return mask & Self.write != 0 ? [Writer(kind: .unknown, id: UInt32.max, owningGroup: false)] : [] }
    return entries.compactMap { entry -> Writer? in
      guard entry.permissions & mask & Self.write != 0 else { return nil }
      switch entry.tag {
      case Self.user: return Writer(kind: .user, id: entry.id, owningGroup: false)
      case Self.group: return Writer(kind: .group, id: entry.id, owningGroup: false)
      case Self.groupObj: return Writer(kind: .group, id: gid, owningGroup: true)
      default: return nil
      }
    }
  }

  /// glibc's `fgetxattr`, looked up by name once: Swift's Glibc module does not include
  /// <sys/xattr.h>, and the core imports no C module of its own to declare it.
  private static let fgetxattr: (@convention(c) (Int32, UnsafePointer<CChar>, UnsafeMutableRawPointer?, Int) -> Int)? = {
    guard let symbol = dlsym(nil, "fgetxattr") else { return nil }
    return unsafeBitCast(symbol, to: (@convention(c) (Int32, UnsafePointer<CChar>, UnsafeMutableRawPointer?, Int) -> Int).self)
  }()

  /// Whether an ACL could not be read or parsed; `writers` then names an unknown writer
  /// when the mask (the mode's group bits) allows writing at all.
  public var unreadable = false

  /// The access ACL of the file `fd` is open on; nil when it has none beyond its mode bits.
  static func read(fd: Int32, mode: UInt32) -> PosixACL? {
    guard let fgetxattr else { return nil }
    var buffer = [UInt8](repeating: 0, count: 4 + 8 * 64)
    while true {
      let n = buffer.withUnsafeMutableBytes { fgetxattr(fd, "system.posix_acl_access", $0.baseAddress, $0.count) }
      if n >= 0 { return PosixACL(xattr: Array(buffer[0..<n])) ?? unreadable(mode: mode) }
      switch errno {
      case ENODATA, ENOTSUP: return nil  // no ACL, or a filesystem without ACLs
      case ERANGE where buffer.count < 1 << 20: buffer = [UInt8](repeating: 0, count: buffer.count * 8)
      default: return unreadable(mode: mode)
      }
    }
  }

  /// An ACL we could not read: as if someone it names had the mask's permissions.
  private static func unreadable(mode: UInt32) -> PosixACL {
    var acl = PosixACL(entries: [Entry(tag: mask, permissions: UInt16((mode >> 3) & 0o7), id: UInt32.max)])
    acl.unreadable = true
    return acl
  }
}
