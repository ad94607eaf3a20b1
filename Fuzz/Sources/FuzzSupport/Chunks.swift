// SPDX-License-Identifier: Apache-2.0
/// Cuts a stream into pieces whose sizes follow from `seed`, the way data arrives from a
/// socket or a file read: streaming parsers must reach the same verdict whatever the cuts.
/// Sizes run from 1 byte to a little over 512 (a tar block) so that every boundary case of
/// a header split across pieces comes up.
public enum Chunks {
  public static func ranges(count: Int, seed: UInt8) -> [Range<Int>] {
    var state = UInt32(seed) &* 2_654_435_761 &+ 1
    var ranges: [Range<Int>] = []
    var offset = 0
    while offset < count {
      state = state &* 1_103_515_245 &+ 12_345
      let size: Int
      switch seed % 4 {
      case 0: size = 1
      case 1: size = Int(state >> 16) % 17 + 1
      case 2: size = Int(state >> 16) % 700 + 1
      default: size = Int(state >> 16) % 70_000 + 1
      }
      let end = min(offset + size, count)
      ranges.append(offset..<end)
      offset = end
    }
    return ranges
  }
}

extension Chunks {
  /// Hands `bytes` to `body` piece by piece; stops at the first error, which keeps its type
  /// (`withUnsafeBytes` only rethrows untyped errors, so it is carried out by hand).
  public static func feed<E: Error>(_ bytes: [UInt8], _ pieces: [Range<Int>], _ body: (UnsafeRawBufferPointer) throws(E) -> Void) throws(E) {
    let outcome: Result<Void, E> = bytes.withUnsafeBytes { raw in
      do throws(E) {
        for piece in pieces where !piece.isEmpty { try body(UnsafeRawBufferPointer(rebasing: raw[piece])) }
        return .success(())
      } catch {
        return .failure(error)
      }
    }
    try outcome.get()
  }
}
