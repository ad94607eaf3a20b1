// SPDX-License-Identifier: Apache-2.0
import Crypto

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The key schedule of age v1 (C2SP age spec, "Header" and "Payload"): everything is derived
/// from the 16-byte file key with HKDF-SHA256.
enum AgeKeySchedule {
  static let fileKeySize = 16
  static let payloadNonceSize = 16

  /// A fresh random file key. `SymmetricKey` keeps it in swift-crypto's secure storage, which is
  /// zeroed when the last reference goes.
  static func newFileKey() -> SymmetricKey {
    SymmetricKey(size: SymmetricKeySize(bitCount: fileKeySize * 8))
  }

  static func derive(_ ikm: SymmetricKey, salt: [UInt8], info: String) -> SymmetricKey {
    HKDF<SHA256>.deriveKey(inputKeyMaterial: ikm, salt: salt, info: Array(info.utf8), outputByteCount: 32)
  }

  /// HMAC-SHA256 over the header through `---`, keyed with HKDF(file key, "", "header").
  static func headerMAC(fileKey: SymmetricKey, header: ArraySlice<UInt8>) -> [UInt8] {
    Array(HMAC<SHA256>.authenticationCode(for: header, using: derive(fileKey, salt: [], info: "header")))
  }

  /// Constant-time check of a header MAC.
  static func headerMACIsValid(_ mac: [UInt8], fileKey: SymmetricKey, header: ArraySlice<UInt8>) -> Bool {
    HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: header, using: derive(fileKey, salt: [], info: "header"))
  }

  /// The STREAM key: HKDF(file key, salt = the payload's 16-byte nonce, "payload").
  static func payloadKey(fileKey: SymmetricKey, nonce: [UInt8]) -> SymmetricKey {
    derive(fileKey, salt: nonce, info: "payload")
  }
}

/// ChaCha20-Poly1305 with a nonce we build ourselves. Sealing only fails for a wrong key or
/// nonce size, which our own constants rule out: a failure there is a programming error.
enum AgeAEAD {
  static let tagSize = 16

  static func seal(_ plaintext: some DataProtocol, key: SymmetricKey, nonce: [UInt8]) -> Data {
    do {
      let box = try ChaChaPoly.seal(plaintext, using: key, nonce: try ChaChaPoly.Nonce(data: nonce))
      return box.ciphertext + box.tag
    } catch {
      preconditionFailure("ChaCha20-Poly1305 with a 32-byte key and a 12-byte nonce cannot fail: \(error)")
    }
  }

  /// nil when the ciphertext does not authenticate under `key` and `nonce`.
  static func open(_ sealed: some DataProtocol, key: SymmetricKey, nonce: [UInt8]) -> Data? {
    guard sealed.count >= tagSize else { return nil }
    let split = sealed.index(sealed.endIndex, offsetBy: -tagSize)
    do {
      let box = try ChaChaPoly.SealedBox(nonce: try ChaChaPoly.Nonce(data: nonce), ciphertext: sealed[..<split], tag: sealed[split...])
      return try ChaChaPoly.open(box, using: key)
    } catch {
      return nil
    }
  }
}
