// SPDX-License-Identifier: Apache-2.0
/// Finds table headers that would crash the TOML parser before it sees them.
///
/// toml++ 3.4 (inside TOMLKit) asserts, and so aborts the whole process, when a table header's
/// `[` (or `[[`) is followed by something that cannot start a key: `[?t]`, or `[` and a control
/// character (found by fuzzing, Fuzz/Corpus/fuzz-config). A configuration mistake must be an
/// error naming the line, never a crash, and a reload with such a file would kill the running
/// daemon. So the text is scanned first the way toml++ reads it: statements at the document
/// level, skipping comments, strings of all four kinds and multi-line array values, and every
/// header is checked with toml++'s own rule. Array values get the same treatment: toml++ also
/// asserts when an element would start with `}` (`x = [}]`). Valid TOML always passes: a header
/// starts with a key, an array element with a value.
enum TOMLHeaderCheck {
  struct Failure: Error, Equatable {
    /// 1-based.
    var line: Int
    var message: String
  }

  static func check(_ text: String) throws(Failure) {
    var scanner = Scanner(bytes: Array(text.utf8))
    try scanner.run()
  }

  private struct Scanner {
    let bytes: [UInt8]
    var index = 0
    var line = 1

    init(bytes: [UInt8]) { self.bytes = bytes }

    var current: UInt8? { index < bytes.count ? bytes[index] : nil }

    func peek(_ offset: Int) -> UInt8? { index + offset < bytes.count ? bytes[index + offset] : nil }

    mutating func advance() {
      if bytes[index] == UInt8(ascii: "\n") { line += 1 }
      index += 1
    }

    mutating func run() throws(Failure) {
      // toml++ skips a UTF-8 byte order mark; so must we, or a header right after it goes unseen.
      if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { index = 3 }
      while current != nil {
        skipSpaces()
        guard let byte = current else { return }
        switch byte {
        case UInt8(ascii: "\n"), UInt8(ascii: "\r"):
          advance()
        case UInt8(ascii: "#"):
          skipToLineEnd()
        case UInt8(ascii: "["):
          try checkHeader()
          skipToLineEnd()
        default:
          try skipStatement()
        }
      }
    }

    /// Only space and tab: toml++ refuses any other whitespace here with an error of its own.
    mutating func skipSpaces() {
      while let byte = current, byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") { advance() }
    }

    mutating func skipToLineEnd() {
      while let byte = current, byte != UInt8(ascii: "\n") { advance() }
    }

    /// toml++'s rule (`parse_table_header`): `[`, spaces, an optional second `[` (only right
    /// after the first), spaces, then `]` (its own error) or the first character of a key.
    mutating func checkHeader() throws(Failure) {
      let headerLine = line
      advance()  // [
      let hadSpace = current == UInt8(ascii: " ") || current == UInt8(ascii: "\t")
      skipSpaces()
      if current == UInt8(ascii: "[") {
        if hadSpace { return }  // toml++ reports "[ [" itself
        advance()
        skipSpaces()
      }
      guard let first = current, first != UInt8(ascii: "]") else { return }  // toml++'s own errors
      if Self.startsKey(first) { return }
      let hex = String(first, radix: 16, uppercase: true)
      let shown = first >= 0x20 && first < 0x7F ? "'\(Character(Unicode.Scalar(first)))'" : "byte 0x\(hex.count == 1 ? "0" : "")\(hex)"
      throw Failure(line: headerLine, message: "a table header must start with a key (a name, or a quoted name), not \(shown)")
    }

    static func startsKey(_ byte: UInt8) -> Bool {
      switch byte {
      case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
        UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: "\""), UInt8(ascii: "'"):
        return true
      default:
        return false
      }
    }

    /// A key/value pair: to the end of its line, or of its value when an array spans lines.
    /// Where toml++ expects an array element (after `[` or a `,` in an array), the first
    /// character that is not a space, a line break or a comment must not be `}`.
    mutating func skipStatement() throws(Failure) {
      var open: [UInt8] = []  // the brackets and braces around us, innermost last
      var expectingElement = false
      while let byte = current {
        switch byte {
        case UInt8(ascii: "\n"):
          if open.isEmpty { return }
          advance()
        case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\r"):
          advance()
        case UInt8(ascii: "#"):
          skipToLineEnd()
        case UInt8(ascii: "\""), UInt8(ascii: "'"):
          expectingElement = false
          skipString(quote: byte)
        case UInt8(ascii: "["), UInt8(ascii: "{"):
          open.append(byte)
          expectingElement = byte == UInt8(ascii: "[")
          advance()
        case UInt8(ascii: "]"), UInt8(ascii: "}"):
          if expectingElement && byte == UInt8(ascii: "}") {
            throw Failure(line: line, message: "an array element must be a value, not '}'")
          }
          expectingElement = false
          if !open.isEmpty { open.removeLast() }
          advance()
        case UInt8(ascii: ","):
          expectingElement = open.last == UInt8(ascii: "[")
          advance()
        default:
          expectingElement = false
          advance()
        }
      }
    }

    /// A basic (`"`, with escapes) or literal (`'`) string, single- or multi-line. A
    /// single-line string ends at the line's end at the latest (toml++ stops there with an error).
    mutating func skipString(quote: UInt8) {
      let multiLine = peek(1) == quote && peek(2) == quote
      let escapes = quote == UInt8(ascii: "\"")
      if multiLine {
        advance(); advance(); advance()
        while let byte = current {
          if escapes && byte == UInt8(ascii: "\\") {
            advance()
            if current != nil { advance() }
            continue
          }
          if byte == quote && peek(1) == quote && peek(2) == quote {
            // Up to two more quotes right before the closing three belong to the string.
            var run = 0
            while current == quote && run < 5 {
              advance()
              run += 1
            }
            return
          }
          advance()
        }
        return
      }
      advance()
      while let byte = current, byte != UInt8(ascii: "\n") {
        if escapes && byte == UInt8(ascii: "\\") {
          advance()
          if let next = current, next != UInt8(ascii: "\n") { advance() }
          continue
        }
        advance()
        if byte == quote { return }
      }
    }
  }
}
