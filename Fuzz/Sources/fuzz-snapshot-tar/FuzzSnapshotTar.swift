// SPDX-License-Identifier: Apache-2.0
import FuzzSupport
import VaultKeeper

/// The decompressed snapshot: the tar stream (`meta.json`, `state.bin`, `SHA256SUMS`,
/// `SHA256SUMS.sealed`) that `SnapshotTarVerifier` checks as it streams past, with its
/// SHA256SUMS lines and `meta.json`. Fed without gzip so the fuzzer works on the tar headers
/// themselves; fuzz-snapshot-gzip covers the gzip layer in front of it.
///
/// Property: the verdict does not depend on how the stream is cut into pieces. The payload is
/// verified once whole and once cut as the selector says (1 byte at a time up to ~70 KiB);
/// both must accept with the same facts, or both refuse.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSnapshotTar(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
  let input = FuzzInput(data, size)
  let whole = verify(input.payload, pieces: [0..<input.payload.count])
  let cut = verify(input.payload, pieces: Chunks.ranges(count: input.payload.count, seed: input.selector))
  switch (whole, cut) {
  case (.success(let a), .success(let b)):
    if a != b { violated("the same archive gave different facts when cut differently") }
  case (.failure, .failure):
    break
  default:
    violated("the same archive was accepted whole and refused cut into pieces (or the reverse)")
  }
  return 0
}

private func verify(_ bytes: [UInt8], pieces: [Range<Int>]) -> Result<SnapshotFacts, SnapshotVerificationError> {
  var verifier = SnapshotTarVerifier()
  do throws(SnapshotVerificationError) {
    try Chunks.feed(bytes, pieces) { (piece) throws(SnapshotVerificationError) in try verifier.consume(piece) }
    return .success(try verifier.finish())
  } catch {
    return .failure(error)
  }
}
