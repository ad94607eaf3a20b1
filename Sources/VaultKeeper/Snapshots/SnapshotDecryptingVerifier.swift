// SPDX-License-Identifier: Apache-2.0
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
