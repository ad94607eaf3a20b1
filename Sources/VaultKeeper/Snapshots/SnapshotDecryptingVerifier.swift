// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif

/// Verifies a snapshot file as it is read, plain or age-encrypted: an age file (recognised by
/// its first bytes) is decrypted on the way with the given identities and the plaintext goes
/// to the archive verifier, so neither needs the whole file in memory or on disk.
public final class SnapshotDecryptingVerifier {
  private let verifier: SnapshotGzipVerifier
  private let identities: [AgeIdentity]?
  private var decryptor: AgeDecryptor?
  private var decided = false

  /// - Parameter identities: nil when none were given; an encrypted file is then refused.
  public init(verifier: SnapshotGzipVerifier, identities: [AgeIdentity]?) {
    self.verifier = verifier
    self.identities = identities
  }

  /// The reason for a file that is encrypted when no identity was given.
  public static let needsIdentity = "encrypted: pass --identity FILE (an age identity file) to verify it"

  /// Whether the file turned out to be age-encrypted (known after the first bytes).
  public var encrypted: Bool { decryptor != nil }

  /// Also receives every verified-so-far piece of plaintext (e.g. to write a decrypted copy for
  /// a restore); an error from it stops verification.
  public var tee: ((UnsafeRawBufferPointer) throws(SnapshotVerificationError) -> Void)?

  public func feed(_ bytes: UnsafeRawBufferPointer) throws(SnapshotVerificationError) {
    guard bytes.count > 0 else { return }
    if !decided {
      decided = true
      if AgeDecryptor.looksEncrypted(bytes.prefix(32)) {
        guard let identities else { throw SnapshotVerificationError(Self.needsIdentity) }
        decryptor = AgeDecryptor(identities: identities)
      }
    }
    guard let decryptor else {
      try tee?(bytes)
      return try verifier.feed(bytes)
    }
    do {
      try decryptor.update(bytes, consume: plaintext)
    } catch {
      throw SnapshotVerificationError(error.message)
    }
  }

  public func finish() throws(SnapshotVerificationError) -> SnapshotFacts {
    if let decryptor {
      do {
        try decryptor.finish(consume: plaintext)
      } catch {
        throw SnapshotVerificationError(error.message)
      }
    }
    return try verifier.finish()
  }

  /// Hands authenticated plaintext to the archive verifier; its objection stops decryption.
  private func plaintext(_ bytes: UnsafeRawBufferPointer) throws(AgeError) {
    do {
      try tee?(bytes)
      try verifier.feed(bytes)
    } catch {
      throw AgeError(.consumer, error.reason)
    }
  }
}

extension SnapshotDecryptingVerifier {
  /// Reads the open file `fd` from its current offset to the end through the verifier and
  /// returns the facts (`snapshot verify`, `snapshot restore`, the drill's verified copy).
  /// Blocking: call it on a thread of its own, never on the cooperative pool.
  public func verify(descriptor fd: Int32, isCancelled: () -> Bool = { false }) throws(SnapshotVerificationError) -> SnapshotFacts {
    var buffer = [UInt8](repeating: 0, count: 64 * 1024)
    while true {
      if isCancelled() { throw SnapshotVerificationError("cancelled") }
      let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
      if n < 0 {
        if errno == EINTR { continue }
        throw SnapshotVerificationError("read error: \(String(cString: strerror(errno)))")
      }
      if n == 0 { break }
      // withUnsafeBytes rethrows untyped errors: carry the typed one out by hand.
      let fed: Result<Void, SnapshotVerificationError> = buffer.withUnsafeBytes { raw in
        do throws(SnapshotVerificationError) {
          try feed(UnsafeRawBufferPointer(rebasing: raw[0..<n]))
          return .success(())
        } catch {
          return .failure(error)
        }
      }
      try fed.get()
    }
    return try finish()
  }
}
