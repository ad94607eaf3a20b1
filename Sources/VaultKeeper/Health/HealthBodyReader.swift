// SPDX-License-Identifier: Apache-2.0

/// Reads the JSON body of `GET /v1/sys/health` into a `HealthBody`, the same as
/// `JSONDecoder().decode(HealthBody.self, …)` would, in one pass over the bytes.
///
/// Why not JSONDecoder: every health check decodes this body, and JSONDecoder (its scanner, its
/// keyed container's dictionary of every key, the `Decodable` witness calls) was about an eighth
/// of the instructions vaultkeeper spends per check (callgrind; docs/benchmarks.md). The body is
/// one flat object of a dozen scalars, so a strict reader of exactly that is short.
///
/// It accepts exactly what JSONDecoder (FoundationEssentials) accepts for this type, which is
/// stricter about the values it decodes than about those it only skips:
/// - the body is one JSON object with nothing but JSON whitespace after it (a UTF-8 byte order
///   mark before it is skipped); objects and arrays may end with a trailing comma; nesting is
///   at most 512 deep;
/// - keys, and the strings it keeps, must be valid JSON strings (no raw control characters, known
///   escapes, `\u` escapes with valid surrogate pairs) of valid UTF-8;
/// - `initialized`, `sealed` and `standby` must be booleans, the optional fields null or of their
///   type; for a key given twice the first value counts and the second is only skipped;
/// - a skipped string runs to the next quote outside an escape (`\u` takes the four bytes after
///   it unchecked), whatever it holds; a skipped number is
///   `-` or a digit followed by any of `0-9 . e E + -`; `true`, `false` and `null` are exact.
/// Anything else is nil, which the classifier reports as a body that is not Vault health JSON.
/// `HealthBodyReaderTests` checks it against JSONDecoder on real, damaged and random bodies.
enum HealthBodyReader {
  static func read(_ body: [UInt8]) -> HealthBody? {
    body.withUnsafeBufferPointer { buffer in
      var reader = JSONBytes(buffer)
      return reader.healthBody()
    }
  }
}

/// A cursor over JSON text. Every method either consumes what it names and returns it, or
/// returns nil (or false) for text that is not JSON of that kind; the caller then gives up.
private struct JSONBytes {
  private let bytes: UnsafeBufferPointer<UInt8>
  private var index = 0
  /// JSONDecoder's limit on nested objects and arrays; the top-level object counts as 1.
  private static let maxDepth = 512

  init(_ bytes: UnsafeBufferPointer<UInt8>) {
    self.bytes = bytes
    // JSONDecoder skips a UTF-8 byte order mark.
    if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { index = 3 }
  }

  /// What a field of the body holds: absent, null, or a value of its type (nil: another type).
  private enum Field<T> {
    case absent, null, value(T)
  }

  mutating func healthBody() -> HealthBody? {
    var initialized: Field<Bool> = .absent, sealed: Field<Bool> = .absent, standby: Field<Bool> = .absent
    var performanceStandby: Field<Bool> = .absent, removed: Field<Bool> = .absent, haHealthy: Field<Bool> = .absent
    var drMode: Field<String> = .absent, version: Field<String> = .absent
    var clusterName: Field<String> = .absent, clusterID: Field<String> = .absent
    skipWhitespace()
    guard take(UInt8(ascii: "{")) else { return nil }
    skipWhitespace()
    while !take(UInt8(ascii: "}")) {
      guard let key = memberKey() else { return nil }
      skipWhitespace()
      guard take(UInt8(ascii: ":")) else { return nil }
      skipWhitespace()
      switch key {
      case .initialized: guard read(&initialized, { $0.boolField() }) else { return nil }
      case .sealed: guard read(&sealed, { $0.boolField() }) else { return nil }
      case .standby: guard read(&standby, { $0.boolField() }) else { return nil }
      case .performanceStandby: guard read(&performanceStandby, { $0.boolField() }) else { return nil }
      case .removedFromCluster: guard read(&removed, { $0.boolField() }) else { return nil }
      case .haConnectionHealthy: guard read(&haHealthy, { $0.boolField() }) else { return nil }
      case .replicationDRMode: guard read(&drMode, { $0.stringField() }) else { return nil }
      case .version: guard read(&version, { $0.stringField() }) else { return nil }
      case .clusterName: guard read(&clusterName, { $0.stringField() }) else { return nil }
      case .clusterID: guard read(&clusterID, { $0.stringField() }) else { return nil }
      case .other: guard skipValue(depth: 2) else { return nil }
      }
      guard endOfMember(close: UInt8(ascii: "}")) else { return nil }
    }
    skipWhitespace()
    guard index == bytes.count else { return nil }
    guard case .value(let isInitialized) = initialized, case .value(let isSealed) = sealed, case .value(let isStandby) = standby
    else { return nil }
    func optional<T>(_ field: Field<T>) -> T? {
      if case .value(let value) = field { return value }
      return nil
    }
    return HealthBody(
      initialized: isInitialized, sealed: isSealed, standby: isStandby, performanceStandby: optional(performanceStandby),
      replicationDRMode: optional(drMode), version: optional(version), clusterName: optional(clusterName),
      clusterID: optional(clusterID), removedFromCluster: optional(removed), haConnectionHealthy: optional(haHealthy))
  }

  // MARK: values

  /// Reads a known field's value with `parse` the first time its key appears; a repeated key's
  /// value is only skipped (JSONDecoder keeps the first).
  private mutating func read<T>(_ field: inout Field<T>, _ parse: (inout JSONBytes) -> Field<T>?) -> Bool {
    guard case .absent = field else { return skipValue(depth: 2) }
    guard let value = parse(&self) else { return false }
    field = value
    return true
  }

  /// After a member or element: whitespace, then a comma (and whitespace), or the closing
  /// bracket, which stays for the caller's loop to take. False for anything else.
  private mutating func endOfMember(close: UInt8) -> Bool {
    skipWhitespace()
    if take(UInt8(ascii: ",")) {
      skipWhitespace()
      // A trailing comma is allowed, a comma before another comma or at the start is not.
      return index < bytes.count && bytes[index] != UInt8(ascii: ",")
    }
    return index < bytes.count && bytes[index] == close
  }

  private mutating func boolField() -> Field<Bool>? {
    if literal("true") { return .value(true) }
    if literal("false") { return .value(false) }
    if literal("null") { return .null }
    return nil
  }

  private mutating func stringField() -> Field<String>? {
    if literal("null") { return .null }
    return string().map { .value($0) }
  }

  /// Skips one JSON value, checking its grammar.
  private mutating func skipValue(depth: Int) -> Bool {
    guard index < bytes.count else { return false }
    switch bytes[index] {
    case UInt8(ascii: "\""): return skipString()
    case UInt8(ascii: "t"): return literal("true")
    case UInt8(ascii: "f"): return literal("false")
    case UInt8(ascii: "n"): return literal("null")
    case UInt8(ascii: "["): return depth <= Self.maxDepth && container(close: UInt8(ascii: "]"), keyed: false, depth: depth)
    case UInt8(ascii: "{"): return depth <= Self.maxDepth && container(close: UInt8(ascii: "}"), keyed: true, depth: depth)
    default: return number()
    }
  }

  private mutating func container(close: UInt8, keyed: Bool, depth: Int) -> Bool {
    index += 1
    skipWhitespace()
    while !take(close) {
      if keyed {
        guard string() != nil else { return false }
        skipWhitespace()
        guard take(UInt8(ascii: ":")) else { return false }
        skipWhitespace()
      }
      guard skipValue(depth: depth + 1), endOfMember(close: close) else { return false }
    }
    return true
  }

  /// A number as JSONDecoder skips one: `-` or a digit, then any of `0-9 . e E + -`.
  private mutating func number() -> Bool {
    guard index < bytes.count, bytes[index] == UInt8(ascii: "-") || Self.isDigit(bytes[index]) else { return false }
    index += 1
    while index < bytes.count {
      switch bytes[index] {
      case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E"), UInt8(ascii: "+"), UInt8(ascii: "-"):
        index += 1
      default: return true
      }
    }
    return true
  }

  private static func isDigit(_ byte: UInt8) -> Bool { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) }

  /// A string as JSONDecoder skips one: to the next quote that is not part of an escape.
  private mutating func skipString() -> Bool {
    index += 1
    while index < bytes.count {
      switch bytes[index] {
      case UInt8(ascii: "\""):
        index += 1
        return true
      case UInt8(ascii: "\\"):
        // JSONDecoder steps over an escape without checking it: `\u` and the four bytes after
        // it (whatever they are, a quote included), or the one byte after the backslash.
        index += index + 1 < bytes.count && bytes[index + 1] == UInt8(ascii: "u") ? 6 : 2
      default: index += 1
      }
    }
    return false
  }

  /// The keys of `HealthBody`.
  private enum Key: String, CaseIterable {
    case initialized, sealed, standby, version
    case performanceStandby = "performance_standby"
    case replicationDRMode = "replication_dr_mode"
    case clusterName = "cluster_name"
    case clusterID = "cluster_id"
    case removedFromCluster = "removed_from_cluster"
    case haConnectionHealthy = "ha_connection_healthy"
    case other = ""

    static let names: [(bytes: [UInt8], key: Key)] = allCases.filter { $0 != .other }.map { (Array($0.rawValue.utf8), $0) }
  }

  /// A member's key. A key of printable ASCII without escapes (all of Vault's) is matched by
  /// its bytes, without making a String of it; any other is read and checked as a string.
  private mutating func memberKey() -> Key? {
    let quote = index
    guard take(UInt8(ascii: "\"")) else { return nil }
    let start = index
    while index < bytes.count, bytes[index] != UInt8(ascii: "\""), bytes[index] != UInt8(ascii: "\\"),
      (0x20..<0x80).contains(bytes[index])
    {
      index += 1
    }
    if index < bytes.count, bytes[index] == UInt8(ascii: "\"") {
      let name = UnsafeBufferPointer(rebasing: bytes[start..<index])
      index += 1
      return Key.names.first { $0.bytes.count == name.count && $0.bytes.elementsEqual(name) }?.key ?? .other
    }
    index = quote
    return string().map { Key(rawValue: $0) ?? .other }
  }

  /// A JSON string, decoded; nil if it is not one or is not valid UTF-8.
  private mutating func string() -> String? {
    guard take(UInt8(ascii: "\"")) else { return nil }
    let start = index
    var ascii = true
    // The common case, no escapes: the bytes between the quotes are the string.
    while index < bytes.count {
      let byte = bytes[index]
      if byte == UInt8(ascii: "\"") {
        defer { index += 1 }
        let raw = UnsafeBufferPointer(rebasing: bytes[start..<index])
        // ASCII is valid UTF-8: no need for the (generic, slower) validating initialiser.
        return ascii ? String(decoding: raw, as: UTF8.self) : String(validating: raw, as: UTF8.self)
      }
      if byte >= 0x80 { ascii = false }
      if byte == UInt8(ascii: "\\") { break }
      if byte < 0x20 { return nil }
      index += 1
    }
    guard index < bytes.count else { return nil }
    var decoded = Array(bytes[start..<index])
    while index < bytes.count {
      let byte = bytes[index]
      index += 1
      switch byte {
      case UInt8(ascii: "\""): return String(validating: decoded, as: UTF8.self)
      case UInt8(ascii: "\\"):
        guard escape(into: &decoded) else { return nil }
      case ..<0x20: return nil
      default: decoded.append(byte)
      }
    }
    return nil
  }

  /// One escape after its backslash, appended as UTF-8.
  private mutating func escape(into decoded: inout [UInt8]) -> Bool {
    guard index < bytes.count else { return false }
    let byte = bytes[index]
    index += 1
    switch byte {
    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): decoded.append(byte)
    case UInt8(ascii: "b"): decoded.append(0x08)
    case UInt8(ascii: "f"): decoded.append(0x0C)
    case UInt8(ascii: "n"): decoded.append(0x0A)
    case UInt8(ascii: "r"): decoded.append(0x0D)
    case UInt8(ascii: "t"): decoded.append(0x09)
    case UInt8(ascii: "u"):
      guard let unit = hex4() else { return false }
      var scalar: Unicode.Scalar?
      switch unit {
      case 0xD800...0xDBFF:
        guard take(UInt8(ascii: "\\")), take(UInt8(ascii: "u")), let low = hex4(), (0xDC00...0xDFFF).contains(low) else { return false }
        scalar = Unicode.Scalar(0x10000 + ((UInt32(unit) - 0xD800) << 10) + (UInt32(low) - 0xDC00))
      case 0xDC00...0xDFFF: return false
      default: scalar = Unicode.Scalar(UInt32(unit))
      }
      guard let scalar else { return false }
      decoded.append(contentsOf: String(Character(scalar)).utf8)
    default: return false
    }
    return true
  }

  private mutating func hex4() -> UInt16? {
    guard index + 4 <= bytes.count else { return nil }
    var value: UInt16 = 0
    for _ in 0..<4 {
      let byte = bytes[index]
      let digit: UInt8
      switch byte {
      case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
      case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
      case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
      default: return nil
      }
      value = value << 4 | UInt16(digit)
      index += 1
    }
    return value
  }

  // MARK: tokens

  private mutating func literal(_ word: StaticString) -> Bool {
    let count = word.utf8CodeUnitCount
    guard index + count <= bytes.count else { return false }
    let matches = word.withUTF8Buffer { expected in
      (0..<count).allSatisfy { bytes[index + $0] == expected[$0] }
    }
    if matches { index += count }
    return matches
  }

  private mutating func take(_ byte: UInt8) -> Bool {
    guard index < bytes.count, bytes[index] == byte else { return false }
    index += 1
    return true
  }

  private mutating func skipWhitespace() {
    while index < bytes.count {
      switch bytes[index] {
      case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"): index += 1
      default: return
      }
    }
  }
}
