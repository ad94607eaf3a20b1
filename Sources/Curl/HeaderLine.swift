// SPDX-License-Identifier: Apache-2.0

/// One line of a response header as libcurl hands it to the header callback (CR LF included),
/// read at the byte level: every health check passes each of the server's header lines through
/// here, and the Character-level version (grapheme breaking, `Substring` trimming) was a fifth
/// of vaultkeeper's own instructions per check (docs/benchmarks.md).
enum HeaderLine: Equatable {
  /// A status line (`HTTP/1.1 200 OK`, `HTTP/2 503`): a new response starts (after a 100
  /// Continue, or a redirect curl does not follow).
  case status
  /// `name: value`: the name as sent (everything before the first colon), the value without
  /// the spaces, tabs, CR and LF around it.
  case field(name: String, value: String)
  /// The empty line that ends the header, or anything else without a colon.
  case other

  private static let colon = UInt8(ascii: ":")

  init(_ bytes: UnsafeRawBufferPointer) {
    if bytes.starts(with: "HTTP/".utf8) {
      self = .status
      return
    }
    guard let colon = bytes.firstIndex(of: Self.colon) else {
      self = .other
      return
    }
    var start = colon + 1
    var end = bytes.endIndex
    while start < end, Self.isSpace(bytes[start]) { start += 1 }
    while end > start, Self.isSpace(bytes[end - 1]) { end -= 1 }
    self = .field(
      name: String(decoding: UnsafeRawBufferPointer(rebasing: bytes[..<colon]), as: UTF8.self),
      value: String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self))
  }

  private static func isSpace(_ byte: UInt8) -> Bool {
    byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\r") || byte == UInt8(ascii: "\n")
  }
}
