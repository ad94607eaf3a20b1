// SPDX-License-Identifier: Apache-2.0
import Compression
import FuzzSupport
import VaultKeeper

/// A snapshot as it arrives from Vault or is read from disk: gzip (zlib, `GzipInflater`) in
/// front of the tar checks. Two production paths are compared on every input:
/// - `snapshot verify` / `restore`: `SnapshotDecryptingVerifier` (which also tells age files apart;
///   with no identity an encrypted file is refused) over `SnapshotGzipVerifier`;
/// - the daemon's download: `SnapshotVerifierThread` (verification on its own thread, a bounded
///   queue of buffers; small buffers here so the queue fills and wraps), fed in pieces.
///
/// Property: both reach the same verdict (and the same facts), whatever the cuts.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSnapshotGzip(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
  let input = FuzzInput(data, size)
  let pieces = Chunks.ranges(count: input.payload.count, seed: input.selector)
  let plain = fileVerifier(input.payload, pieces: pieces)
  let pipelined = pipelinedVerifier(input.payload, pieces: pieces, bufferSize: Int(input.selector >> 2) % 5 * 700 + 1)
  switch (plain, pipelined) {
  case (.success(let a), .success(let b)):
    if a != b { violated("the two verification paths gave different facts") }
  case (.failure, .failure):
    break
  default:
    violated("one verification path accepted what the other refused")
  }
  return 0
}

private func streamVerifier() -> SnapshotGzipVerifier? {
  guard let inflater = try? GzipInflater() else { return nil }
  return SnapshotGzipVerifier(decompressor: inflater)
}

private func fileVerifier(_ bytes: [UInt8], pieces: [Range<Int>]) -> Result<SnapshotFacts, SnapshotVerificationError> {
  guard let stream = streamVerifier() else { violated("zlib did not initialise") }
  let verifier = SnapshotDecryptingVerifier(verifier: stream, identities: nil)
  do throws(SnapshotVerificationError) {
    try Chunks.feed(bytes, pieces) { (piece) throws(SnapshotVerificationError) in try verifier.feed(piece) }
    return .success(try verifier.finish())
  } catch {
    return .failure(error)
  }
}

private func pipelinedVerifier(_ bytes: [UInt8], pieces: [Range<Int>], bufferSize: Int) -> Result<SnapshotFacts, SnapshotVerificationError> {
  guard let stream = streamVerifier() else { violated("zlib did not initialise") }
  let verifier = SnapshotVerifierThread(verifier: stream, bufferSize: bufferSize, depth: 2)
  do throws(SnapshotVerificationError) {
    try Chunks.feed(bytes, pieces) { (piece) throws(SnapshotVerificationError) in try verifier.feed(piece) }
  } catch {
    verifier.cancel()
    return .failure(error)
  }
  let box = VerifierBox(verifier)
  return runBlocking { () async -> Result<SnapshotFacts, SnapshotVerificationError> in
    do throws(SnapshotVerificationError) {
      return .success(try await box.verifier.finish())
    } catch {
      return .failure(error)
    }
  }
}

/// Hands the verifier to the task that awaits `finish` (its owner from then on; the feeding
/// thread no longer touches it, as in the daemon).
private final class VerifierBox: @unchecked Sendable {
  let verifier: SnapshotVerifierThread
  init(_ verifier: SnapshotVerifierThread) { self.verifier = verifier }
}
