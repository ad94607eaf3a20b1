// SPDX-License-Identifier: Apache-2.0
import Crypto

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The X25519 recipient type (C2SP age spec, "X25519 recipient stanza"): a fresh ephemeral key
/// per file and recipient; the file key is sealed with ChaCha20-Poly1305 (all-zero nonce) under
/// HKDF-SHA256(shared secret, salt = ephemeral share ‖ recipient, "age-encryption.org/v1/X25519").
enum AgeX25519 {
  static let type = "X25519"
  static let label = "age-encryption.org/v1/X25519"
  private static let zeroNonce = [UInt8](repeating: 0, count: 12)

  static func wrap(fileKey: SymmetricKey, to recipient: AgeRecipient) throws(AgeError) -> AgeStanza {
    let ephemeral = Curve25519.KeyAgreement.PrivateKey()
    let share = Array(ephemeral.publicKey.rawRepresentation)
    let wrapKey = try wrappingKey(secret: ephemeral, peer: recipient.publicKey, share: share, recipient: recipient.publicKey)
    let body = fileKey.withUnsafeBytes { AgeAEAD.seal($0, key: wrapKey, nonce: zeroNonce) }
    return AgeStanza(type: type, arguments: [String(decoding: AgeBase64.encode(share), as: UTF8.self)], body: Array(body))
  }

  /// The file key if `stanza` was made for `identity`; nil for another recipient's stanza or a
  /// stanza of another type. A malformed X25519 stanza is an error (the file is damaged).
  static func unwrap(_ stanza: AgeStanza, with identity: AgeIdentity) throws(AgeError) -> SymmetricKey? {
    guard stanza.type == type else { return nil }
    guard stanza.arguments.count == 1, let share = AgeBase64.decode(Array(stanza.arguments[0].utf8)), share.count == 32 else {
      throw AgeError(.header, "malformed X25519 stanza: the ephemeral share must be 32 bytes")
    }
    guard stanza.body.count == AgeKeySchedule.fileKeySize + AgeAEAD.tagSize else {
      throw AgeError(.header, "malformed X25519 stanza: the wrapped file key must be 32 bytes")
    }
    let ours = Array(identity.privateKey.publicKey.rawRepresentation)
    let wrapKey = try wrappingKey(secret: identity.privateKey, peer: share, share: share, recipient: ours)
    guard var fileKey = AgeAEAD.open(stanza.body, key: wrapKey, nonce: zeroNonce) else { return nil }
    defer { fileKey.resetBytes(in: 0..<fileKey.count) }
    return SymmetricKey(data: fileKey)
  }

  private static func wrappingKey(secret: Curve25519.KeyAgreement.PrivateKey, peer: [UInt8], share: [UInt8], recipient: [UInt8]) throws(AgeError) -> SymmetricKey {
    let shared: SharedSecret
    do {
      shared = try secret.sharedSecretFromKeyAgreement(with: try Curve25519.KeyAgreement.PublicKey(rawRepresentation: peer))
    } catch {
      throw AgeError(.key, "X25519 agreement failed: the public key is not usable")
    }
    // A low-order point gives an all-zero secret that any attacker can predict: refuse it.
    let allZero = shared.withUnsafeBytes { raw in raw.reduce(UInt8(0)) { $0 | $1 } == 0 }
    guard !allZero else { throw AgeError(.key, "X25519 agreement gave an all-zero secret (low-order public key)") }
    return shared.hkdfDerivedSymmetricKey(using: SHA256.self, salt: share + recipient, sharedInfo: Array(label.utf8), outputByteCount: 32)
  }
}
