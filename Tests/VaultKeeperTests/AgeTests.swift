// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
@testable import VaultKeeper

/// A throwaway key pair made with `age-keygen` (age 1.1.1), and a file `age -r` encrypted to it.
/// They pin our Bech32, X25519 and key schedule to the reference implementation.
enum AgeVectors {
  static let identity = "AGE-SECRET-KEY-1094CC66SHULRTVPG2U5H2UG9TG9ST0WTAAAYCDUVHEA45TTPMZ0QY2TXTR"
  static let recipient = "age1csfec6c76zea0gvpy48wcatul4rc92m5tx28t9wn65d4rl4yjy3s7xra37"
  static let helloFromAge = Data(base64Encoded:
    "YWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IFgyNTUxOSBKRGJSR3JVQnM0U1YxeUk2U1J6cFJPZkNSaHphUTFhcTVhY1RWanJ5R2c4CkNQUHU3YS9DUG5lZlVVTzEyM3BtOUxWd1BhNGtRYTR4VWFlODJUUFJDMkkKLS0tIHdEQS9rR2ErYTA0Q3JkaUVNUDZvUThJZ0duVWpPdjlqTHR2bVpFc2IwMncKpsyq2ALmRCkJtotbjvu3udDW+OmNCjkiOOr+zIWWNtEVgn8mb0SJxjMv0QsY4pSVpVwM"
  )

  static func identityValue() throws -> AgeIdentity {
    try AgeIdentity(bytes: Array(identity.utf8)[...])
  }
}

/// Encrypts and decrypts whole buffers through the streaming API, in pieces of `piece` bytes so
/// chunk boundaries fall everywhere.
enum AgeHarness {
  static func encrypt(_ plaintext: [UInt8], to recipients: [AgeRecipient], piece: Int = 10_000) throws -> [UInt8] {
    let encryptor = try AgeEncryptor(recipients: recipients)
    var out: [UInt8] = []
    var offset = 0
    while offset < plaintext.count {
      let end = min(offset + piece, plaintext.count)
      try plaintext[offset..<end].withUnsafeBytes { raw in
        try encryptor.update(raw) { (bytes: UnsafeRawBufferPointer) throws(AgeError) in out.append(contentsOf: bytes) }
      }
      offset = end
    }
    try encryptor.finish { (bytes: UnsafeRawBufferPointer) throws(AgeError) in out.append(contentsOf: bytes) }
    return out
  }

  static func decrypt(_ ciphertext: [UInt8], with identities: [AgeIdentity], piece: Int = 7_777) throws(AgeError) -> [UInt8] {
    let decryptor = AgeDecryptor(identities: identities)
    var out: [UInt8] = []
    var offset = 0
    while offset < ciphertext.count {
      let end = min(offset + piece, ciphertext.count)
      let result: Result<Void, AgeError> = ciphertext[offset..<end].withUnsafeBytes { raw in
        do throws(AgeError) {
          try decryptor.update(raw) { bytes throws(AgeError) in out.append(contentsOf: bytes) }
          return .success(())
        } catch {
          return .failure(error)
        }
      }
      try result.get()
      offset = end
    }
    try decryptor.finish { bytes throws(AgeError) in out.append(contentsOf: bytes) }
    return out
  }

  static func error(_ ciphertext: [UInt8], with identities: [AgeIdentity]) -> AgeError? {
    do {
      _ = try decrypt(ciphertext, with: identities)
      return nil
    } catch {
      return error
    }
  }

  static func random(_ count: Int) -> [UInt8] {
    var rng = SystemRandomNumberGenerator()
    return (0..<count).map { _ in rng.next() }
  }
}

@Suite struct Bech32Tests {
  @Test(arguments: [
    ("A12UEL5L", "a", 0), ("a12uel5l", "a", 0), ("abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw", "abcdef", 20),
    ("split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w", "split", 30), ("?1ezyfcl", "?", 0),
  ])
  func validVectors(text: String, hrp: String, bytes: Int) throws {
    let decoded = try Bech32.decode(text)
    #expect(decoded.hrp == hrp)
    #expect(decoded.data.count == bytes)
  }

  @Test(arguments: [
    ("A1G7SGD8", "checksum"),  // checksum computed over the upper-case HRP
    ("a12uel5k", "checksum"), ("x1b4n0q5v", "alphabet"), ("li1dgmt3", "too short"), ("10a06t8", "separator"),
    ("1qzzfhee", "separator"), ("pzry9x0s0muk", "separator"), ("A12uEL5L", "mixes"), ("a12uel5l\u{7f}", "printable"),
    ("a1 2uel5l", "printable"),
  ])
  func invalidVectors(text: String, reason: String) {
    #expect(throws: AgeError.self) { try Bech32.decode(text) }
    do {
      _ = try Bech32.decode(text)
    } catch {
      #expect(error.message.contains(reason), "\(error.message)")
    }
  }

  @Test func encodeRoundTrips() throws {
    for count in [0, 1, 20, 32, 33] {
      let data = AgeHarness.random(count)
      let text = Bech32.encode(hrp: "age", data: data)
      let decoded = try Bech32.decode(text)
      #expect(decoded.hrp == "age")
      #expect(decoded.data == data)
      #expect(try Bech32.decode(text.uppercased()).data == data)
    }
  }

  @Test func everySingleCharacterChangeIsCaught() {
    let chars = Array(AgeVectors.recipient)
    for position in 4..<chars.count {
      var changed = chars
      changed[position] = chars[position] == "q" ? "p" : "q"
      #expect(throws: AgeError.self) { try AgeRecipient(String(changed)) }
    }
  }
}

@Suite struct AgeKeyTests {
  @Test func identityFromAgeKeygenGivesItsPublicKey() throws {
    #expect(try AgeVectors.identityValue().recipient.description == AgeVectors.recipient)
    #expect(try AgeRecipient(AgeVectors.recipient).description == AgeVectors.recipient)
  }

  @Test func recipientErrors() {
    func message(_ text: String) -> String {
      do {
        _ = try AgeRecipient(text)
        return "accepted"
      } catch {
        return error.message
      }
    }
    #expect(message(String(AgeVectors.recipient.dropLast()) + "8").contains("checksum"))
    #expect(message("age1CSFEC6c76zea0gvpy48wcatul4rc92m5tx28t9wn65d4rl4yjy3s7xra37").contains("mixes"))
    #expect(message(Bech32.encode(hrp: "age", data: AgeHarness.random(31))).contains("not 32"))
    #expect(message(Bech32.encode(hrp: "age-secret-key-", data: AgeHarness.random(32))).contains("expected \"age1"))
    #expect(message("ssh-ed25519 AAAA").contains("not an age recipient"))
  }

  @Test func identityFileSkipsCommentsAndBlankLines() throws {
    let file = "# created: 2026-01-01\r\n# public key: \(AgeVectors.recipient)\r\n\r\n  \(AgeVectors.identity)  \r\n\n"
    let identities = try AgeIdentity.parseFile(Array(file.utf8))
    #expect(identities.count == 1)
    #expect(identities[0].recipient.description == AgeVectors.recipient)
    #expect(try AgeIdentity.parseFile(Array(AgeVectors.identity.lowercased().utf8)).count == 1)
  }

  @Test func identityFileErrorsNameTheLineNeverTheKey() {
    let broken = String(AgeVectors.identity.dropLast()) + "Q"
    let cases = [
      ("# comment\n\(broken)\n", "line 2"),
      ("\(AgeVectors.identity)\n\(AgeVectors.recipient)\n", "line 2"),
      ("# nothing here\n\n", "no AGE-SECRET-KEY"),
      ("\(AgeVectors.identity.prefix(30).lowercased())\(AgeVectors.identity.dropFirst(30))\n", "line 1"),
    ]
    for (file, expected) in cases {
      do {
        _ = try AgeIdentity.parseFile(Array(file.utf8))
        Issue.record("accepted \(expected)")
      } catch {
        #expect(error.message.contains(expected), "\(error.message)")
        for part in [AgeVectors.identity.dropFirst(16).prefix(8), AgeVectors.identity.dropFirst(40).prefix(8), AgeVectors.identity.suffix(8)] {
          #expect(!error.message.lowercased().contains(part.lowercased()), "error quotes key material")
        }
      }
    }
    // An identity interpolated by mistake shows its public half only.
    let shown = String(describing: try? AgeVectors.identityValue())
    #expect(shown.contains(AgeVectors.recipient) && !shown.contains("SECRET"))
  }

  @Test func recipientsFile() throws {
    let second = AgeIdentity.generate().recipient.description
    let parsed = try AgeRecipient.parseFile("# ops\n\(AgeVectors.recipient)\n\n  \(second)  \n")
    #expect(parsed.map(\.description) == [AgeVectors.recipient, second])
    #expect(throws: AgeRecipientFileError(line: 3, message: "not an age X25519 recipient (expected \"age1…\")")) {
      try AgeRecipient.parseFile("# ops\n\(AgeVectors.recipient)\n\(AgeVectors.identity)\n")
    }
  }
}

@Suite struct AgeFormatTests {
  @Test func base64IsCanonicalAndUnpadded() {
    #expect(AgeBase64.decode(Array("AA".utf8)) == [0])
    #expect(AgeBase64.decode(Array("AB".utf8)) == nil)  // non-zero unused bits
    #expect(AgeBase64.decode(Array("AA==".utf8)) == nil)
    #expect(AgeBase64.decode(Array("A".utf8)) == nil)
    #expect(AgeBase64.decode(Array("A-A".utf8)) == nil)
    for count in 0..<70 {
      let data = AgeHarness.random(count)
      let encoded = AgeBase64.encode(data)
      #expect(encoded == Array(Data(data).base64EncodedString().utf8.filter { $0 != UInt8(ascii: "=") }))
      #expect(AgeBase64.decode(encoded) == data)
    }
  }

  @Test func headerWrapsBodiesAt64Columns() throws {
    let stanzas = [
      AgeStanza(type: "X25519", arguments: ["abc"], body: AgeHarness.random(32)),
      AgeStanza(type: "test", arguments: [], body: AgeHarness.random(48)),  // exactly one full line
      AgeStanza(type: "test", arguments: ["a", "b"], body: []),
      AgeStanza(type: "test", arguments: [], body: AgeHarness.random(100)),
    ]
    let mac = AgeHarness.random(32)
    let encoded = AgeHeader.encode(stanzas, mac: mac)
    let lines = String(decoding: encoded, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
    #expect(lines[0] == "age-encryption.org/v1")
    #expect(lines[3] == "-> test")
    #expect(lines[4].count == 64)
    #expect(lines[5].isEmpty)  // a body that fills its last line is followed by an empty one
    #expect(lines[6] == "-> test a b")
    #expect(lines[7].isEmpty)
    #expect(lines.allSatisfy { $0.count <= 64 })
    let parsed = try #require(try AgeHeader.parse((encoded + [1, 2, 3])[...]))
    #expect(parsed.stanzas == stanzas)
    #expect(parsed.mac == mac)
    #expect(parsed.length == encoded.count)
    #expect(Array(encoded[..<parsed.macInputLength]) == AgeHeader.encodeForMAC(stanzas))
    // Every proper prefix asks for more bytes rather than failing.
    for cut in 0..<encoded.count { #expect(try AgeHeader.parse(encoded[..<cut]) == nil) }
  }

  @Test(arguments: [
    ("age-encryption.org/v2\n", "not an age"), ("PK\u{3}\u{4}", "not an age"), ("-----BEGIN AGE ENCRYPTED FILE-----\n", "armored"),
    ("age-encryption.org/v1\n-> X25519  x\nAA\n--- ", "stanza arguments"),
    ("age-encryption.org/v1\n-> X25519 x\nAB\n--- ", "stanza body"),
    ("age-encryption.org/v1\n-> X25519 x\nAA\n--- short\n", "MAC line"),
    ("age-encryption.org/v1\nhello\n", "malformed header line"),
  ])
  func malformedHeaders(text: String, reason: String) {
    do {
      _ = try AgeHeader.parse(Array(text.utf8)[...])
      Issue.record("accepted")
    } catch {
      #expect(error.kind == .header)
      #expect(error.message.contains(reason), "\(error.message)")
    }
  }

  @Test func looksEncrypted() {
    #expect(AgeDecryptor.looksEncrypted(Array("age-encryption.org/v1\n-> X".utf8)))
    #expect(AgeDecryptor.looksEncrypted(Array("-----BEGIN AGE".utf8)))
    #expect(!AgeDecryptor.looksEncrypted([0x1f, 0x8b, 8, 0]))
    #expect(!AgeDecryptor.looksEncrypted([UInt8]()))
  }
}

@Suite struct AgeStreamTests {
  let identity = AgeIdentity.generate()

  @Test func decryptsWhatAgeWrote() throws {
    let data = try #require(AgeVectors.helloFromAge)
    let plain = try AgeHarness.decrypt(Array(data), with: [try AgeVectors.identityValue()], piece: 1)
    #expect(String(decoding: plain, as: UTF8.self) == "hello, vaultkeeper\n")
  }

  @Test(arguments: [0, 1, 1000, 65_535, 65_536, 65_537, 3 * 65_536, 3 * 65_536 + 17])
  func roundTrips(size: Int) throws {
    let plaintext = AgeHarness.random(size)
    for piece in [1_000, 65_536, 100_000] where size <= 65_537 || piece != 1 {
      let ciphertext = try AgeHarness.encrypt(plaintext, to: [identity.recipient], piece: piece)
      let chunks = max(1, (size + 65_535) / 65_536)
      let header = try #require(try AgeHeader.parse(ciphertext[...])).length
      #expect(ciphertext.count == header + 16 + size + 16 * chunks)
      #expect(try AgeHarness.decrypt(ciphertext, with: [identity], piece: piece + 3) == plaintext)
    }
  }

  @Test func byteAtATimeAcrossAChunkBoundary() throws {
    let plaintext = AgeHarness.random(65_536 + 5)
    let ciphertext = try AgeHarness.encrypt(plaintext, to: [identity.recipient], piece: 1)
    #expect(try AgeHarness.decrypt(ciphertext, with: [identity], piece: 1) == plaintext)
  }

  @Test func everyRecipientCanDecrypt() throws {
    let others = [AgeIdentity.generate(), AgeIdentity.generate()]
    let plaintext = AgeHarness.random(70_000)
    let ciphertext = try AgeHarness.encrypt(plaintext, to: [identity.recipient] + others.map(\.recipient))
    let parsed = try #require(try AgeHeader.parse(ciphertext[...]))
    #expect(parsed.stanzas.count == 3)
    #expect(Set(parsed.stanzas.map { $0.arguments[0] }).count == 3)  // one ephemeral key each
    for id in [identity] + others { #expect(try AgeHarness.decrypt(ciphertext, with: [id]) == plaintext) }
    // An identity file may hold several keys; any match is enough.
    #expect(try AgeHarness.decrypt(ciphertext, with: [AgeIdentity.generate(), others[1]]) == plaintext)
  }

  @Test func wrongIdentity() throws {
    let ciphertext = try AgeHarness.encrypt([1, 2, 3], to: [identity.recipient])
    let error = AgeHarness.error(ciphertext, with: [AgeIdentity.generate()])
    #expect(error?.kind == .noMatch)
    #expect(error?.message.hasPrefix("no identity matches any recipient stanza") == true)
  }

  @Test func tamperedHeaderStanzaBodyMatchesNoIdentity() throws {
    var ciphertext = try AgeHarness.encrypt([1, 2, 3], to: [identity.recipient])
    let lines = ciphertext.split(separator: 0x0A, maxSplits: 3)
    let bodyStart = lines[2].startIndex
    ciphertext[bodyStart + 5] = ciphertext[bodyStart + 5] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
    #expect(AgeHarness.error(ciphertext, with: [identity])?.kind == .noMatch)
  }

  @Test func addedStanzaBreaksTheHeaderMAC() throws {
    let ciphertext = try AgeHarness.encrypt([1, 2, 3], to: [identity.recipient])
    let footer = try #require(ciphertext.firstRange(of: Array("\n---".utf8)))
    let tampered = Array(ciphertext[...footer.lowerBound]) + Array("-> grease x\n\n".utf8) + Array(ciphertext[(footer.lowerBound + 1)...])
    let error = AgeHarness.error(tampered, with: [identity])
    #expect(error?.kind == .headerMAC)
    #expect(error?.message.hasPrefix("header MAC mismatch") == true)
  }

  @Test func flippedMAC() throws {
    var ciphertext = try AgeHarness.encrypt([1, 2, 3], to: [identity.recipient])
    let footer = try #require(ciphertext.firstRange(of: Array("\n--- ".utf8)))
    let position = footer.upperBound + 2
    ciphertext[position] = ciphertext[position] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
    let error = AgeHarness.error(ciphertext, with: [identity])
    #expect(error?.kind == .headerMAC || error?.kind == .header)  // a flip can also make the base64 non-canonical
  }

  @Test func tamperedPayloadNamesTheChunk() throws {
    let plaintext = AgeHarness.random(3 * 65_536)
    let ciphertext = try AgeHarness.encrypt(plaintext, to: [identity.recipient])
    let start = try #require(try AgeHeader.parse(ciphertext[...])).length + 16
    for (chunk, offset) in [(1, 10), (2, 65_552 + 100), (3, 2 * 65_552 + 65_551), (1, -1)] {
      var copy = ciphertext
      let position = offset < 0 ? start - 1 : start + offset  // -1: the payload nonce
      copy[position] ^= 0x01
      let error = AgeHarness.error(copy, with: [identity])
      #expect(error?.message == "payload chunk \(chunk) failed authentication", "\(String(describing: error))")
    }
  }

  @Test func truncationAtAChunkBoundaryIsDetected() throws {
    let plaintext = AgeHarness.random(3 * 65_536)
    let ciphertext = try AgeHarness.encrypt(plaintext, to: [identity.recipient])
    let start = try #require(try AgeHeader.parse(ciphertext[...])).length + 16
    for chunks in [1, 2] {
      let error = AgeHarness.error(Array(ciphertext[..<(start + chunks * 65_552)]), with: [identity])
      #expect(error?.message.hasPrefix("truncated: missing final chunk") == true, "\(String(describing: error))")
    }
    #expect(AgeHarness.error(Array(ciphertext[..<start]), with: [identity])?.message == "truncated: missing final chunk")
    #expect(AgeHarness.error(Array(ciphertext[..<(start - 3)]), with: [identity])?.message == "truncated: missing payload nonce")
    #expect(AgeHarness.error(Array(ciphertext[..<(start - 40)]), with: [identity])?.message == "truncated: incomplete age header")
    #expect(AgeHarness.error(Array(ciphertext[..<(start + 65_552 + 20)]), with: [identity])?.message == "payload chunk 2 failed authentication")
    #expect(AgeHarness.error([], with: [identity])?.kind == .header)
  }

  @Test func trailingDataAfterTheFinalChunk() throws {
    let full = try AgeHarness.encrypt(AgeHarness.random(65_536), to: [identity.recipient])
    #expect(AgeHarness.error(full + [0], with: [identity])?.message.hasPrefix("trailing data after final chunk") == true)
    #expect(AgeHarness.error(full + AgeHarness.random(70_000), with: [identity])?.message.hasPrefix("trailing data after final chunk") == true)
    // After a short final chunk the boundary is unknowable: still refused, as a damaged chunk.
    let short = try AgeHarness.encrypt([1, 2, 3], to: [identity.recipient])
    #expect(AgeHarness.error(short + [0], with: [identity])?.kind == .payload)
  }

  /// Files no conforming writer produces: an empty final chunk after data, and an empty
  /// non-final chunk.
  @Test func emptyChunksAreOnlyValidForEmptyPlaintext() throws {
    func file(_ build: (inout AgeStream) -> [UInt8]) throws -> [UInt8] {
      let fileKey = AgeKeySchedule.newFileKey()
      let stanza = try AgeX25519.wrap(fileKey: fileKey, to: identity.recipient)
      let mac = AgeKeySchedule.headerMAC(fileKey: fileKey, header: AgeHeader.encodeForMAC([stanza])[...])
      let nonce = AgeHarness.random(16)
      var stream = AgeStream(key: AgeKeySchedule.payloadKey(fileKey: fileKey, nonce: nonce))
      return AgeHeader.encode([stanza], mac: mac) + nonce + build(&stream)
    }
    let valid = try file { Array($0.seal(AgeHarness.random(65_536), last: false)) + Array($0.seal([1], last: true)) }
    #expect(try AgeHarness.decrypt(valid, with: [identity]).count == 65_537)
    let emptyFinal = try file { Array($0.seal(AgeHarness.random(65_536), last: false)) + Array($0.seal([UInt8](), last: true)) }
    #expect(AgeHarness.error(emptyFinal, with: [identity])?.message.contains("empty final chunk") == true)
    let emptyNonFinal = try file { Array($0.seal([UInt8](), last: false)) + Array($0.seal([1], last: true)) }
    #expect(AgeHarness.error(emptyNonFinal, with: [identity])?.kind == .payload)
  }

  @Test func consumerErrorsStopDecryption() throws {
    let ciphertext = try AgeHarness.encrypt(AgeHarness.random(200_000), to: [identity.recipient])
    let decryptor = AgeDecryptor(identities: [identity])
    var calls = 0
    do {
      try ciphertext.withUnsafeBytes { raw in
        try decryptor.update(raw) { _ throws(AgeError) in
          calls += 1
          throw AgeError(.consumer, "not a snapshot")
        }
      }
      Issue.record("consumer error swallowed")
    } catch let error as AgeError {
      #expect(error == AgeError(.consumer, "not a snapshot"))
    }
    #expect(calls == 1)
  }
}
