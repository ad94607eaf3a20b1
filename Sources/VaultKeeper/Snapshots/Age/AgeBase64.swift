// SPDX-License-Identifier: Apache-2.0
/// The base64 age headers use: standard alphabet, no padding, and canonical only (the unused
/// low bits of the last character must be zero), so every header has exactly one encoding and
/// the MAC cannot be sidestepped by re-encoding. Foundation's decoder accepts padding and
/// non-canonical input, hence this one.
enum AgeBase64 {
  private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
  private static let reverse: [Int8] = {
    var table = [Int8](repeating: -1, count: 256)
    for (i, c) in alphabet.enumerated() { table[Int(c)] = Int8(i) }
    return table
  }()

  static func encode(_ data: some Collection<UInt8>) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity((data.count * 4 + 2) / 3)
    var acc: UInt32 = 0
    var bits = 0
    for byte in data {
      acc = (acc << 8) | UInt32(byte)
      bits += 8
      while bits >= 6 {
        bits -= 6
        out.append(alphabet[Int((acc >> UInt32(bits)) & 63)])
      }
    }
    if bits > 0 { out.append(alphabet[Int((acc << UInt32(6 - bits)) & 63)]) }
    return out
  }

  /// nil for anything but canonical unpadded base64.
  static func decode(_ text: some Collection<UInt8>) -> [UInt8]? {
    guard text.count % 4 != 1 else { return nil }
    var out: [UInt8] = []
    out.reserveCapacity(text.count * 3 / 4)
    var acc: UInt32 = 0
    var bits = 0
    for c in text {
      let v = reverse[Int(c)]
      guard v >= 0 else { return nil }
      acc = (acc << 6) | UInt32(v)
      bits += 6
      if bits >= 8 {
        bits -= 8
        out.append(UInt8((acc >> UInt32(bits)) & 0xff))
      }
    }
    // Leftover bits (2 or 4) must be zero, or another string would decode to the same bytes.
    guard acc & ((1 << UInt32(bits)) - 1) == 0 else { return nil }
    return out
  }
}
