// SPDX-License-Identifier: Apache-2.0
/// One recipient stanza: `-> TYPE ARG…` and a base64 body wrapped at 64 columns.
struct AgeStanza: Sendable, Equatable {
  var type: String
  var arguments: [String]
  var body: [UInt8]
}

/// The age v1 text header:
///
///     age-encryption.org/v1
///     -> X25519 <ephemeral share>
///     <body, 64-column lines, the last one shorter (possibly empty)>
///     --- <MAC>
///
/// The MAC covers everything up to and including `---` (not the space after it).
enum AgeHeader {
  static let versionLine = Array("age-encryption.org/v1".utf8)
  static let armorPrefix = Array("-----BEGIN AGE ENCRYPTED FILE-----".utf8)
  /// A header larger than this is not one we wrote or would accept: it bounds the memory a
  /// non-age or hostile file can make the parser hold.
  static let maxSize = 64 * 1024
  static let columns = 64

  /// The header up to and including `---`: the bytes the MAC is computed over.
  static func encodeForMAC(_ stanzas: [AgeStanza]) -> [UInt8] {
    var out = versionLine + [0x0A]
    for stanza in stanzas {
      out += Array("->".utf8)
      for word in [stanza.type] + stanza.arguments { out += [0x20] + Array(word.utf8) }
      out.append(0x0A)
      let body = AgeBase64.encode(stanza.body)
      var offset = 0
      // Full lines, then a shorter final line; when the body fills its last line exactly
      // (or is empty), that final line is empty.
      while body.count - offset >= columns {
        out += body[offset..<(offset + columns)] + [0x0A]
        offset += columns
      }
      out += body[offset...] + [0x0A]
    }
    return out + Array("---".utf8)
  }

  static func encode(_ stanzas: [AgeStanza], mac: [UInt8]) -> [UInt8] {
    encodeForMAC(stanzas) + [0x20] + AgeBase64.encode(mac) + [0x0A]
  }

  struct Parsed {
    var stanzas: [AgeStanza]
    var mac: [UInt8]
    /// Length of the MAC'd part (through `---`).
    var macInputLength: Int
    /// Length of the whole header including the final newline: the payload starts here.
    var length: Int
  }

  /// Parses a header from the start of `bytes`; nil when more bytes are needed.
  static func parse(_ bytes: ArraySlice<UInt8>) throws(AgeError) -> Parsed? {
    let start = bytes.startIndex
    var cursor = start
    /// The next line without its newline, or nil if it is not complete yet.
    func nextLine() -> ArraySlice<UInt8>? {
      guard let newline = bytes[cursor...].firstIndex(of: 0x0A) else { return nil }
      let line = bytes[cursor..<newline]
      cursor = newline + 1
      return line
    }
    // Reject other files at the first differing byte, without waiting for a newline.
    if !bytes.starts(with: versionLine.prefix(min(bytes.count, versionLine.count))) {
      let seen = min(bytes.count, armorPrefix.count)
      guard bytes.starts(with: armorPrefix.prefix(seen)) else { throw AgeError(.header, "not an age-encryption.org/v1 file") }
      guard seen == armorPrefix.count else { return nil }
      throw AgeError(.header, "ASCII-armored age files are not supported (decrypt with age -d, or encrypt without -a)")
    }
    guard let version = nextLine() else { return try needMore(bytes) }
    guard version.elementsEqual(versionLine) else { throw AgeError(.header, "not an age-encryption.org/v1 file") }
    var stanzas: [AgeStanza] = []
    while true {
      let lineStart = cursor
      guard let line = nextLine() else {
        // The MAC line may be incomplete; so may a stanza.
        return try needMore(bytes)
      }
      if line.starts(with: Array("---".utf8)) {
        guard line.count == 4 + 43, line[line.startIndex + 3] == 0x20,
          let mac = AgeBase64.decode(line.dropFirst(4)), mac.count == 32
        else { throw AgeError(.header, "malformed header MAC line") }
        return Parsed(stanzas: stanzas, mac: mac, macInputLength: lineStart + 3 - start, length: cursor - start)
      }
      guard line.starts(with: Array("-> ".utf8)) else { throw AgeError(.header, "malformed header line \(stanzas.count + 2)") }
      let words = line.dropFirst(3).split(separator: 0x20, omittingEmptySubsequences: false)
      for word in words where word.isEmpty || !word.allSatisfy({ $0 >= 0x21 && $0 <= 0x7E }) {
        throw AgeError(.header, "malformed stanza arguments")
      }
      var body: [UInt8] = []
      while true {
        guard let bodyLine = nextLine() else { return try needMore(bytes) }
        guard bodyLine.count <= columns, let decoded = AgeBase64.decode(bodyLine) else {
          throw AgeError(.header, "malformed stanza body")
        }
        body += decoded
        if bodyLine.count < columns { break }
      }
      stanzas.append(AgeStanza(type: String(decoding: words[0], as: UTF8.self), arguments: words.dropFirst().map { String(decoding: $0, as: UTF8.self) }, body: body))
    }
  }

  private static func needMore(_ bytes: ArraySlice<UInt8>) throws(AgeError) -> Parsed? {
    guard bytes.count <= maxSize else { throw AgeError(.header, "age header longer than \(maxSize / 1024) KiB") }
    return nil
  }
}
