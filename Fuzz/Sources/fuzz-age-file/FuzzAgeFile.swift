// SPDX-License-Identifier: Apache-2.0
import FuzzSupport
@testable import VaultKeeper

/// An age-encrypted snapshot (`*.snap.age`, from disk or the bucket) read with
/// `snapshot verify|restore --identity`: `AgeDecryptor` parses the text header
/// (`AgeHeader`, stanzas, canonical base64, the MAC line), unwraps X25519 stanzas, checks the
/// header MAC and opens the STREAM payload chunk by chunk. The seeds are real `age` files
/// encrypted to the test identity below (so the fuzzer gets past the MAC), or to others.
///
/// Property: the outcome and the plaintext do not depend on how the file is cut into pieces
/// (whole, or as the selector says).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzAgeFile(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
  let input = FuzzInput(data, size)
  let whole = decrypt(input.payload, pieces: [0..<input.payload.count])
  let cut = decrypt(input.payload, pieces: Chunks.ranges(count: input.payload.count, seed: input.selector))
  switch (whole, cut) {
  case (.success(let a), .success(let b)):
    if a != b { violated("the same file decrypted to different plaintext when cut differently") }
  case (.failure, .failure):
    break
  default:
    violated("the same age file was accepted whole and refused cut into pieces (or the reverse)")
  }
  return 0
}

/// Test-only identities, never used for anything but these seeds: the first is the one the
/// seed files are encrypted to (Fuzz/Corpus/make_seeds.py), the second matches nothing.
/// Read-only after its lazy initialisation, and libFuzzer runs inputs one at a time.
nonisolated(unsafe) private let identities: [AgeIdentity] = {
  let keys = [
    "AGE-SECRET-KEY-1N5Y3HSYMNJ5JFS0722JUAMXASG9444UNYXLTA5JA6EFQAG97Q55S0EYAHS",
    "AGE-SECRET-KEY-1T5ESA0FM3MXUS6GH6XMYGUJR69JHPLWH8N65FX827QYRASE8L7HQRSTW3W",
  ]
  return keys.compactMap { try? AgeIdentity(bytes: Array($0.utf8)[...]) }
}()

private func decrypt(_ bytes: [UInt8], pieces: [Range<Int>]) -> Result<[UInt8], AgeError> {
  guard identities.count == 2 else { violated("the test identities do not parse") }
  let decryptor = AgeDecryptor(identities: identities)
  var plaintext: [UInt8] = []
  let consume: AgeDecryptor.Consumer = { (chunk) throws(AgeError) in plaintext.append(contentsOf: chunk) }
  do throws(AgeError) {
    try Chunks.feed(bytes, pieces) { (piece) throws(AgeError) in try decryptor.update(piece, consume: consume) }
    try decryptor.finish(consume: consume)
  } catch {
    return .failure(error)
  }
  if decryptor.plaintextBytes != Int64(plaintext.count) { violated("plaintextBytes disagrees with what was delivered") }
  return .success(plaintext)
}
