// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif

/// The unseal key shares this daemon holds, each as the text Vault accepts (base64 or hex),
/// in locked memory.
public struct KeyShares: Sendable {
  public enum Format: String, Sendable {
    case operatorInitJSON = "vault operator init JSON"
    /// The raw `PUT /v1/sys/init` answer (`keys`, `keys_base64`), as saved with curl or a
    /// provisioning tool.
    case apiInitJSON = "sys/init API answer"
    case plainLines = "one key per line"
  }

  public var shares: [SecretBytes]
  public var format: Format
  /// `unseal_threshold` from the init JSON, when present.
  public var declaredThreshold: Int?
  /// The init JSON also carried a root token (ignored; the operator is told once).
  public var containedRootToken: Bool
  /// Where they came from, for messages ("/etc/vaultkeeper/unseal-keys.json", "credential unseal-keys").
  public var origin: String

  public var count: Int { shares.count }
}

/// Why key shares could not be loaded. The messages never contain key material.
public struct KeyLoadError: Error, Sendable, CustomStringConvertible {
  public enum Kind: Sendable {
    /// Readable by group/other or owned by someone else: refuse (exit 77).
    case insecure
    /// Cannot be opened or read (exit 77).
    case unreadable
    /// The content is not a key file we understand (exit 65, EX_DATAERR).
    case invalid
  }
  public var kind: Kind
  public var message: String
  public var description: String { message }
}

/// Reads and checks a key file. Pure parsing lives in `parse(_:origin:)` so it can be tested
/// without files; `load` adds the ownership and permission checks.
public enum KeyShareLoader {
  /// Resolves the configured source to a path: a file, or `$CREDENTIALS_DIRECTORY/NAME`.
  public static func path(for source: UnsealConfig.KeySource, environment: [String: String]) throws(KeyLoadError) -> (path: String, origin: String) {
    switch source {
    case .file(let path):
      return (path, path)
    case .credential(let name):
      guard let dir = environment["CREDENTIALS_DIRECTORY"], !dir.isEmpty else {
        throw KeyLoadError(
          kind: .unreadable,
          message: "unseal.credential = \"\(name)\" needs $CREDENTIALS_DIRECTORY: run under systemd with LoadCredentialEncrypted=\(name):PATH (or use unseal.key_file)")
      }
      return ("\(dir)/\(name)", "credential \(name)")
    }
  }

  public static func load(source: UnsealConfig.KeySource, environment: [String: String]) throws(KeyLoadError) -> KeyShares {
    let (path, origin) = try path(for: source, environment: environment)
    var bytes = try readSecretFile(path: path, what: "key file")
    defer { SecretBytes.wipe(&bytes) }
    return try parse(bytes, origin: origin)
  }

  /// Opens a file holding secrets (key shares, a token, an AppRole secret ID), refuses it unless
  /// only the daemon's user can read it, and reads it whole. The caller wipes the bytes.
  public static func readSecretFile(path: String, what: String, limit: Int = 64 * 1024) throws(KeyLoadError) -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
    guard fd >= 0 else {
      let code = errno
      let reason = String(cString: strerror(code))
      let hint = code == EACCES ? " (the daemon's user must own it: chown \(userName()) \(path))" : ""
      throw KeyLoadError(kind: .unreadable, message: "cannot open \(what) \(path): \(reason)\(hint)")
    }
    defer { close(fd) }
    guard let owner = FileAccess.ownership(fd: fd) else {
      throw KeyLoadError(kind: .unreadable, message: "cannot inspect \(what) \(path)")
    }
    try checkOwnership(owner, path: path, expectedUID: geteuid())
    do {
      return try FileAccess.readAll(fd: fd, path: path, limit: limit)
    } catch {
      throw KeyLoadError(kind: .unreadable, message: "cannot read \(what): \(error)")
    }
  }

  /// Group/other bits must be clear and the file must belong to us. systemd credentials are
  /// 0400 and owned by the service user, so they pass as they are.
  public static func checkOwnership(_ owner: FileAccess.Ownership, path: String, expectedUID: UInt32) throws(KeyLoadError) {
    if owner.mode & 0o077 != 0 {
      throw KeyLoadError(
        kind: .insecure,
        message: "key file \(path) is readable or writable by group/other (mode \(String(owner.mode, radix: 8))); "
          + "fix it with: chmod 0600 \(path) (better: deliver the shares as an encrypted systemd credential)")
    }
    if owner.uid != expectedUID {
      throw KeyLoadError(
        kind: .insecure,
        message: "key file \(path) is owned by uid \(owner.uid), not by the daemon's user (uid \(expectedUID)); "
          + "fix it with: chown \(userName()) \(path)")
    }
  }

  static func userName() -> String {
    guard let entry = getpwuid(geteuid()), let name = entry.pointee.pw_name else { return "\(geteuid())" }
    return String(cString: name)
  }

  /// Parses the JSON printed by `vault operator init -format=json`, the raw `PUT /v1/sys/init`
  /// answer, or a plain file with one key per line (blank lines and `#` comments ignored).
  public static func parse(_ bytes: [UInt8], origin: String) throws(KeyLoadError) -> KeyShares {
    let firstNonSpace = bytes.first { ![0x20, 0x09, 0x0A, 0x0D].contains($0) }
    if firstNonSpace == UInt8(ascii: "{") { return try parseInitJSON(bytes, origin: origin) }
    return try parsePlain(bytes, origin: origin)
  }

  private static func parsePlain(_ bytes: [UInt8], origin: String) throws(KeyLoadError) -> KeyShares {
    var shares: [SecretBytes] = []
    var lineNumber = 0
    for line in bytes.split(separator: 0x0A, omittingEmptySubsequences: false) {
      lineNumber += 1
      var slice = line[...]
      while let last = slice.last, [0x20, 0x09, 0x0D].contains(last) { slice = slice.dropLast() }
      while let first = slice.first, [0x20, 0x09].contains(first) { slice = slice.dropFirst() }
      if slice.isEmpty || slice.first == UInt8(ascii: "#") { continue }
      guard ShareEncoding.isValidShare(slice) else {
        throw KeyLoadError(kind: .invalid, message: "\(origin): line \(lineNumber) is not an unseal key (expected base64 or hex of 16–33 bytes)")
      }
      shares.append(SecretBytes(slice))
    }
    guard !shares.isEmpty else { throw KeyLoadError(kind: .invalid, message: "\(origin): no unseal keys found") }
    return KeyShares(shares: try deduplicated(shares, origin: origin), format: .plainLines, declaredThreshold: nil, containedRootToken: false, origin: origin)
  }

  private static func parseInitJSON(_ bytes: [UInt8], origin: String) throws(KeyLoadError) -> KeyShares {
    let root: SecretJSON.Value
    do {
      root = try SecretJSON.parse(bytes)
    } catch {
      throw KeyLoadError(kind: .invalid, message: "\(origin): invalid JSON at byte \(error.offset): \(error.reason)")
    }
    guard case .object(let members) = root else { throw KeyLoadError(kind: .invalid, message: "\(origin): expected a JSON object") }
    func member(_ name: String) -> SecretJSON.Value? { members.first { $0.key == name }?.value }
    func stringList(_ name: String) throws(KeyLoadError) -> [Range<Int>] {
      guard let value = member(name) else { return [] }
      if case .null = value { return [] }
      guard case .array(let items) = value else { throw KeyLoadError(kind: .invalid, message: "\(origin): \(name) must be an array") }
      var ranges: [Range<Int>] = []
      for item in items {
        guard case .string(let range, let escapes) = item, !escapes else {
          throw KeyLoadError(kind: .invalid, message: "\(origin): \(name) must hold plain key strings")
        }
        ranges.append(range)
      }
      return ranges
    }
    // The CLI names the lists unseal_keys_b64/_hex; the API answer it is made from names them
    // keys_base64/keys. Both lists encode the same shares; prefer base64 (what the CLI shows first).
    let cliLists = (b64: try stringList("unseal_keys_b64"), hex: try stringList("unseal_keys_hex"))
    let apiLists = (b64: try stringList("keys_base64"), hex: try stringList("keys"))
    let fromCLI = !(cliLists.b64.isEmpty && cliLists.hex.isEmpty)
    let (b64, hex) = fromCLI ? cliLists : apiLists
    let recovery = try stringList("recovery_keys_b64") + stringList("recovery_keys_hex")
      + stringList("recovery_keys_base64") + stringList("recovery_keys")
    let chosen = b64.isEmpty ? hex : b64
    if chosen.isEmpty {
      if !recovery.isEmpty {
        throw KeyLoadError(
          kind: .invalid,
          message: "\(origin) holds recovery keys, not unseal keys: this Vault uses auto-unseal and unseals itself; recovery keys must never be sent to /sys/unseal, so remove the file from the vaultkeeper configuration")
      }
      throw KeyLoadError(
        kind: .invalid,
        message: "\(origin): no unseal keys found (expected unseal_keys_b64/unseal_keys_hex from `vault operator init -format=json`, or keys_base64/keys from the sys/init API)")
    }
    var shares: [SecretBytes] = []
    for (index, range) in chosen.enumerated() {
      guard ShareEncoding.isValidShare(bytes[range]) else {
        throw KeyLoadError(kind: .invalid, message: "\(origin): key #\(index + 1) is not a valid unseal key (expected base64 or hex of 16–33 bytes)")
      }
      shares.append(SecretBytes(bytes[range]))
    }
    let threshold = SecretJSON.integer(member("unseal_threshold"), in: bytes)
    let hasRootToken: Bool
    if case .string(let range, _) = member("root_token") { hasRootToken = !range.isEmpty } else { hasRootToken = false }
    return KeyShares(shares: try deduplicated(shares, origin: origin), format: fromCLI ? .operatorInitJSON : .apiInitJSON, declaredThreshold: threshold, containedRootToken: hasRootToken, origin: origin)
  }

  /// The same share listed twice (even once in hex and once in base64) would make Vault ignore
  /// the second copy; drop it here and keep the count honest for the "fewer shares than the
  /// threshold" check. Shares are compared by their decoded bytes, in locked memory.
  private static func deduplicated(_ shares: [SecretBytes], origin: String) throws(KeyLoadError) -> [SecretBytes] {
    var unique: [SecretBytes] = []
    var decodedUnique: [SecretBytes] = []
    for share in shares {
      let decoded = share.withUnsafeBytes { ShareEncoding.decode($0) } ?? share
      if decodedUnique.contains(where: { $0.constantTimeEquals(decoded) }) { continue }
      unique.append(share)
      decodedUnique.append(decoded)
    }
    return unique
  }
}

/// Vault's rule for decoding a submitted key (vault-api.md §3.3): hex first if it decodes to
/// 16–33 bytes, otherwise standard padded base64, which must also decode to 16–33 bytes.
public enum ShareEncoding {
  public static func isValidShare<C: Collection>(_ text: C) -> Bool where C.Element == UInt8 {
    if let n = hexLength(text), (16...33).contains(n) { return true }
    if let n = base64Length(text), (16...33).contains(n) { return true }
    return false
  }

  /// The raw share bytes, decoded the way Vault decodes them, in locked memory.
  static func decode(_ text: UnsafeRawBufferPointer) -> SecretBytes? {
    var raw: [UInt8] = []
    defer { SecretBytes.wipe(&raw) }
    if let n = hexLength(text), (16...33).contains(n) {
      raw.reserveCapacity(n)
      var i = text.startIndex
      while i < text.endIndex {
        raw.append(hexValue(text[i]) << 4 | hexValue(text[i + 1]))
        i += 2
      }
      return SecretBytes(raw)
    }
    if let n = base64Length(text), (16...33).contains(n) {
      raw.reserveCapacity(n + 2)
      var accumulator: UInt32 = 0
      var bits = 0
      for c in text where c != UInt8(ascii: "=") {
        accumulator = accumulator << 6 | UInt32(base64Value(c))
        bits += 6
        if bits >= 8 {
          bits -= 8
          raw.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
        }
      }
      accumulator = 0
      return SecretBytes(raw)
    }
    return nil
  }

  private static func hexValue(_ c: UInt8) -> UInt8 {
    switch c {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
    default: return c - UInt8(ascii: "A") + 10
    }
  }

  private static func base64Value(_ c: UInt8) -> UInt8 {
    switch c {
    case UInt8(ascii: "A")...UInt8(ascii: "Z"): return c - UInt8(ascii: "A")
    case UInt8(ascii: "a")...UInt8(ascii: "z"): return c - UInt8(ascii: "a") + 26
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0") + 52
    case UInt8(ascii: "+"): return 62
    default: return 63
    }
  }

  static func hexLength<C: Collection>(_ text: C) -> Int? where C.Element == UInt8 {
    guard text.count % 2 == 0, !text.isEmpty else { return nil }
    for c in text {
      switch c {
      case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "f"), UInt8(ascii: "A")...UInt8(ascii: "F"): continue
      default: return nil
      }
    }
    return text.count / 2
  }

  static func base64Length<C: Collection>(_ text: C) -> Int? where C.Element == UInt8 {
    guard text.count % 4 == 0, !text.isEmpty else { return nil }
    var padding = 0
    for (offset, c) in text.enumerated() {
      switch c {
      case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
        UInt8(ascii: "+"), UInt8(ascii: "/"):
        if padding > 0 { return nil }
      case UInt8(ascii: "="):
        guard offset >= text.count - 2 else { return nil }
        padding += 1
      default: return nil
      }
    }
    return text.count / 4 * 3 - padding
  }
}
