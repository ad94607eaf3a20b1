// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
@testable import VaultKeeper

@Suite struct KeySharesTests {
  // Shapes of real `vault operator init -format=json` output (values made up).
  static let b64 = ["Xk3kqJXH7J0dIM0DcsCjRW2mZcVpoK5dV9XZ1S4pNVQB", "cXJ0b2dlbmVyYXRlZHNoYXJlMnh4eHh4eHh4eHh4eHh4",
    "c2hhcmV0aHJlZXNoYXJldGhyZWVzaGFyZXRocmVlMDAw"]
  static let hex = ["5e4de4a895c7ec9d1d20cd0372c0a3456da665c569a0ae5d57d5d9d52e29355401",
    "7172742f67656e65726174656473686172653278787878787878787878787878",
    "7368617265746872656573686172657468726565736861726574687265653030"]

  static func initJSON(b64: [String] = b64, hex: [String] = hex, threshold: Int = 3, rootToken: String = "hvs.ABCDEFGHIJKLMNOPQRSTUVWX",
    recoveryB64: [String] = [])
    -> [UInt8]
  {
    func list(_ items: [String]) -> String { "[" + items.map { "\n    \"\($0)\"" }.joined(separator: ",") + "\n  ]" }
    return Array("""
      {
        "unseal_keys_b64": \(list(b64)),
        "unseal_keys_hex": \(list(hex)),
        "unseal_shares": 5,
        "unseal_threshold": \(threshold),
        "recovery_keys_b64": \(list(recoveryB64)),
        "recovery_keys_hex": [],
        "recovery_keys_shares": 0,
        "recovery_keys_threshold": 0,
        "root_token": "\(rootToken)"
      }
      """.utf8)
  }

  func text(_ secret: SecretBytes) -> String { secret.withUnsafeBytes { String(decoding: $0, as: UTF8.self) } }

  @Test func parsesOperatorInitJSON() throws {
    let keys = try KeyShareLoader.parse(Self.initJSON(), origin: "test")
    #expect(keys.format == .operatorInitJSON)
    #expect(keys.shares.map(text) == Self.b64)
    #expect(keys.declaredThreshold == 3)
    #expect(keys.containedRootToken)
  }

  @Test func fallsBackToHex() throws {
    let keys = try KeyShareLoader.parse(Self.initJSON(b64: []), origin: "test")
    #expect(keys.shares.map(text) == Self.hex)
  }

  /// The raw `PUT /v1/sys/init` answer, as OpenBao 2.7 sends it (curl or a provisioning tool
  /// saved it): `keys` (hex) and `keys_base64`, no threshold.
  @Test func parsesTheRawSysInitAnswer() throws {
    func list(_ items: [String]) -> String { "[" + items.map { "\"\($0)\"" }.joined(separator: ",") + "]" }
    let raw = Array("{\"keys\":\(list(Self.hex)),\"keys_base64\":\(list(Self.b64)),\"root_token\":\"s.ABCDEFGHIJKLMNOPQRSTUVWX\"}".utf8)
    let keys = try KeyShareLoader.parse(raw, origin: "test")
    #expect(keys.format == .apiInitJSON)
    #expect(keys.shares.map(text) == Self.b64)
    #expect(keys.declaredThreshold == nil)
    #expect(keys.containedRootToken)
    let hexOnly = Array("{\"keys\":\(list(Self.hex))}".utf8)
    #expect(try KeyShareLoader.parse(hexOnly, origin: "test").shares.map(text) == Self.hex)
  }

  @Test func noRootTokenIsNoted() throws {
    #expect(try !KeyShareLoader.parse(Self.initJSON(rootToken: ""), origin: "test").containedRootToken)
  }

  @Test func refusesRecoveryKeys() {
    do {
      _ = try KeyShareLoader.parse(Self.initJSON(b64: [], hex: [], recoveryB64: Self.b64), origin: "test")
      Issue.record("accepted recovery keys")
    } catch {
      #expect(error.kind == .invalid)
      #expect(error.message.contains("recovery keys"))
    }
  }

  @Test func parsesPlainLines() throws {
    let file = "# shares for node 1\n\(Self.b64[0])\n\n  \(Self.hex[1])  \r\n\(Self.b64[2])\n"
    let keys = try KeyShareLoader.parse(Array(file.utf8), origin: "test")
    #expect(keys.format == .plainLines)
    #expect(keys.shares.map(text) == [Self.b64[0], Self.hex[1], Self.b64[2]])
    #expect(keys.declaredThreshold == nil)
  }

  @Test func dropsDuplicateShares() throws {
    let keys = try KeyShareLoader.parse(Array("\(Self.b64[0])\n\(Self.b64[0])\n".utf8), origin: "test")
    #expect(keys.count == 1)
  }

  @Test func sameShareInHexAndBase64CountsOnce() throws {
    let hex = "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f2021"
    let b64 = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAh"
    let keys = try KeyShareLoader.parse(Array("\(hex)\n\(b64)\n\(Self.b64[0])\n".utf8), origin: "test")
    #expect(keys.count == 2)
    #expect(keys.shares.map(text) == [hex, Self.b64[0]])
  }

  @Test func decodesLikeVault() throws {
    let hex = Array("0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f2021".utf8)
    let b64 = Array("AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAh".utf8)
    let fromHex = try #require(hex.withUnsafeBytes { ShareEncoding.decode($0) })
    let fromB64 = try #require(b64.withUnsafeBytes { ShareEncoding.decode($0) })
    #expect(fromHex.withUnsafeBytes { Array($0) } == Array(1...33))
    #expect(fromHex.constantTimeEquals(fromB64))
    #expect(Array("nope".utf8).withUnsafeBytes { ShareEncoding.decode($0) } == nil)
  }

  @Test(arguments: ["not a key", "abc", "\(String(repeating: "A", count: 80))==", "{\"unseal_keys_b64\": [1, 2]}", "{\"unseal_keys_b64\": [\"abc\"]}",
    "{\"unseal_keys_b64\": ", "{}", ""])
  func rejectsInvalidContent(content: String) {
    #expect(throws: KeyLoadError.self) { try KeyShareLoader.parse(Array(content.utf8), origin: "test") }
  }

  @Test func errorsNeverContainKeyMaterial() {
    let bad = "\(Self.b64[0])\nthis-is-not-a-share-\(Self.b64[1])\n"
    do {
      _ = try KeyShareLoader.parse(Array(bad.utf8), origin: "test")
      Issue.record("accepted a bad line")
    } catch {
      #expect(error.message.contains("line 2"))
      for share in Self.b64 { #expect(!error.message.contains(share)) }
    }
  }

  @Test func ownershipChecks() throws {
    #expect(throws: Never.self) { try KeyShareLoader.checkOwnership(.init(uid: 10, mode: 0o600), path: "/k", expectedUID: 10) }
    #expect(throws: Never.self) { try KeyShareLoader.checkOwnership(.init(uid: 10, mode: 0o400), path: "/k", expectedUID: 10) }
    for mode: UInt32 in [0o640, 0o604, 0o644, 0o660, 0o602] {
      do {
        try KeyShareLoader.checkOwnership(.init(uid: 10, mode: mode), path: "/k", expectedUID: 10)
        Issue.record("accepted mode \(String(mode, radix: 8))")
      } catch {
        #expect(error.kind == .insecure)
        #expect(error.message.contains("chmod 0600 /k"))
      }
    }
    do {
      try KeyShareLoader.checkOwnership(.init(uid: 11, mode: 0o600), path: "/k", expectedUID: 10)
      Issue.record("accepted a file owned by someone else")
    } catch {
      #expect(error.kind == .insecure)
      #expect(error.message.contains("chown"))
    }
  }

  @Test func loadsFromARealFileAndChecksPermissions() throws {
    let path = NSTemporaryDirectory() + "vk-keys-\(UUID().uuidString)"
    defer { unlink(path) }
    _ = FileManager.default.createFile(atPath: path, contents: Data(Self.initJSON()), attributes: [.posixPermissions: 0o600])
    #expect(try KeyShareLoader.load(source: .file(path), environment: [:]).count == 3)
    chmod(path, 0o644)
    #expect(throws: KeyLoadError.self) { try KeyShareLoader.load(source: .file(path), environment: [:]) }
  }

  @Test func credentialNeedsTheCredentialsDirectory() throws {
    do {
      _ = try KeyShareLoader.path(for: .credential("unseal-keys"), environment: [:])
      Issue.record("resolved a credential without CREDENTIALS_DIRECTORY")
    } catch {
      #expect(error.message.contains("LoadCredentialEncrypted"))
    }
    let resolved = try KeyShareLoader.path(for: .credential("unseal-keys"), environment: ["CREDENTIALS_DIRECTORY": "/run/credentials/vk.service"])
    #expect(resolved.path == "/run/credentials/vk.service/unseal-keys")
  }

  @Test(arguments: [
    ("5e4de4a895c7ec9d1d20cd0372c0a3456da665c569a0ae5d57d5d9d52e29355401", true),  // 33 bytes hex
    ("00112233445566778899aabbccddeeff", true),  // 16 bytes hex
    ("00112233445566778899aabbccddee", false),  // 15 bytes
    ("Xk3kqJXH7J0dIM0DcsCjRW2mZcVpoK5dV9XZ1S4pNVQB", true),  // 33 bytes base64
    ("q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=", true),  // 32 bytes base64
    ("q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA", false),  // missing padding
    ("q83v=jRW", false),
  ])
  func shareEncoding(text: String, valid: Bool) {
    #expect(ShareEncoding.isValidShare(Array(text.utf8)) == valid)
  }
}

@Suite struct SecretJSONTests {
  @Test func parsesNestedValues() throws {
    let bytes = Array("{\"a\": [1, -2.5e3, true, false, null, \"x\\\"y\"], \"b\": {}}".utf8)
    guard case .object(let members) = try SecretJSON.parse(bytes) else {
      Issue.record("not an object")
      return
    }
    #expect(members.map(\.key) == ["a", "b"])
    guard case .array(let items) = members[0].value else {
      Issue.record("not an array")
      return
    }
    #expect(items.count == 6)
    #expect(items[2] == .bool(true))
    #expect(items[4] == .null)
    guard case .string(let range, let escapes) = items[5] else {
      Issue.record("not a string")
      return
    }
    #expect(escapes)
    #expect(String(decoding: bytes[range], as: UTF8.self) == "x\\\"y")
  }

  @Test(arguments: ["{", "[1,]", "{\"a\" 1}", "{\"a\":1,}", "tru", "\"unterminated", "01x", "{} {}", "[\"a\nb\"]", "-", "1.", "1e"])
  func rejectsInvalidJSON(text: String) {
    #expect(throws: SecretJSON.SyntaxError.self) { try SecretJSON.parse(Array(text.utf8)) }
  }

  @Test func limitsNesting() {
    #expect(throws: SecretJSON.SyntaxError.self) { try SecretJSON.parse(Array((String(repeating: "[", count: 40) + String(repeating: "]", count: 40)).utf8)) }
  }
}

@Suite struct SecretBytesTests {
  @Test func neverPrintsItsContent() {
    let secret = SecretBytes(utf8: "hunter2-unseal-share")
    #expect("\(secret)" == "<redacted 20 bytes>")
    #expect(String(describing: secret) == "<redacted 20 bytes>")
    #expect(String(reflecting: secret) == "<redacted 20 bytes>")
  }

  @Test func comparesInConstantTime() {
    #expect(SecretBytes(utf8: "abc").constantTimeEquals(SecretBytes(utf8: "abc")))
    #expect(!SecretBytes(utf8: "abc").constantTimeEquals(SecretBytes(utf8: "abd")))
    #expect(!SecretBytes(utf8: "abc").constantTimeEquals(SecretBytes(utf8: "abcd")))
  }

  @Test func wipeClearsArrays() {
    var bytes: [UInt8] = Array("secret".utf8)
    SecretBytes.wipe(&bytes)
    #expect(bytes.isEmpty)
  }
}
