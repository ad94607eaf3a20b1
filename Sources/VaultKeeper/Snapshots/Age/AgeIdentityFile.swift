// SPDX-License-Identifier: Apache-2.0
/// Reads an age identity file (as `age-keygen` writes it) with the care of any key file: it
/// must belong to us and be unreadable by group and other, and its bytes are wiped after
/// parsing. Messages name the file and line, never key material.
public enum AgeIdentityFile {
  public static func load(path: String) throws(KeyLoadError) -> [AgeIdentity] {
    var bytes = try KeyShareLoader.readSecretFile(path: path, what: "age identity file", limit: 64 * 1024)
    defer { SecretBytes.wipe(&bytes) }
    do {
      return try AgeIdentity.parseFile(bytes)
    } catch {
      throw KeyLoadError(kind: .invalid, message: "age identity file \(path): \(error.message)")
    }
  }
}
