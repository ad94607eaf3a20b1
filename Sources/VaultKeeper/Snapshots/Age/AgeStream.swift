// SPDX-License-Identifier: Apache-2.0
import Crypto

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The age payload's STREAM construction (C2SP age spec, "Payload"): 64 KiB plaintext chunks,
/// each sealed with ChaCha20-Poly1305 under the payload key and a 12-byte nonce made of an
/// 11-byte big-endian chunk counter and a flag byte that is 1 only on the final chunk, so
/// chunks cannot be reordered, dropped from the end, or appended without detection.
struct AgeStream {
  static let chunkSize = 64 * 1024
  static let sealedChunkSize = chunkSize + AgeAEAD.tagSize

  private let key: SymmetricKey
  /// Chunks sealed or opened so far (the next chunk's counter).
  private(set) var counter: UInt64 = 0

  init(key: SymmetricKey) {
    self.key = key
  }

  private func nonce(last: Bool) -> [UInt8] {
    var nonce = [UInt8](repeating: 0, count: 12)
    // Bytes 0-2 stay zero: a UInt64 counter cannot reach 2^64 chunks (a zettabyte).
    for i in 0..<8 { nonce[3 + i] = UInt8(truncatingIfNeeded: counter >> UInt64(56 - 8 * i)) }
    nonce[11] = last ? 1 : 0
    return nonce
  }

  mutating func seal(_ plaintext: some DataProtocol, last: Bool) -> Data {
    let sealed = AgeAEAD.seal(plaintext, key: key, nonce: nonce(last: last))
    counter += 1
    return sealed
  }

  /// The plaintext, or nil when the chunk does not authenticate as chunk `counter` with this
  /// final-flag; the counter only advances on success, so the caller can try the other flag.
  mutating func open(_ sealed: some DataProtocol, last: Bool) -> Data? {
    guard let plaintext = AgeAEAD.open(sealed, key: key, nonce: nonce(last: last)) else { return nil }
    counter += 1
    return plaintext
  }
}
