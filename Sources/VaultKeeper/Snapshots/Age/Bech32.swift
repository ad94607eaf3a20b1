// SPDX-License-Identifier: Apache-2.0
/// Bech32 (BIP 173) as age uses it for `age1…` recipients and `AGE-SECRET-KEY-1…` identities:
/// the original Bech32 checksum (not Bech32m), and without BIP 173's 90-character limit
/// (age identities are longer). Mixed case is rejected, as BIP 173 requires; the human-readable
/// part is returned in lower case.
///
/// Decoded data can be secret (identities): callers wipe it, and errors never quote the input.
enum Bech32 {
  private static let alphabet = Array("qpzry9x8gf2tvdw0s3jn54khce6mua7l".utf8)
  private static let generator: [UInt32] = [0x3b6a_57b2, 0x2650_8e6d, 0x1ea1_19fa, 0x3d42_33dd, 0x2a14_62b3]

  /// Encodes 8-bit `data` under `hrp` (given in lower case), in lower case.
  static func encode(hrp: String, data: [UInt8]) -> String {
    let hrpBytes = Array(hrp.utf8)
    var values = convertBits(data, from: 8, to: 5, pad: true) ?? []
    let checksum = makeChecksum(hrp: hrpBytes, values: values)
    values += checksum
    var out = hrpBytes + [UInt8(ascii: "1")]
    for v in values { out.append(alphabet[Int(v)]) }
    return String(decoding: out, as: UTF8.self)
  }

  /// Decodes a Bech32 string into its lower-case human-readable part and 8-bit data.
  static func decode(_ text: String) throws(AgeError) -> (hrp: String, data: [UInt8]) {
    try decode(Array(text.utf8)[...])
  }

  /// Decodes from bytes, so that an identity read from a file never becomes a `String`.
  /// The intermediate copies are wiped; the caller wipes the returned data.
  static func decode(_ bytes: ArraySlice<UInt8>) throws(AgeError) -> (hrp: String, data: [UInt8]) {
    var hasLower = false
    var hasUpper = false
    for b in bytes {
      guard b >= 33, b <= 126 else { throw AgeError(.key, "contains a character outside printable ASCII") }
      if b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z") { hasLower = true }
      if b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z") { hasUpper = true }
    }
    guard !(hasLower && hasUpper) else { throw AgeError(.key, "mixes upper and lower case") }
    var lower = bytes.map { ($0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z")) ? $0 + 32 : $0 }
    defer { SecretBytes.wipe(&lower) }
    guard let separator = lower.lastIndex(of: UInt8(ascii: "1")), separator >= 1 else {
      throw AgeError(.key, "has no Bech32 separator \"1\" after a prefix")
    }
    guard lower.count - separator - 1 >= 6 else { throw AgeError(.key, "is too short for a Bech32 checksum") }
    var values: [UInt8] = []
    defer { SecretBytes.wipe(&values) }
    values.reserveCapacity(lower.count - separator - 1)
    for c in lower[(separator + 1)...] {
      guard let v = alphabet.firstIndex(of: c) else { throw AgeError(.key, "contains a character that is not in the Bech32 alphabet") }
      values.append(UInt8(v))
    }
    let hrp = Array(lower[..<separator])
    guard polymod(hrpExpand(hrp) + values) == 1 else { throw AgeError(.key, "has a wrong Bech32 checksum (a typo?)") }
    var payload = Array(values.dropLast(6))
    defer { SecretBytes.wipe(&payload) }
    guard let data = convertBits(payload, from: 5, to: 8, pad: false) else {
      throw AgeError(.key, "has invalid Bech32 padding")
    }
    return (String(decoding: hrp, as: UTF8.self), data)
  }

  private static func polymod(_ values: [UInt8]) -> UInt32 {
    var chk: UInt32 = 1
    for v in values {
      let top = chk >> 25
      chk = (chk & 0x1ff_ffff) << 5 ^ UInt32(v)
      for i in 0..<5 where (top >> UInt32(i)) & 1 == 1 { chk ^= generator[i] }
    }
    return chk
  }

  private static func hrpExpand(_ hrp: [UInt8]) -> [UInt8] {
    hrp.map { $0 >> 5 } + [0] + hrp.map { $0 & 31 }
  }

  private static func makeChecksum(hrp: [UInt8], values: [UInt8]) -> [UInt8] {
    let mod = polymod(hrpExpand(hrp) + values + [0, 0, 0, 0, 0, 0]) ^ 1
    return (0..<6).map { UInt8((mod >> (5 * (5 - UInt32($0)))) & 31) }
  }

  /// Regroups bits; nil when the input has leftover non-zero bits or a whole extra group
  /// (non-canonical encodings decode to nothing rather than to something ambiguous).
  private static func convertBits(_ data: [UInt8], from: Int, to: Int, pad: Bool) -> [UInt8]? {
    var acc = 0
    var bits = 0
    var out: [UInt8] = []
    out.reserveCapacity(data.count * from / to + 1)
    let maxValue = (1 << to) - 1
    for value in data {
      guard Int(value) >> from == 0 else { return nil }
      acc = (acc << from) | Int(value)
      bits += from
      while bits >= to {
        bits -= to
        out.append(UInt8((acc >> bits) & maxValue))
      }
    }
    if pad {
      if bits > 0 { out.append(UInt8((acc << (to - bits)) & maxValue)) }
    } else if bits >= from || (acc << (to - bits)) & maxValue != 0 {
      return nil
    }
    return out
  }
}
