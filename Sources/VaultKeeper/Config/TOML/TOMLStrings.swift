// SPDX-License-Identifier: Apache-2.0
/// The four string kinds: basic `"…"` (escapes), literal `'…'` (none), and their multi-line
/// forms `"""…"""` and `'''…'''`. The document is valid UTF-8 already, so content bytes are
/// copied as they are and escapes are encoded to UTF-8.
extension TOMLScanner {
  /// Whether a string starts here.
  var atString: Bool { peek() == UInt8(ascii: "\"") || peek() == UInt8(ascii: "'") }

  /// A string of any kind; `multiLineAllowed` is false for keys.
  mutating func string(multiLineAllowed: Bool = true) throws(TOMLError) -> String {
    let quote = peek() ?? 0
    let literal = quote == UInt8(ascii: "'")
    if peek(1) == quote && peek(2) == quote {
      guard multiLineAllowed else { throw error("a key cannot be a multi-line string") }
      offset += 3
      return try multiLine(quote: quote, literal: literal)
    }
    let start = offset
    offset += 1
    var out: [UInt8] = []
    while true {
      guard let byte = peek() else { throw error(at: start, "this string is not closed: the file ends before its closing quote") }
      if byte == quote {
        offset += 1
        return String(decoding: out, as: UTF8.self)
      }
      if byte == UInt8(ascii: "\n") || (byte == UInt8(ascii: "\r") && peek(1) == UInt8(ascii: "\n")) {
        throw error(at: start, "this string is not closed on its line (use \"\"\" or ''' for a multi-line string)")
      }
      if !literal && byte == UInt8(ascii: "\\") {
        try escape(into: &out)
        continue
      }
      try checkContent(byte)
      out.append(byte)
      offset += 1
    }
  }

  /// Content of a multi-line string after its opening delimiter.
  private mutating func multiLine(quote: UInt8, literal: Bool) throws(TOMLError) -> String {
    _ = newline()  // a newline right after the opening delimiter is not part of the string
    var out: [UInt8] = []
    while true {
      guard let byte = peek() else { throw error("this multi-line string is not closed: the file ends before its closing delimiter") }
      if byte == quote && peek(1) == quote && peek(2) == quote {
        // Up to two quotes may sit right before the closing delimiter: `""""" ` ends in `""`.
        var run = 3
        while peek(run) == quote { run += 1 }
        guard run <= 5 else { throw error(at: offset + 5, "too many quotes: a multi-line string ends with at most five") }
        out.append(contentsOf: repeatElement(quote, count: run - 3))
        offset += run
        return String(decoding: out, as: UTF8.self)
      }
      if byte == UInt8(ascii: "\n") {
        out.append(byte)
        offset += 1
        continue
      }
      if byte == UInt8(ascii: "\r") && peek(1) == UInt8(ascii: "\n") {
        out.append(contentsOf: [0x0D, 0x0A])
        offset += 2
        continue
      }
      if !literal && byte == UInt8(ascii: "\\") {
        if try lineEndingBackslash() { continue }
        try escape(into: &out)
        continue
      }
      try checkContent(byte)
      out.append(byte)
      offset += 1
    }
  }

  /// Tab is the only control character a string may hold as it is.
  private func checkContent(_ byte: UInt8) throws(TOMLError) {
    if (byte < 0x20 && byte != UInt8(ascii: "\t")) || byte == 0x7F {
      throw error("\(Self.describe(byte)) is not allowed in a string (write it as an escape such as \\u0001)")
    }
  }

  /// A `\` followed by blanks and a newline trims everything up to the next non-blank; true if
  /// that was what stood here.
  private mutating func lineEndingBackslash() throws(TOMLError) -> Bool {
    var index = 1
    while peek(index) == UInt8(ascii: " ") || peek(index) == UInt8(ascii: "\t") { index += 1 }
    guard peek(index) == UInt8(ascii: "\n") || (peek(index) == UInt8(ascii: "\r") && peek(index + 1) == UInt8(ascii: "\n")) else {
      return false
    }
    offset += index
    while let byte = peek() {
      if byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\n") {
        offset += 1
      } else if byte == UInt8(ascii: "\r") && peek(1) == UInt8(ascii: "\n") {
        offset += 2
      } else {
        break
      }
    }
    return true
  }

  /// One escape sequence, starting at its backslash.
  private mutating func escape(into out: inout [UInt8]) throws(TOMLError) {
    let start = offset
    offset += 1
    guard let code = peek() else { throw error("this string is not closed: the file ends after a backslash") }
    offset += 1
    switch code {
    case UInt8(ascii: "b"): out.append(0x08)
    case UInt8(ascii: "t"): out.append(0x09)
    case UInt8(ascii: "n"): out.append(0x0A)
    case UInt8(ascii: "f"): out.append(0x0C)
    case UInt8(ascii: "r"): out.append(0x0D)
    case UInt8(ascii: "\""): out.append(0x22)
    case UInt8(ascii: "\\"): out.append(0x5C)
    case UInt8(ascii: "u"), UInt8(ascii: "U"):
      let digits = code == UInt8(ascii: "u") ? 4 : 8
      var value: UInt32 = 0
      for _ in 0..<digits {
        guard let byte = peek(), let digit = Self.hexValue(byte) else {
          throw error(at: start, "\\\(Character(Unicode.Scalar(code))) needs \(digits) hexadecimal digits")
        }
        value = value << 4 | UInt32(digit)
        offset += 1
      }
      guard let scalar = Unicode.Scalar(value) else {
        throw error(at: start, "\\\(Character(Unicode.Scalar(code))) escape names no Unicode scalar value (surrogate or past U+10FFFF)")
      }
      out.append(contentsOf: String(Character(scalar)).utf8)
    default:
      throw error(at: start, "a backslash followed by \(Self.describe(code)) is not an escape TOML knows (\\b \\t \\n \\f \\r \\\" \\\\ \\uXXXX \\UXXXXXXXX)")
    }
  }

  static func hexValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
    default: nil
    }
  }
}
