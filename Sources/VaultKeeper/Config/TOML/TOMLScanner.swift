// SPDX-License-Identifier: Apache-2.0
/// A cursor over the document's UTF-8 bytes: peeking, whitespace, comments and newlines, and
/// turning a byte offset into a line and column. Every read is bounds-checked (`peek` returns nil
/// past the end), so no input can make it trap.
struct TOMLScanner {
  let bytes: [UInt8]
  var offset = 0
  /// Byte offsets at which each line starts (line 1 at index 0).
  private let lineStarts: [Int]

  init(_ bytes: [UInt8]) {
    self.bytes = bytes
    var starts = [0]
    for (index, byte) in bytes.enumerated() where byte == UInt8(ascii: "\n") { starts.append(index + 1) }
    lineStarts = starts
  }

  var atEnd: Bool { offset >= bytes.count }

  func peek(_ ahead: Int = 0) -> UInt8? {
    let index = offset + ahead
    return index >= 0 && index < bytes.count ? bytes[index] : nil
  }

  func next(is text: String) -> Bool {
    var index = offset
    for byte in text.utf8 {
      guard index < bytes.count, bytes[index] == byte else { return false }
      index += 1
    }
    return true
  }

  static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
  static func isBareKey(_ byte: UInt8) -> Bool {
    isDigit(byte) || (byte | 0x20 >= UInt8(ascii: "a") && byte | 0x20 <= UInt8(ascii: "z")) || byte == UInt8(ascii: "_")
      || byte == UInt8(ascii: "-")
  }

  /// Line and column (in Unicode scalars, 1-based) of a byte offset.
  func position(of byteOffset: Int) -> TOMLPosition {
    let target = min(max(byteOffset, 0), bytes.count)
    var low = 0
    var high = lineStarts.count - 1
    while low < high {
      let middle = (low + high + 1) / 2
      if lineStarts[middle] <= target { low = middle } else { high = middle - 1 }
    }
    var column = 1
    var index = lineStarts[low]
    while index < target {
      if bytes[index] & 0xC0 != 0x80 { column += 1 }
      index += 1
    }
    return TOMLPosition(line: low + 1, column: column)
  }

  var position: TOMLPosition { position(of: offset) }

  /// Where the last `here()` was; keys and values are located in increasing order, so each
  /// `here()` only walks the bytes since the previous one (a long line stays linear).
  private var mark = (offset: 0, line: 1, column: 1)

  /// `position`, in time proportional to the distance from the previous call.
  mutating func here() -> TOMLPosition {
    guard offset >= mark.offset else {
      let position = position(of: offset)
      mark = (offset, position.line, position.column)
      return position
    }
    var (index, line, column) = mark
    let end = min(offset, bytes.count)
    while index < end {
      let byte = bytes[index]
      if byte == UInt8(ascii: "\n") {
        line += 1
        column = 1
      } else if byte & 0xC0 != 0x80 {
        column += 1
      }
      index += 1
    }
    mark = (index, line, column)
    return TOMLPosition(line: line, column: column)
  }

  func error(_ message: String) -> TOMLError { TOMLError(position, message) }
  func error(at byteOffset: Int, _ message: String) -> TOMLError { TOMLError(position(of: byteOffset), message) }

  /// How a byte that may not appear here is named in a message.
  static func describe(_ byte: UInt8?) -> String {
    guard let byte else { return "the end of the file" }
    if byte == UInt8(ascii: "\n") { return "the end of the line" }
    if byte < 0x20 || byte == 0x7F { return "control character 0x\(byte < 0x10 ? "0" : "")\(String(byte, radix: 16, uppercase: true))" }
    if byte >= 0x80 { return "a non-ASCII character" }
    return "'\(Character(Unicode.Scalar(byte)))'"
  }

  /// Spaces and tabs.
  mutating func skipBlanks() {
    while let byte = peek(), byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") { offset += 1 }
  }

  /// A `#` comment up to (not including) the end of the line. Control characters other than tab
  /// are refused in comments as everywhere else.
  mutating func skipComment() throws(TOMLError) {
    guard peek() == UInt8(ascii: "#") else { return }
    offset += 1
    while let byte = peek(), byte != UInt8(ascii: "\n") {
      if byte == UInt8(ascii: "\r") && peek(1) == UInt8(ascii: "\n") { return }
      if (byte < 0x20 && byte != UInt8(ascii: "\t")) || byte == 0x7F {
        throw error("\(Self.describe(byte)) is not allowed in a comment")
      }
      offset += 1
    }
  }

  /// A newline (LF or CRLF) here; true if one was consumed.
  mutating func newline() -> Bool {
    if peek() == UInt8(ascii: "\n") {
      offset += 1
      return true
    }
    if peek() == UInt8(ascii: "\r") && peek(1) == UInt8(ascii: "\n") {
      offset += 2
      return true
    }
    return false
  }

  /// Blanks, comments and newlines (between array elements).
  mutating func skipBlanksCommentsAndNewlines() throws(TOMLError) {
    while true {
      skipBlanks()
      try skipComment()
      if !newline() { return }
    }
  }

  /// After a statement: blanks, an optional comment, then a newline or the end of the file.
  mutating func endOfLine(after what: String) throws(TOMLError) {
    skipBlanks()
    try skipComment()
    guard atEnd || newline() else { throw error("expected the end of the line after \(what), found \(Self.describe(peek()))") }
  }

  /// The offset of the first byte that is not well-formed UTF-8 (overlong forms, surrogates and
  /// values past U+10FFFF included), or nil.
  static func firstInvalidUTF8(_ bytes: [UInt8]) -> Int? {
    var index = 0
    while index < bytes.count {
      let lead = bytes[index]
      let length: Int
      var low: UInt8 = 0x80
      var high: UInt8 = 0xBF
      switch lead {
      case 0x00...0x7F: index += 1; continue
      case 0xC2...0xDF: length = 2
      case 0xE0: length = 3; low = 0xA0
      case 0xE1...0xEC, 0xEE...0xEF: length = 3
      case 0xED: length = 3; high = 0x9F
      case 0xF0: length = 4; low = 0x90
      case 0xF1...0xF3: length = 4
      case 0xF4: length = 4; high = 0x8F
      default: return index
      }
      guard index + length <= bytes.count else { return index }
      guard bytes[index + 1] >= low && bytes[index + 1] <= high else { return index }
      for k in 2..<length where bytes[index + k] & 0xC0 != 0x80 { return index }
      index += length
    }
    return nil
  }
}
