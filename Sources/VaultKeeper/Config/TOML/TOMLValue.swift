// SPDX-License-Identifier: Apache-2.0
/// Where something was written in a TOML document: 1-based line and column (in Unicode scalars).
public struct TOMLPosition: Sendable, Equatable, CustomStringConvertible {
  public var line: Int
  public var column: Int

  public init(line: Int, column: Int) {
    self.line = line
    self.column = column
  }

  public var description: String { "\(line):\(column)" }
}

/// A TOML value and the position it was written at (for a table: its header, its first
/// dotted-key mention or its opening brace).
public struct TOMLValue: Sendable {
  public indirect enum Kind: Sendable {
    case string(String)
    case integer(Int64)
    case float(Double)
    case boolean(Bool)
    case dateTime(TOMLDateTime)
    case array([TOMLValue])
    case table(TOMLTable)
  }

  public var kind: Kind
  public var position: TOMLPosition

  public init(_ kind: Kind, at position: TOMLPosition) {
    self.kind = kind
    self.position = position
  }

  public var string: String? { if case .string(let s) = kind { s } else { nil } }
  public var bool: Bool? { if case .boolean(let b) = kind { b } else { nil } }
  public var integer: Int64? { if case .integer(let i) = kind { i } else { nil } }
  /// The integer as an `Int` (always fits on the 64-bit platforms the daemon runs on).
  public var int: Int? { integer.flatMap { Int(exactly: $0) } }
  public var float: Double? { if case .float(let d) = kind { d } else { nil } }
  public var dateTime: TOMLDateTime? { if case .dateTime(let d) = kind { d } else { nil } }
  public var array: [TOMLValue]? { if case .array(let a) = kind { a } else { nil } }
  public var table: TOMLTable? { if case .table(let t) = kind { t } else { nil } }

  /// What the value is, for messages such as "must be a string, got date-time".
  public var typeName: String {
    switch kind {
    case .string: "string"
    case .integer: "integer"
    case .float: "float"
    case .boolean: "boolean"
    case .dateTime(let d): d.kindName
    case .array: "array"
    case .table: "table"
    }
  }

  /// Same value tree, positions aside; NaN equals NaN (documents that write the same value).
  public func sameValue(as other: TOMLValue) -> Bool {
    switch (kind, other.kind) {
    case (.string(let a), .string(let b)): return a == b
    case (.integer(let a), .integer(let b)): return a == b
    case (.float(let a), .float(let b)): return a == b || (a.isNaN && b.isNaN)
    case (.boolean(let a), .boolean(let b)): return a == b
    case (.dateTime(let a), .dateTime(let b)): return a == b
    case (.array(let a), .array(let b)):
      return a.count == b.count && zip(a, b).allSatisfy { $0.sameValue(as: $1) }
    case (.table(let a), .table(let b)): return a.sameValue(as: b)
    default: return false
    }
  }
}

/// A TOML table: keys in the order they were first written, each with its value and the
/// position of the key itself.
public struct TOMLTable: Sendable {
  public struct Entry: Sendable {
    public var value: TOMLValue
    public var keyPosition: TOMLPosition
  }

  public private(set) var keys: [String] = []
  private var entries: [String: Entry] = [:]
  /// The header (`[a]`, `[[a]]`), the first dotted key through it, or the `{` of an inline table.
  public var position: TOMLPosition

  public init(position: TOMLPosition) {
    self.position = position
  }

  public subscript(key: String) -> TOMLValue? { entries[key]?.value }
  public func entry(_ key: String) -> Entry? { entries[key] }
  public var count: Int { keys.count }

  /// Adds a key that is not there yet (the builder has checked that).
  mutating func append(_ key: String, _ value: TOMLValue, keyPosition: TOMLPosition) {
    if entries.updateValue(Entry(value: value, keyPosition: keyPosition), forKey: key) == nil { keys.append(key) }
  }

  public func sameValue(as other: TOMLTable) -> Bool {
    guard keys.count == other.keys.count else { return false }
    for key in keys {
      guard let a = self[key], let b = other[key], a.sameValue(as: b) else { return false }
    }
    return true
  }
}
