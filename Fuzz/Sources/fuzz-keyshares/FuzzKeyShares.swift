// SPDX-License-Identifier: Apache-2.0
import FuzzSupport
@testable import VaultKeeper

/// The unseal key file (`[unseal] key_file` or the systemd credential): `vault operator init`
/// JSON, the sys/init API answer, or one key per line, through `KeyShareLoader.parse`, the
/// parser `load` hands the file's bytes to (and with it `SecretJSON`).
///
/// Properties: every share accepted is one Vault would accept (hex or base64 of 16–33 bytes),
/// and no share is listed twice.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzKeyShares(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
  let bytes = FuzzInput.bytes(data, size)
  let shares: KeyShares
  do {
    shares = try KeyShareLoader.parse(bytes, origin: "fuzz key file")
  } catch {
    _ = error.description
    return 0
  }
  guard !shares.shares.isEmpty else { violated("a key file was accepted with no shares") }
  for share in shares.shares {
    let valid = share.withUnsafeBytes { ShareEncoding.isValidShare($0) }
    guard valid else { violated("an accepted share is not hex or base64 of 16–33 bytes") }
  }
  let decoded = shares.shares.map { share in share.withUnsafeBytes { ShareEncoding.decode($0) } }
  for i in decoded.indices {
    guard let a = decoded[i] else { violated("an accepted share does not decode") }
    for j in decoded.indices where j > i {
      if let b = decoded[j], a.constantTimeEquals(b) { violated("the same share was kept twice") }
    }
  }
  return 0
}
