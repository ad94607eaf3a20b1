// SPDX-License-Identifier: Apache-2.0
import Crypto

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What a verified snapshot says about itself (from its `meta.json`).
public struct SnapshotFacts: Sendable, Equatable {
  public var id: String
  public var index: UInt64
  public var term: UInt64
  /// Bytes of `state.bin`, as `meta.json` declares and as counted.
  public var stateBytes: Int64

  public init(id: String, index: UInt64, term: UInt64, stateBytes: Int64) {
    self.id = id
    self.index = index
    self.term = term
    self.stateBytes = stateBytes
  }
}

public struct SnapshotVerificationError: Error, Sendable, Equatable, CustomStringConvertible {
  public var reason: String
  public init(_ reason: String) { self.reason = reason }
  public var description: String { reason }
}

/// Checks the tar layer of a Raft snapshot (the archive inside the gzip) while it streams past,
/// in constant memory, the way Vault's own
/// restore code does (hashicorp/raft-snapshot `archive.go`, vault-api.md §6):
///
/// - only the entries Vault writes: `meta.json`, `state.bin`, `SHA256SUMS`, `SHA256SUMS.sealed`,
///   each exactly once, regular files, the small ones at most 8192 bytes;
/// - SHA-256 of `meta.json` and `state.bin` equal to the lines of `SHA256SUMS`, every expected
///   file listed and every listed file present;
/// - `meta.json` parses, and its `Size` equals the length of `state.bin`;
/// - the tar end-of-archive marker arrived: Vault streams without Content-Length and can cut off
///   mid-stream, so a missing end is a truncated snapshot.
///
/// It is fed the *decompressed* tar stream (gzip is undone by a `StreamDecompressor` adapter over
/// zlib) and never holds more than one 512-byte header and the two small files.
public struct SnapshotTarVerifier {
  static let smallFileLimit = 8192
  static let expected: Set<String> = ["meta.json", "state.bin", "SHA256SUMS", "SHA256SUMS.sealed"]

  private enum Phase: Sendable {
    case header
    /// Inside an entry: bytes of content left, then padding to the 512-byte boundary.
    case content(name: String?, remaining: Int64, padding: Int)
    case ended
  }

  private var phase: Phase = .header
  private var headerBuffer: [UInt8] = []
  private var zeroBlocks = 0
  private var seen: Set<String> = []
  private var metaHash = SHA256()
  private var stateHash = SHA256()
  private var meta: [UInt8] = []
  private var sums: [UInt8] = []
  private var stateBytes: Int64 = 0
  /// Total tar bytes seen, for messages.
  public private(set) var bytesSeen: Int64 = 0

  public init() {}

  public mutating func consume(_ data: UnsafeRawBufferPointer) throws(SnapshotVerificationError) {
    var offset = 0
    bytesSeen += Int64(data.count)
    while offset < data.count {
      switch phase {
      case .ended:
        // Readers stop at the end marker; writers may pad the last record with zeros.
        guard data[offset...].allSatisfy({ $0 == 0 }) else { throw SnapshotVerificationError("data after the end of the tar archive") }
        return
      case .header:
        let take = min(512 - headerBuffer.count, data.count - offset)
        headerBuffer.append(contentsOf: data[offset..<(offset + take)])
        offset += take
        if headerBuffer.count == 512 {
          try handleHeader(headerBuffer)
          headerBuffer.removeAll(keepingCapacity: true)
        }
      case .content(let name, let remaining, let padding):
        if remaining > 0 {
          let take = Int(min(remaining, Int64(data.count - offset)))
          let chunk = UnsafeRawBufferPointer(rebasing: data[offset..<(offset + take)])
          try absorb(chunk, into: name)
          offset += take
          phase = .content(name: name, remaining: remaining - Int64(take), padding: padding)
        } else if padding > 0 {
          let take = min(padding, data.count - offset)
          offset += take
          phase = padding - take > 0 ? .content(name: name, remaining: 0, padding: padding - take) : .header
        } else {
          phase = .header
        }
      }
    }
    if case .content(_, 0, 0) = phase { phase = .header }
  }

  private mutating func absorb(_ chunk: UnsafeRawBufferPointer, into name: String?) throws(SnapshotVerificationError) {
    switch name {
    case "meta.json":
      metaHash.update(bufferPointer: chunk)
      meta.append(contentsOf: chunk)
    case "state.bin":
      stateHash.update(bufferPointer: chunk)
      stateBytes += Int64(chunk.count)
    case "SHA256SUMS":
      sums.append(contentsOf: chunk)
    default:
      break  // SHA256SUMS.sealed (needs the seal to check) and PAX headers
    }
  }

  private mutating func handleHeader(_ block: [UInt8]) throws(SnapshotVerificationError) {
    if block.allSatisfy({ $0 == 0 }) {
      zeroBlocks += 1
      if zeroBlocks == 2 { phase = .ended }
      return
    }
    guard zeroBlocks == 0 else { throw SnapshotVerificationError("a tar entry follows an empty block") }
    guard Self.checksumMatches(block) else { throw SnapshotVerificationError("corrupt tar header (checksum mismatch) at byte \(bytesSeen)") }
    let size = try Self.size(block)
    let type = block[156]
    let padding = Int((512 - size % 512) % 512)
    switch type {
    case UInt8(ascii: "x"), UInt8(ascii: "g"):
      // PAX extended headers: metadata about the next entry (Vault's names need none).
      guard size <= Int64(Self.smallFileLimit) else { throw SnapshotVerificationError("oversized PAX header") }
      phase = .content(name: nil, remaining: size, padding: padding)
      return
    case 0, UInt8(ascii: "0"):
      break
    default:
      throw SnapshotVerificationError("unexpected tar entry type \(UnicodeScalar(type)) in snapshot")
    }
    let name = Self.string(block[0..<100])
    let prefix = Self.string(block[345..<500])
    let fullName = prefix.isEmpty ? name : "\(prefix)/\(name)"
    guard Self.expected.contains(fullName) else { throw SnapshotVerificationError("unexpected file \"\(fullName)\" in snapshot") }
    guard seen.insert(fullName).inserted else { throw SnapshotVerificationError("\"\(fullName)\" appears twice in snapshot") }
    if fullName != "state.bin", size > Int64(Self.smallFileLimit) {
      throw SnapshotVerificationError("\(fullName) is \(size) bytes, more than the \(Self.smallFileLimit) Vault allows")
    }
    phase = .content(name: fullName, remaining: size, padding: padding)
  }

  /// Ends verification: everything must be complete and consistent.
  public func finish() throws(SnapshotVerificationError) -> SnapshotFacts {
    guard bytesSeen > 0 else { throw SnapshotVerificationError("empty snapshot") }
    guard case .ended = phase else { throw SnapshotVerificationError("truncated snapshot: the archive ends after \(bytesSeen) bytes without its end marker") }
    for name in Self.expected.sorted() where !seen.contains(name) {
      throw SnapshotVerificationError("file missing for \"\(name)\"")
    }
    var listed: [String: String] = [:]
    for line in String(decoding: sums, as: UTF8.self).split(separator: "\n") where !line.isEmpty {
      guard let gap = line.firstRange(of: "  ") else { throw SnapshotVerificationError("malformed SHA256SUMS line") }
      listed[String(line[gap.upperBound...])] = String(line[..<gap.lowerBound]).lowercased()
    }
    let computed = ["meta.json": Self.hex(metaHash.finalize()), "state.bin": Self.hex(stateHash.finalize())]
    for (name, digest) in computed.sorted(by: { $0.key < $1.key }) {
      guard let expected = listed[name] else { throw SnapshotVerificationError("list missing hash for \"\(name)\"") }
      guard expected == digest else { throw SnapshotVerificationError("hash check failed for \"\(name)\"") }
    }
    for name in listed.keys.sorted() where computed[name] == nil {
      throw SnapshotVerificationError("file missing for \"\(name)\" listed in SHA256SUMS")
    }
    struct Meta: Decodable {
      var ID: String
      var Index: UInt64
      var Term: UInt64
      var Size: Int64
    }
    guard let decoded = try? JSONDecoder().decode(Meta.self, from: Data(meta)) else {
      throw SnapshotVerificationError("meta.json is not valid snapshot metadata")
    }
    guard decoded.Size == stateBytes else {
      throw SnapshotVerificationError("meta.json says state.bin has \(decoded.Size) bytes, the archive holds \(stateBytes)")
    }
    return SnapshotFacts(id: decoded.ID, index: decoded.Index, term: decoded.Term, stateBytes: stateBytes)
  }

  static func hex(_ digest: SHA256.Digest) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out = [UInt8]()
    out.reserveCapacity(64)
    for byte in digest {
      out.append(digits[Int(byte >> 4)])
      out.append(digits[Int(byte & 0x0F)])
    }
    return String(decoding: out, as: UTF8.self)
  }

  static func string(_ bytes: ArraySlice<UInt8>) -> String {
    String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
  }

  static func checksumMatches(_ block: [UInt8]) -> Bool {
    var sum = 0
    for (i, byte) in block.enumerated() { sum += (148..<156).contains(i) ? 32 : Int(byte) }
    let field = string(block[148..<156]).trimmingWhitespace()
    return Int(field.trimmingCharacters(in: " "), radix: 8) == sum
  }

  /// Octal, or base-256 (high bit set) for large files, as Go's archive/tar writes.
  static func size(_ block: [UInt8]) throws(SnapshotVerificationError) -> Int64 {
    let field = block[124..<136]
    if let first = field.first, first & 0x80 != 0 {
      var value: Int64 = Int64(first & 0x7F)
      for byte in field.dropFirst() {
        guard value < Int64.max >> 8 else { throw SnapshotVerificationError("tar entry size out of range") }
        value = value << 8 | Int64(byte)
      }
      return value
    }
    let text = string(field).trimmingWhitespace()
    guard let value = Int64(text, radix: 8), value >= 0 else { throw SnapshotVerificationError("corrupt tar header (size)") }
    return value
  }
}

extension String {
  fileprivate func trimmingCharacters(in set: String) -> String {
    var s = Substring(self)
    while let f = s.first, set.contains(f) { s = s.dropFirst() }
    while let l = s.last, set.contains(l) { s = s.dropLast() }
    return String(s)
  }
}
