// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif

/// Reads Vault's TLS private key for the key-match check.
///
/// Deliberately less strict than `KeyShareLoader.readSecretFile`, which wants files only the
/// daemon's user can read: this key belongs to Vault (typically `root:vault 0640`, or certbot's
/// `root:root 0600` with an ACL or group for vaultkeeper), so vaultkeeper reads it through its
/// group and never owns it. It also lives behind certbot's `live/` symlinks, so symlinks are
/// followed (`readSecretFile` refuses them with `O_NOFOLLOW`). What stays refused: a key that
/// every user may read or write (mode `o+r` or `o+w`): that key must be considered leaked, and
/// reading it would hide the mistake.
public enum TLSKeyFile {
  /// Keys are a few KiB; a larger file is not a key.
  static let limit = 64 * 1024

  /// The file's bytes (the caller wipes them), or the problem that stopped us.
  public static func read(path: String) -> Result<[UInt8], CertificateProblem> {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else {
      let code = errno
      var reason = String(cString: strerror(code))
      if code == EACCES { reason += " (vaultkeeper's user needs read access, e.g. through Vault's group: chmod 0640 and chgrp)" }
      return .failure(.keyUnreadable(path: path, reason: reason))
    }
    defer { close(fd) }
    guard let owner = FileAccess.ownership(fd: fd) else { return .failure(.keyUnreadable(path: path, reason: "fstat failed")) }
    guard owner.isRegularFile else { return .failure(.keyUnreadable(path: path, reason: "not a regular file")) }
    if owner.mode & 0o006 != 0 { return .failure(.keyInsecure(path: path, mode: owner.mode)) }
    do {
      return .success(try FileAccess.readAll(fd: fd, path: path, limit: limit))
    } catch {
      return .failure(.keyUnreadable(path: path, reason: error.description))
    }
  }
}
