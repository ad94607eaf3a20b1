#if canImport(Glibc)
import Glibc
#endif

/// Files whose content decides where unseal keys and snapshots go: the configuration file, the
/// `ca_file`s (which servers are trusted with shares, tokens and backups) and
/// `age_recipients_file` (who can read the backups). Anyone who may write one of them can
/// redirect shares or backups, so such a file is refused like an insecure key file (exit 77).
///
/// The rule: never writable by "other"; writable by its group only when that group is root
/// (gid 0), as root-owned files in /etc often are. Reading is not restricted: none of them
/// holds a secret. The owner is not checked: whoever owns a file can change it anyway, and
/// root, vaultkeeper's user or Vault's user are all reasonable owners.
public enum TrustedFile {
  public enum Problem: Sendable, Equatable {
    case writableByOthers(mode: UInt32)
    case writableByGroup(mode: UInt32, gid: UInt32)
  }

  /// Why a file with these permission bits and group must not be trusted; nil if it may.
  public static func problem(mode: UInt32, gid: UInt32) -> Problem? {
    if mode & 0o002 != 0 { return .writableByOthers(mode: mode & 0o7777) }
    if mode & 0o020 != 0 && gid != 0 { return .writableByGroup(mode: mode & 0o7777, gid: gid) }
    return nil
  }

  /// The problem of the file `fd` is open on (fstat: the file that is read, not a name).
  static func problem(fd: Int32) -> Problem? {
    var info = stat()
    guard fstat(fd, &info) == 0 else { return nil }
    return problem(mode: UInt32(info.st_mode), gid: info.st_gid)
  }

  /// The problem of the file at `path` (following symlinks, as its readers do).
  static func problem(path: String) -> Problem? {
    var info = stat()
    guard stat(path, &info) == 0 else { return nil }
    return problem(mode: UInt32(info.st_mode), gid: info.st_gid)
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
    }
  }

  static func octal(_ mode: UInt32) -> String {
    let digits = String(mode, radix: 8)
    return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
  }

  static func groupName(_ gid: UInt32) -> String {
    guard let entry = getgrgid(gid), let name = entry.pointee.gr_name else { return "\(gid)" }
    return "\(String(cString: name)) (gid \(gid))"
  }
}
