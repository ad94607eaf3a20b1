// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif

/// The drill's snapshot source for a file: reads it like `snapshot verify` (an age-encrypted one
/// decrypted with the identity file, when one is given), and writes exactly the verified plain
/// archive into the drill's directory, so the drill restores the bytes that were verified
/// whatever happens to the file meanwhile. Blocking; `RestoreDrill` runs it on a thread of its own.
public struct VerifiedSnapshotCopy: DrillSnapshotSource {
  public var path: String
  public var identityFile: String?
  public var makeDecompressor: @Sendable () throws(SnapshotVerificationError) -> any StreamDecompressor

  public init(path: String, identityFile: String?,
    makeDecompressor: @escaping @Sendable () throws(SnapshotVerificationError) -> any StreamDecompressor)
  {
    self.path = path
    self.identityFile = identityFile
    self.makeDecompressor = makeDecompressor
  }

  public func writeVerified(to destination: String, isCancelled: @escaping @Sendable () -> Bool) -> Result<SnapshotFacts, SnapshotVerificationError> {
    do throws(SnapshotVerificationError) {
      return .success(try copy(to: destination, isCancelled: isCancelled))
    } catch {
      return .failure(error)
    }
  }

  private func copy(to destination: String, isCancelled: @escaping @Sendable () -> Bool) throws(SnapshotVerificationError) -> SnapshotFacts {
    var identities: [AgeIdentity]?
    if let identityFile {
      do {
        identities = try AgeIdentityFile.load(path: identityFile)
      } catch {
        throw SnapshotVerificationError("\(identityFile): \(error)")
      }
    }
    if identities == nil, path.hasSuffix(".age") { throw SnapshotVerificationError(SnapshotDecryptingVerifier.needsIdentity) }
    let input = open(path, O_RDONLY | O_CLOEXEC)
    guard input >= 0 else { throw SnapshotVerificationError("cannot open \(path): \(String(cString: strerror(errno)))") }
    defer { close(input) }
    let out = open(destination, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
    guard out >= 0 else { throw SnapshotVerificationError("cannot create \(destination): \(String(cString: strerror(errno)))") }
    defer { close(out) }

    let verifier = SnapshotDecryptingVerifier(verifier: SnapshotGzipVerifier(decompressor: try makeDecompressor()), identities: identities)
    verifier.tee = { bytes throws(SnapshotVerificationError) in
      guard let base = bytes.baseAddress else { return }
      var offset = 0
      while offset < bytes.count {
        let written = write(out, base + offset, bytes.count - offset)
        if written < 0 {
          if errno == EINTR { continue }
          throw SnapshotVerificationError("cannot write \(destination): \(String(cString: strerror(errno)))")
        }
        offset += written
      }
    }
    return try verifier.verify(descriptor: input, isCancelled: isCancelled)
  }
}
