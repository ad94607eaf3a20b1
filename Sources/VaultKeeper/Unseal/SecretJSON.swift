// SPDX-License-Identifier: Apache-2.0
/// A small, strict JSON reader for key files.
///
/// Why not Foundation's JSONSerialization: it copies every string into heap objects we cannot
/// wipe, so unseal keys would linger in freed memory. This reader works on the raw bytes and
/// returns strings as *ranges* into them; the caller copies the ranges it needs into
/// `SecretBytes` and wipes the buffer. It accepts RFC 8259 JSON (no comments, no trailing
/// commas) up to a nesting depth of 16, which is far more than `vault operator init` writes.
enum SecretJSON {
  indirect enum Value: Equatable {
    /// Raw bytes between the quotes; `hasEscapes` tells whether they need decoding.
    case string(Range<Int>, hasEscapes: Bool)
    /// Raw bytes of the number literal.
    case number(Range<Int>)
    case bool(Bool)
    case null
    case array([Value])
    case object([(key: String, value: Value)])

    static func == (lhs: Value, rhs: Value) -> Bool {
      switch (lhs, rhs) {
      case (.string(let a, let e1), .string(let b, let e2)): return a == b && e1 == e2
      case (.number(let a), .number(let b)): return a == b
      case (.null, .null): return true
      case (.bool(let a), .bool(let b)): return a == b
      case (.array(let a), .array(let b)): return a == b
      case (.object(let a), .object(let b)):
        return a.count == b.count && zip(a, b).allSatisfy { $0.key == $1.key && $0.value == $1.value }
      default: return false
      }
    }
  }

  struct SyntaxError: Error, Equatable {
    var offset: Int
    var reason: String
  }

  static func parse(_ bytes: [UInt8]) throws(SyntaxError) -> Value {
    var parser = Parser(bytes: bytes)
    parser.skipSpace()
    let value = try parser.value(depth: 0)
    parser.skipSpace()
    guard parser.index == bytes.count else { throw SyntaxError(offset: parser.index, reason: "unexpected text after the JSON value") }
    return value
  }

  private struct Parser {
    let bytes: [UInt8]
    var index = 0

    mutating func skipSpace() {
      while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
    }

    func fail(_ reason: String) -> SyntaxError { SyntaxError(offset: index, reason: reason) }

    mutating func expect(_ literal: String) throws(SyntaxError) {
      for byte in literal.utf8 {
        guard index < bytes.count, bytes[index] == byte else { throw fail("expected \(literal)") }
        index += 1
      }
    }

    mutating func value(depth: Int) throws(SyntaxError) -> Value {
      guard depth < 16 else { throw fail("nesting too deep") }
      guard index < bytes.count else { throw fail("unexpected end of input") }
      switch bytes[index] {
      case UInt8(ascii: "{"): return try object(depth: depth)
      case UInt8(ascii: "["): return try array(depth: depth)
      case UInt8(ascii: "\""):
        let (range, escapes) = try string()
        return .string(range, hasEscapes: escapes)
      case UInt8(ascii: "t"): try expect("true"); return .bool(true)
      case UInt8(ascii: "f"): try expect("false"); return .bool(false)
      case UInt8(ascii: "n"): try expect("null"); return .null
      case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
        let start = index
        try number()
        return .number(start..<index)
      default: throw fail("unexpected character")
      }
    }

    mutating func number() throws(SyntaxError) {
      if bytes[index] == UInt8(ascii: "-") { index += 1 }
      var digits = 0
      while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1; digits += 1 }
      guard digits > 0 else { throw fail("invalid number") }
      if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
        index += 1
        var fraction = 0
        while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1; fraction += 1 }
        guard fraction > 0 else { throw fail("invalid number") }
      }
      if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
        index += 1
        if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
        var exp = 0
        while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1; exp += 1 }
        guard exp > 0 else { throw fail("invalid number") }
      }
    }

    /// Returns the range between the quotes.
    mutating func string() throws(SyntaxError) -> (Range<Int>, Bool) {
      index += 1  // opening quote
      let start = index
      var escapes = false
      while index < bytes.count {
        let byte = bytes[index]
        if byte == UInt8(ascii: "\"") {
          let range = start..<index
          index += 1
          return (range, escapes)
        }
        if byte < 0x20 { throw fail("control character in string") }
        if byte == UInt8(ascii: "\\") {
          escapes = true
          index += 1
          guard index < bytes.count else { break }
          if bytes[index] == UInt8(ascii: "u") { index += 4 }
        }
        index += 1
      }
      throw fail("unterminated string")
    }

    mutating func array(depth: Int) throws(SyntaxError) -> Value {
      index += 1
      var items: [Value] = []
      skipSpace()
      if index < bytes.count, bytes[index] == UInt8(ascii: "]") { index += 1; return .array(items) }
      while true {
        skipSpace()
        items.append(try value(depth: depth + 1))
        skipSpace()
        guard index < bytes.count else { throw fail("unterminated array") }
        if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
        if bytes[index] == UInt8(ascii: "]") { index += 1; return .array(items) }
        throw fail("expected , or ] in array")
      }
    }

    mutating func object(depth: Int) throws(SyntaxError) -> Value {
      index += 1
      var members: [(key: String, value: Value)] = []
      skipSpace()
      if index < bytes.count, bytes[index] == UInt8(ascii: "}") { index += 1; return .object(members) }
      while true {
        skipSpace()
        guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw fail("expected a quoted key") }
        let (range, _) = try string()
        // Keys are field names such as "unseal_keys_b64", never secrets, so a String is fine.
        let key = String(decoding: bytes[range], as: UTF8.self)
        skipSpace()
        guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw fail("expected : after key") }
        index += 1
        skipSpace()
        members.append((key, try value(depth: depth + 1)))
        skipSpace()
        guard index < bytes.count else { throw fail("unterminated object") }
        if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
        if bytes[index] == UInt8(ascii: "}") { index += 1; return .object(members) }
        throw fail("expected , or } in object")
      }
    }
  }

  /// The member `name` of an object value.
  static func member(_ name: String, of value: Value) -> Value? {
    guard case .object(let members) = value else { return nil }
    return members.first { $0.key == name }?.value
  }

  /// An integer number value (no fraction or exponent), read from the bytes.
  static func integer(_ value: Value?, in bytes: [UInt8]) -> Int? {
    guard case .number(let range)? = value else { return nil }
    return Int(String(decoding: bytes[range], as: UTF8.self))
  }
}

