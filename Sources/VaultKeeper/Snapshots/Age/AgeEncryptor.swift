// SPDX-License-Identifier: Apache-2.0
import Crypto

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Encrypts a stream to one or more age X25519 recipients in constant memory (one 64 KiB
/// chunk). Emits the header and payload nonce before the first ciphertext, then sealed chunks;
/// `finish()` seals the last chunk. The output is a standard age v1 file (`age -d` reads it).
///
/// The file key only exists inside `init`: once the stanzas, the header MAC and the payload
/// key are derived it is released (swift-crypto zeroes its storage). Not thread safe.
public final class AgeEncryptor {
  private var stream: AgeStream
  private var pendingHeader: [UInt8]?
  /// Plaintext of the chunk being filled. A full chunk is sealed only when more plaintext
  /// arrives, because the final chunk (flagged) may itself be full.
  private var chunk: [UInt8] = []
  private var finished = false

  public init(recipients: [AgeRecipient]) throws(AgeError) {
    guard !recipients.isEmpty else { throw AgeError(.key, "no recipients to encrypt to") }
    let fileKey = AgeKeySchedule.newFileKey()
    var stanzas: [AgeStanza] = []
    for recipient in recipients {
      do {
        stanzas.append(try AgeX25519.wrap(fileKey: fileKey, to: recipient))
      } catch {
        throw AgeError(.key, "recipient \(recipient): \(error.message)")
      }
    }
    let macInput = AgeHeader.encodeForMAC(stanzas)
    let mac = AgeKeySchedule.headerMAC(fileKey: fileKey, header: macInput[...])
    var nonce = [UInt8](repeating: 0, count: AgeKeySchedule.payloadNonceSize)
    var rng = SystemRandomNumberGenerator()
    for i in nonce.indices { nonce[i] = rng.next() }
    stream = AgeStream(key: AgeKeySchedule.payloadKey(fileKey: fileKey, nonce: nonce))
    pendingHeader = AgeHeader.encode(stanzas, mac: mac) + nonce
    chunk.reserveCapacity(AgeStream.chunkSize)
  }

  /// Encrypts `plaintext`; ciphertext goes to `emit` in pieces (header first, then whole
  /// sealed chunks). Errors are only `emit`'s own.
  public func update<E: Error>(_ plaintext: UnsafeRawBufferPointer, emit: (UnsafeRawBufferPointer) throws(E) -> Void) throws(E) {
    precondition(!finished, "AgeEncryptor.update after finish")
    try emitHeader(emit)
    var offset = 0
    while offset < plaintext.count {
      if chunk.count == AgeStream.chunkSize {
        let sealed = stream.seal(chunk, last: false)
        chunk.removeAll(keepingCapacity: true)
        try AgeBytes.lend(sealed, emit)
      }
      let take = min(AgeStream.chunkSize - chunk.count, plaintext.count - offset)
      chunk.append(contentsOf: UnsafeRawBufferPointer(rebasing: plaintext[offset..<(offset + take)]))
      offset += take
    }
  }

  /// Seals the final chunk (empty for empty plaintext, as the format requires).
  public func finish<E: Error>(emit: (UnsafeRawBufferPointer) throws(E) -> Void) throws(E) {
    precondition(!finished, "AgeEncryptor.finish twice")
    try emitHeader(emit)
    finished = true
    let sealed = stream.seal(chunk, last: true)
    chunk.removeAll()
    try AgeBytes.lend(sealed, emit)
  }

  private func emitHeader<E: Error>(_ emit: (UnsafeRawBufferPointer) throws(E) -> Void) throws(E) {
    guard let header = pendingHeader else { return }
    pendingHeader = nil
    try AgeBytes.lend(header, emit)
  }
}

/// `withUnsafeBytes` rethrows untyped errors; these carry a typed error across it.
enum AgeBytes {
  static func lend<E: Error>(_ bytes: some ContiguousBytes, _ body: (UnsafeRawBufferPointer) throws(E) -> Void) throws(E) {
    let result: Result<Void, E> = bytes.withUnsafeBytes { raw in
      do throws(E) {
        try body(raw)
        return .success(())
      } catch {
        return .failure(error)
      }
    }
    try result.get()
  }
}
