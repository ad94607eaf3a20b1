// SPDX-License-Identifier: Apache-2.0
/// Reads a configured secret (`*_file` or a systemd credential) into locked memory: refused unless
/// only the daemon's user can read it (`KeyShareLoader.readSecretFile`), surrounding whitespace
/// trimmed, never empty. Messages name the file, never its content.
public enum CredentialReader {
  public static func read(_ credential: SnapshotConfig.Credential, what: String, environment: [String: String]) throws(SnapshotError) -> SecretBytes {
    let path: String
    switch credential {
    case .file(let file): path = file
    case .credential(let name):
      guard let dir = environment["CREDENTIALS_DIRECTORY"], !dir.isEmpty else {
        throw SnapshotError(.credentials, "the \(what) credential \"\(name)\" needs $CREDENTIALS_DIRECTORY (LoadCredentialEncrypted=\(name):…)")
      }
      path = "\(dir)/\(name)"
    }
    var bytes: [UInt8]
    do {
      bytes = try KeyShareLoader.readSecretFile(path: path, what: what, limit: 8192)
    } catch {
      throw SnapshotError(.credentials, error.message)
    }
    defer { SecretBytes.wipe(&bytes) }
    var slice = bytes[...]
    while let last = slice.last, [0x0A, 0x0D, 0x20, 0x09].contains(last) { slice = slice.dropLast() }
    while let first = slice.first, [0x0A, 0x0D, 0x20, 0x09].contains(first) { slice = slice.dropFirst() }
    guard !slice.isEmpty else { throw SnapshotError(.credentials, "the \(what) at \(path) is empty") }
    return SecretBytes(slice)
  }
}

/// The key pair for `[snapshot.s3]`, read fresh for every upload (rotated keys apply at once).
public struct S3Credentials: Sendable {
  public var accessKeyID: SecretBytes
  public var secretAccessKey: SecretBytes

  public init(accessKeyID: SecretBytes, secretAccessKey: SecretBytes) {
    self.accessKeyID = accessKeyID
    self.secretAccessKey = secretAccessKey
  }

  public static func load(_ config: S3Config, environment: [String: String]) throws(SnapshotError) -> S3Credentials {
    S3Credentials(
      accessKeyID: try CredentialReader.read(config.accessKeyID, what: "S3 access key ID", environment: environment),
      secretAccessKey: try CredentialReader.read(config.secretAccessKey, what: "S3 secret access key", environment: environment))
  }
}
