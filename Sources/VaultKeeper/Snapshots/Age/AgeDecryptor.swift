// SPDX-License-Identifier: Apache-2.0
import Crypto

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Decrypts an age v1 stream with X25519 identities in constant memory (the header, at most
/// 64 KiB, then about two sealed chunks). Plaintext goes to the consumer chunk by chunk as each
/// one authenticates; a consumer that must not act on unauthenticated data never sees any.
///
/// Note that a truncated or damaged file is only known to be bad at the damaged chunk or at
/// `finish()`: a consumer has seen the authentic chunks before it. Not thread safe.
public final class AgeDecryptor {
  public typealias Consumer = (UnsafeRawBufferPointer) throws(AgeError) -> Void

  private enum State {
    case header
    case nonce(fileKey: SymmetricKey)
    case payload
    case done
  }

  private let identities: [AgeIdentity]
  private var state = State.header
  private var buffer: [UInt8] = []
  private var stream: AgeStream?
  /// Plaintext bytes delivered to the consumer so far.
  public private(set) var plaintextBytes: Int64 = 0

  public init(identities: [AgeIdentity]) {
    self.identities = identities
  }

  /// Whether `prefix` (the first bytes of a file) starts like an age file, binary or armored.
  public static func looksEncrypted(_ prefix: some Collection<UInt8>) -> Bool {
    for magic in [AgeHeader.versionLine, AgeHeader.armorPrefix] {
      let n = min(prefix.count, magic.count)
      if n >= 3, prefix.prefix(n).elementsEqual(magic.prefix(n)) { return true }
    }
    return false
  }

  public func update(_ input: UnsafeRawBufferPointer, consume: Consumer) throws(AgeError) {
    buffer.append(contentsOf: input)
    try process(consume)
  }

  /// The input is over: opens the final chunk. Throws when the file was cut short.
  public func finish(consume: Consumer) throws(AgeError) {
    try process(consume)
    switch state {
    case .header:
      throw AgeError(.header, buffer.isEmpty ? "empty file, not an age file" : "truncated: incomplete age header")
    case .nonce:
      throw AgeError(.payload, "truncated: missing payload nonce")
    case .done:
      return
    case .payload:
      break
    }
    guard var stream else { return }
    let index = stream.counter + 1
    guard buffer.count >= AgeAEAD.tagSize else { throw AgeError(.payload, "truncated: missing final chunk") }
    if let plaintext = stream.open(buffer, last: true) {
      if plaintext.isEmpty && index > 1 {
        throw AgeError(.payload, "payload chunk \(index) is an empty final chunk, which age does not write")
      }
      self.stream = stream
      buffer.removeAll()
      state = .done
      try deliver(plaintext, consume)
      return
    }
    if buffer.count == AgeStream.sealedChunkSize, stream.open(buffer, last: false) != nil {
      throw AgeError(.payload, "truncated: missing final chunk (the file ends after chunk \(index))")
    }
    throw AgeError(.payload, "payload chunk \(index) failed authentication")
  }

  private func process(_ consume: Consumer) throws(AgeError) {
    while true {
      switch state {
      case .header:
        guard let parsed = try AgeHeader.parse(buffer[...]) else { return }
        let fileKey = try unlock(parsed)
        buffer.removeFirst(parsed.length)
        state = .nonce(fileKey: fileKey)
      case .nonce(let fileKey):
        guard buffer.count >= AgeKeySchedule.payloadNonceSize else { return }
        let nonce = Array(buffer.prefix(AgeKeySchedule.payloadNonceSize))
        buffer.removeFirst(AgeKeySchedule.payloadNonceSize)
        stream = AgeStream(key: AgeKeySchedule.payloadKey(fileKey: fileKey, nonce: nonce))
        state = .payload
      case .payload:
        // A whole sealed chunk with more bytes behind it is not the final chunk.
        guard buffer.count > AgeStream.sealedChunkSize, var stream else { return }
        let index = stream.counter + 1
        let sealed = buffer[..<AgeStream.sealedChunkSize]
        guard let plaintext = stream.open(sealed, last: false) else {
          if stream.open(sealed, last: true) != nil {
            throw AgeError(.payload, "trailing data after final chunk \(index)")
          }
          throw AgeError(.payload, "payload chunk \(index) failed authentication")
        }
        self.stream = stream
        buffer.removeFirst(AgeStream.sealedChunkSize)
        try deliver(plaintext, consume)
      case .done:
        guard buffer.isEmpty else { throw AgeError(.payload, "trailing data after final chunk") }
        return
      }
    }
  }

  /// Finds the file key: the first stanza one of our identities opens, then the header MAC.
  private func unlock(_ header: AgeHeader.Parsed) throws(AgeError) -> SymmetricKey {
    for stanza in header.stanzas {
      for identity in identities {
        guard let fileKey = try AgeX25519.unwrap(stanza, with: identity) else { continue }
        guard AgeKeySchedule.headerMACIsValid(header.mac, fileKey: fileKey, header: buffer[..<header.macInputLength]) else {
          throw AgeError(.headerMAC, "header MAC mismatch: the header was modified")
        }
        return fileKey
      }
    }
    let kinds = Set(header.stanzas.map(\.type)).sorted().joined(separator: ", ")
    throw AgeError(.noMatch, "no identity matches any recipient stanza (\(header.stanzas.count) stanza\(header.stanzas.count == 1 ? "" : "s")\(kinds.isEmpty ? "" : ": \(kinds)"))")
  }

  private func deliver(_ plaintext: Data, _ consume: Consumer) throws(AgeError) {
    plaintextBytes += Int64(plaintext.count)
    try AgeBytes.lend(plaintext, consume)
  }
}
