// SPDX-License-Identifier: Apache-2.0
/// The bytes libFuzzer hands to `LLVMFuzzerTestOneInput`, split into the first byte (which
/// picks a variant: an HTTP status, a parser, a way to cut the stream) and the rest, the
/// payload the parser reads. Seeds in Fuzz/Corpus carry that leading byte.
public struct FuzzInput {
  public let selector: UInt8
  public let payload: [UInt8]

  public init(_ data: UnsafePointer<UInt8>?, _ size: Int) {
    let all = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    selector = all.first ?? 0
    payload = Array(all.dropFirst())
  }

  /// The whole input, selector included, for targets that need no variant.
  public static func bytes(_ data: UnsafePointer<UInt8>?, _ size: Int) -> [UInt8] {
    data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
  }
}

/// A property the parser must keep was broken: libFuzzer reports the input as a crash.
/// (Not `fatalError` text alone: the message says which property, for the report.)
public func violated(_ property: String) -> Never {
  fatalError("fuzz property violated: \(property)")
}
