// SPDX-License-Identifier: Apache-2.0
/// TOML 1.0 (https://toml.io/en/v1.0.0) into `TOMLTable`, every key and value with the line and
/// column it was written at. Pure Swift over the UTF-8 bytes; any input either parses or throws
/// a located `TOMLError`, and nesting is bounded (`TOMLDocumentBuilder.maxDepth`) so deeply
/// nested arrays or tables cannot exhaust the stack.
///
/// Beyond the specification, a leading byte order mark is skipped, as editors on some systems
/// write one.
public enum TOMLParser {
  public static func parse(_ text: String) throws(TOMLError) -> TOMLTable {
    try parse(Array(text.utf8))
  }

  public static func parse(_ bytes: [UInt8]) throws(TOMLError) -> TOMLTable {
    var reader = Reader(scanner: TOMLScanner(bytes))
    return try reader.document()
  }

  private struct Reader {
    var scanner: TOMLScanner
    var builder = TOMLDocumentBuilder()

    mutating func document() throws(TOMLError) -> TOMLTable {
      if let bad = TOMLScanner.firstInvalidUTF8(scanner.bytes) {
        throw scanner.error(at: bad, "the file is not valid UTF-8 (byte 0x\(String(scanner.bytes[bad], radix: 16, uppercase: true)))")
      }
      if scanner.next(is: "\u{FEFF}") { scanner.offset += 3 }
      while true {
        scanner.skipBlanks()
        try scanner.skipComment()
        if scanner.newline() { continue }
        guard let byte = scanner.peek() else { break }
        if byte == UInt8(ascii: "[") {
          try header()
        } else {
          let key = try key()
          let value = try assignment(depth: builder.current.depth + key.count)
          try builder.set(key, value)
          try scanner.endOfLine(after: "a value")
        }
      }
      return builder.finish()
    }

    /// `[a.b]` or `[[a.b]]`, at its first `[`.
    private mutating func header() throws(TOMLError) {
      let position = scanner.here()
      let isArray = scanner.peek(1) == UInt8(ascii: "[")
      scanner.offset += isArray ? 2 : 1
      scanner.skipBlanks()
      let key = try key()
      guard scanner.peek() == UInt8(ascii: "]") else {
        throw scanner.error("expected ']' to close the table header, found \(TOMLScanner.describe(scanner.peek()))")
      }
      scanner.offset += 1
      if isArray {
        guard scanner.peek() == UInt8(ascii: "]") else {
          throw scanner.error("expected ']]' to close the array-of-tables header, found \(TOMLScanner.describe(scanner.peek()))")
        }
        scanner.offset += 1
        try builder.appendTable(key, at: position)
      } else {
        try builder.openTable(key, at: position)
      }
      try scanner.endOfLine(after: "a table header")
    }

    /// A key: bare or quoted parts joined by dots, with blanks around the dots; the blanks after
    /// it are consumed.
    private mutating func key() throws(TOMLError) -> TOMLDocumentBuilder.Key {
      var parts: TOMLDocumentBuilder.Key = []
      while true {
        scanner.skipBlanks()
        let position = scanner.here()
        if scanner.atString {
          parts.append((try scanner.string(multiLineAllowed: false), position))
        } else {
          let start = scanner.offset
          while let byte = scanner.peek(), TOMLScanner.isBareKey(byte) { scanner.offset += 1 }
          guard scanner.offset > start else {
            throw scanner.error("expected a key (letters, digits, '_', '-' or a quoted string), found \(TOMLScanner.describe(scanner.peek()))")
          }
          parts.append((String(decoding: scanner.bytes[start..<scanner.offset], as: UTF8.self), position))
        }
        guard parts.count <= TOMLDocumentBuilder.maxDepth else {
          throw TOMLError(position, "this key has more than \(TOMLDocumentBuilder.maxDepth) parts")
        }
        scanner.skipBlanks()
        guard scanner.peek() == UInt8(ascii: ".") else { return parts }
        scanner.offset += 1
      }
    }

    /// `= value` after a key.
    private mutating func assignment(depth: Int) throws(TOMLError) -> TOMLValue {
      guard scanner.peek() == UInt8(ascii: "=") else {
        throw scanner.error("expected '=' after the key, found \(TOMLScanner.describe(scanner.peek()))")
      }
      scanner.offset += 1
      scanner.skipBlanks()
      return try value(depth: depth)
    }

    /// A value at nesting level `depth`: its table's level plus one per key part, plus one per
    /// enclosing array (an inline table is at its value's level, as `[a]` is at `a`'s).
    private mutating func value(depth: Int) throws(TOMLError) -> TOMLValue {
      let position = scanner.here()
      guard depth <= TOMLDocumentBuilder.maxDepth else {
        throw TOMLError(position, "values are nested more than \(TOMLDocumentBuilder.maxDepth) deep")
      }
      let kind: TOMLValue.Kind
      switch scanner.peek() {
      case UInt8(ascii: "\""), UInt8(ascii: "'"):
        kind = .string(try scanner.string())
      case UInt8(ascii: "["):
        kind = .array(try array(depth: depth + 1))
      case UInt8(ascii: "{"):
        kind = .table(try inlineTable(depth: depth, at: position))
      case UInt8(ascii: "t") where scanner.next(is: "true"):
        scanner.offset += 4
        kind = .boolean(true)
      case UInt8(ascii: "f") where scanner.next(is: "false"):
        scanner.offset += 5
        kind = .boolean(false)
      default:
        if scanner.startsDateOrTime() {
          kind = .dateTime(try scanner.dateTime())
        } else if scanner.atNumber {
          kind = try scanner.number()
        } else {
          throw scanner.error(
            "expected a value (a string, number, true/false, date-time, [array] or {table}), found \(TOMLScanner.describe(scanner.peek()))")
        }
      }
      return TOMLValue(kind, at: position)
    }

    /// `[v, v, …]`: any values, newlines and comments between them, a trailing comma allowed.
    private mutating func array(depth: Int) throws(TOMLError) -> [TOMLValue] {
      scanner.offset += 1
      var items: [TOMLValue] = []
      while true {
        try scanner.skipBlanksCommentsAndNewlines()
        if scanner.peek() == UInt8(ascii: "]") { break }
        items.append(try value(depth: depth))
        try scanner.skipBlanksCommentsAndNewlines()
        if scanner.peek() == UInt8(ascii: ",") {
          scanner.offset += 1
          continue
        }
        guard scanner.peek() == UInt8(ascii: "]") else {
          throw scanner.error("expected ',' or ']' in the array, found \(TOMLScanner.describe(scanner.peek()))")
        }
        break
      }
      scanner.offset += 1
      return items
    }

    /// `{k = v, …}` on one line (TOML 1.0: no newline and no trailing comma).
    private mutating func inlineTable(depth: Int, at position: TOMLPosition) throws(TOMLError) -> TOMLTable {
      scanner.offset += 1
      let table = TOMLDocumentBuilder.Table(origin: .inline, position: position, depth: depth, section: 0)
      scanner.skipBlanks()
      if scanner.peek() == UInt8(ascii: "}") {
        scanner.offset += 1
        return TOMLDocumentBuilder.freeze(table)
      }
      while true {
        let key = try key()
        let value = try assignment(depth: depth + key.count)
        try TOMLDocumentBuilder.set(key, value, in: table, section: 0)
        scanner.skipBlanks()
        if scanner.peek() == UInt8(ascii: ",") {
          scanner.offset += 1
          continue
        }
        guard scanner.peek() == UInt8(ascii: "}") else {
          throw scanner.error("expected ',' or '}' in the inline table (which must stay on one line), found \(TOMLScanner.describe(scanner.peek()))")
        }
        scanner.offset += 1
        return TOMLDocumentBuilder.freeze(table)
      }
    }
  }
}
