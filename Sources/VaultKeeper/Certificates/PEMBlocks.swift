// SPDX-License-Identifier: Apache-2.0
/// Splits PEM text (RFC 7468) into its blocks. Our own parser rather than swift-asn1's
/// `PEMDocument(pemString:)`: that one takes a `String` (which cannot be wiped) and one block at
/// a time, while a private key passes through here and a certificate file holds a chain.
enum PEMBlocks {
  struct Block {
    var label: String
    var der: [UInt8]
    /// It had RFC 1421 headers: `Proc-Type: 4,ENCRYPTED` marks an OpenSSL-encrypted key.
    var hadHeaders = false
  }

  enum Failure: Error, Equatable {
    /// A BEGIN line without its END line.
    case unterminated(label: String)
    /// The body of the block numbered `index` (1-based) is not base64.
    case badBase64(label: String, index: Int)
  }

  /// All blocks in order; text outside blocks (openssl's "Bag Attributes", comments) is ignored.
  /// Every intermediate buffer is wiped, since key files are parsed here: the caller wipes the
  /// input and the blocks' `der` when they held a key.
  static func parse(_ bytes: [UInt8]) throws(Failure) -> [Block] {
    var blocks: [Block] = []
    var label: String?
    var headers = false
    var body: [UInt8] = []
    body.reserveCapacity(bytes.count)  // one allocation: no stray copies of key text when it grows
    defer { SecretBytes.wipe(&body) }
    for rawLine in bytes.split(separator: 0x0A, omittingEmptySubsequences: false) {
      var line = rawLine[...]
      while let last = line.last, last == 0x0D || last == 0x20 || last == 0x09 { line = line.dropLast() }
      while let first = line.first, first == 0x20 || first == 0x09 { line = line.dropFirst() }
      if let current = label {
        if let end = marker(line, "END"), end == current {
          while body.last == UInt8(ascii: "=") { body.removeLast() }
          guard let der = AgeBase64.decode(body), !der.isEmpty else {
            throw .badBase64(label: current, index: blocks.count + 1)
          }
          blocks.append(Block(label: current, der: der, hadHeaders: headers))
          body.removeAll(keepingCapacity: true)
          label = nil
          headers = false
        } else if !line.starts(with: Array("-----".utf8)) {
          // RFC 1421 headers ("Proc-Type: 4,ENCRYPTED") carry a colon; they are not base64.
          if line.contains(UInt8(ascii: ":")) {
            headers = true
            continue
          }
          body.append(contentsOf: line)
        }
      } else if let begin = marker(line, "BEGIN") {
        label = begin
      }
    }
    if let label { throw .unterminated(label: label) }
    return blocks
  }

  /// The label of a `-----BEGIN LABEL-----` / `-----END LABEL-----` line.
  private static func marker(_ line: ArraySlice<UInt8>, _ kind: String) -> String? {
    let prefix = Array("-----\(kind) ".utf8)
    let suffix = Array("-----".utf8)
    guard line.count > prefix.count + suffix.count, line.starts(with: prefix), line.suffix(suffix.count).elementsEqual(suffix) else { return nil }
    return String(decoding: line.dropFirst(prefix.count).dropLast(suffix.count), as: UTF8.self)
  }
}
