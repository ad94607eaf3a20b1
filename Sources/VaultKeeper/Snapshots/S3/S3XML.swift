// SPDX-License-Identifier: Apache-2.0
/// A small, strict XML reader for the few S3 answers we read (ListObjectsV2, errors, multipart
/// bookkeeping). Foundation's XMLParser would pull libxml2 and all of Foundation into the core;
/// S3's documents are simple: elements, text, entities, maybe a declaration, comments or CDATA.
/// Anything else (a DOCTYPE, an unknown entity, a mismatched tag, trailing content) is refused
/// rather than guessed at.
struct S3XML: Sendable, Equatable {
  struct Failure: Error, Sendable, Equatable, CustomStringConvertible {
    var reason: String
    var description: String { reason }
  }

  var name: String
  var children: [S3XML]
  /// Decoded text directly inside this element (whitespace between child elements included).
  var text: String

  /// The first child named `name`.
  func child(_ name: String) -> S3XML? { children.first { $0.name == name } }
  func children(_ name: String) -> [S3XML] { children.filter { $0.name == name } }

  static let maxDepth = 32

  /// Parses a whole document: an optional declaration and comments, one root element, nothing after.
  static func parse(_ bytes: [UInt8]) throws(Failure) -> S3XML {
    var reader = Reader(bytes: bytes)
    if reader.starts(with: [0xEF, 0xBB, 0xBF]) { reader.index += 3 }  // UTF-8 byte order mark
    try reader.skipMisc()
    guard reader.peek == UInt8(ascii: "<") else { throw Failure(reason: "not an XML document") }
    let root = try reader.element(depth: 0)
    try reader.skipMisc()
    guard reader.atEnd else { throw Failure(reason: "content after the root element") }
    return root
  }

  /// Replaces the five predefined entities and character references.
  static func decode(_ raw: ArraySlice<UInt8>) throws(Failure) -> String {
    guard raw.contains(UInt8(ascii: "&")) else { return String(decoding: raw, as: UTF8.self) }
    var out: [UInt8] = []
    var i = raw.startIndex
    while i < raw.endIndex {
      guard raw[i] == UInt8(ascii: "&") else {
        out.append(raw[i])
        i += 1
        continue
      }
      guard let semicolon = raw[i...].prefix(12).firstIndex(of: UInt8(ascii: ";")) else { throw Failure(reason: "unterminated entity") }
      let entity = String(decoding: raw[(i + 1)..<semicolon], as: UTF8.self)
      switch entity {
      case "amp": out.append(UInt8(ascii: "&"))
      case "lt": out.append(UInt8(ascii: "<"))
      case "gt": out.append(UInt8(ascii: ">"))
      case "quot": out.append(UInt8(ascii: "\""))
      case "apos": out.append(UInt8(ascii: "'"))
      default:
        let value: UInt32?
        if entity.hasPrefix("#x") || entity.hasPrefix("#X") {
          value = entity.count > 2 ? UInt32(entity.dropFirst(2), radix: 16) : nil
        } else if entity.hasPrefix("#") {
          value = entity.count > 1 ? UInt32(entity.dropFirst(), radix: 10) : nil
        } else {
          value = nil
        }
        guard let value, value != 0, let scalar = Unicode.Scalar(value) else { throw Failure(reason: "unknown entity &\(entity);") }
        out += Array(String(Character(scalar)).utf8)
      }
      i = semicolon + 1
    }
    return String(decoding: out, as: UTF8.self)
  }

  private struct Reader {
    let bytes: [UInt8]
    var index = 0

    var atEnd: Bool { index >= bytes.count }
    var peek: UInt8? { index < bytes.count ? bytes[index] : nil }

    func starts(with prefix: [UInt8]) -> Bool {
      bytes.count - index >= prefix.count && bytes[index..<(index + prefix.count)].elementsEqual(prefix)
    }

    func starts(with text: String) -> Bool { starts(with: Array(text.utf8)) }

    static func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D }

    static func isNameByte(_ b: UInt8) -> Bool {
      S3Encoding.isUnreserved(b) || b == UInt8(ascii: ":") || b >= 0x80
    }

    mutating func skipSpace() { while let b = peek, Self.isSpace(b) { index += 1 } }

    /// Moves past `terminator`, or fails.
    mutating func skip(past terminator: String, what: String) throws(Failure) {
      let t = Array(terminator.utf8)
      while !atEnd {
        if starts(with: t) {
          index += t.count
          return
        }
        index += 1
      }
      throw Failure(reason: "unterminated \(what)")
    }

    /// Whitespace, comments and processing instructions (the `<?xml ?>` declaration) around the root.
    mutating func skipMisc() throws(Failure) {
      while true {
        skipSpace()
        if starts(with: "<?") {
          try skip(past: "?>", what: "declaration")
        } else if starts(with: "<!--") {
          try skip(past: "-->", what: "comment")
        } else if starts(with: "<!") {
          throw Failure(reason: "DOCTYPE and other declarations are not accepted")
        } else {
          return
        }
      }
    }

    mutating func name() throws(Failure) -> String {
      let start = index
      while let b = peek, Self.isNameByte(b) { index += 1 }
      guard index > start else { throw Failure(reason: "missing element name") }
      return String(decoding: bytes[start..<index], as: UTF8.self)
    }

    mutating func element(depth: Int) throws(Failure) -> S3XML {
      guard depth < S3XML.maxDepth else { throw Failure(reason: "elements nested too deeply") }
      index += 1  // "<"
      let name = try name()
      // Attributes (S3 only sends xmlns): skipped, but their quoting must be sound.
      while true {
        skipSpace()
        guard let b = peek else { throw Failure(reason: "unterminated <\(name)> tag") }
        if b == UInt8(ascii: ">") {
          index += 1
          break
        }
        if starts(with: "/>") {
          index += 2
          return S3XML(name: name, children: [], text: "")
        }
        _ = try self.name()
        skipSpace()
        guard peek == UInt8(ascii: "=") else { throw Failure(reason: "malformed attribute in <\(name)>") }
        index += 1
        skipSpace()
        guard let quote = peek, quote == UInt8(ascii: "\"") || quote == UInt8(ascii: "'") else {
          throw Failure(reason: "unquoted attribute in <\(name)>")
        }
        index += 1
        guard let close = bytes[index...].firstIndex(of: quote) else { throw Failure(reason: "unterminated attribute in <\(name)>") }
        index = close + 1
      }
      var children: [S3XML] = []
      var text = ""
      while true {
        guard !atEnd else { throw Failure(reason: "missing </\(name)>") }
        if starts(with: "</") {
          index += 2
          let closing = try self.name()
          skipSpace()
          guard closing == name, peek == UInt8(ascii: ">") else { throw Failure(reason: "<\(name)> closed by </\(closing)>") }
          index += 1
          return S3XML(name: name, children: children, text: text)
        } else if starts(with: "<!--") {
          try skip(past: "-->", what: "comment")
        } else if starts(with: "<![CDATA[") {
          index += 9
          let start = index
          try skip(past: "]]>", what: "CDATA section")
          text += String(decoding: bytes[start..<(index - 3)], as: UTF8.self)
        } else if peek == UInt8(ascii: "<") {
          if starts(with: "<!") || starts(with: "<?") { throw Failure(reason: "unexpected markup in <\(name)>") }
          children.append(try element(depth: depth + 1))
        } else {
          let start = index
          while let b = peek, b != UInt8(ascii: "<") { index += 1 }
          text += try S3XML.decode(bytes[start..<index])
        }
      }
    }
  }
}
