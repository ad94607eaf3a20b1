// SPDX-License-Identifier: Apache-2.0
/// Assembles the document while it is read and enforces TOML's rules on defining things once:
///
/// - a table is defined once, by its `[header]` or by dotted keys, never both, never twice; a
///   header may name a table that only exists as the parent of another (`[a.b]` then `[a]`);
/// - `[[name]]` appends a table to an array of tables, which no static array or table may be;
/// - dotted keys create tables within the current section; they cannot add to a table that a
///   header defined, nor (from a later section) to one dotted keys defined;
/// - inline tables and arrays are values, complete as written: nothing may add to them;
/// - a key is set once.
///
/// The tree under construction is made of reference-typed tables so the current section can be
/// extended in place; `finish()` turns it into the value types the parser returns.
struct TOMLDocumentBuilder {
  final class Table {
    enum Origin { case implicit, header, dotted, inline }

    var order: [String] = []
    var entries: [String: (node: Node, keyPosition: TOMLPosition)] = [:]
    var origin: Origin
    let position: TOMLPosition
    let depth: Int
    /// The section (header count) in which dotted keys created this table.
    var section: Int

    init(origin: Origin, position: TOMLPosition, depth: Int, section: Int) {
      self.origin = origin
      self.position = position
      self.depth = depth
      self.section = section
    }

    func set(_ key: String, _ node: Node, at position: TOMLPosition) {
      if entries.updateValue((node, position), forKey: key) == nil { order.append(key) }
    }
  }

  enum Node {
    case value(TOMLValue)
    case table(Table)
    case arrayOfTables([Table], TOMLPosition)
  }

  /// A key path as written: each part with its position.
  typealias Key = [(name: String, position: TOMLPosition)]

  static let maxDepth = 100

  let root = Table(origin: .header, position: TOMLPosition(line: 1, column: 1), depth: 0, section: 0)
  private(set) var current: Table
  private var section = 0

  init() {
    current = root
  }

  private static func display(_ key: Key) -> String {
    key.map { part in
      part.name.utf8.allSatisfy(TOMLScanner.isBareKey) && !part.name.isEmpty ? part.name : "\"\(part.name)\""
    }.joined(separator: ".")
  }

  /// A table one level below `parent`, or two for a table in an array of tables (as the same
  /// table written inline, `a = [{…}]`, would be).
  private static func child(
    of parent: Table, origin: Table.Origin, at position: TOMLPosition, section: Int, levels: Int = 1
  ) throws(TOMLError) -> Table {
    guard parent.depth + levels <= maxDepth else { throw TOMLError(position, "tables are nested more than \(maxDepth) deep") }
    return Table(origin: origin, position: position, depth: parent.depth + levels, section: section)
  }

  /// Walks to the table a header's parent parts name, creating implicit tables on the way;
  /// through an array of tables it goes into the last table appended.
  private func parent(of key: Key, header: String) throws(TOMLError) -> Table {
    var table = root
    for part in key.dropLast() {
      switch table.entries[part.name]?.node {
      case nil:
        let created = try Self.child(of: table, origin: .implicit, at: part.position, section: section)
        table.set(part.name, .table(created), at: part.position)
        table = created
      case .table(let existing):
        table = existing
      case .arrayOfTables(let tables, _):
        guard let last = tables.last else { throw TOMLError(part.position, "\(header): empty array of tables") }
        table = last
      case .value(let value):
        throw TOMLError(part.position, "\(header): \(part.name) is already a \(value.typeName), not a table")
      }
    }
    return table
  }

  /// `[key]`: the current section becomes that table.
  mutating func openTable(_ key: Key, at position: TOMLPosition) throws(TOMLError) {
    section += 1
    let header = "[\(Self.display(key))]"
    let parent = try parent(of: key, header: header)
    guard let last = key.last else { throw TOMLError(position, "a table header needs a key") }
    switch parent.entries[last.name]?.node {
    case nil:
      let table = try Self.child(of: parent, origin: .header, at: position, section: section)
      parent.set(last.name, .table(table), at: last.position)
      current = table
    case .table(let existing) where existing.origin == .implicit:
      existing.origin = .header
      current = existing
    case .table(let existing):
      let how = existing.origin == .header ? "by its own header" : "by dotted keys"
      throw TOMLError(position, "\(header) is defined twice: it was defined on line \(existing.position.line) \(how)")
    case .arrayOfTables(_, let at):
      throw TOMLError(position, "\(header): \(Self.display(key)) is an array of tables (line \(at.line)), written [[\(Self.display(key))]]")
    case .value(let value):
      throw TOMLError(position, "\(header): \(Self.display(key)) is already a \(value.typeName) (line \(value.position.line))")
    }
  }

  /// `[[key]]`: a new table appended to the array, which becomes the current section.
  mutating func appendTable(_ key: Key, at position: TOMLPosition) throws(TOMLError) {
    section += 1
    let header = "[[\(Self.display(key))]]"
    let parent = try parent(of: key, header: header)
    guard let last = key.last else { throw TOMLError(position, "a table header needs a key") }
    let table = try Self.child(of: parent, origin: .header, at: position, section: section, levels: 2)
    switch parent.entries[last.name]?.node {
    case nil:
      parent.set(last.name, .arrayOfTables([table], position), at: last.position)
    case .arrayOfTables(var tables, let at):
      // Dropped from the parent first so the array is not copied on append.
      let keyPosition = parent.entries[last.name]?.keyPosition ?? last.position
      parent.entries[last.name] = nil
      tables.append(table)
      parent.entries[last.name] = (.arrayOfTables(tables, at), keyPosition)
    case .table(let existing):
      throw TOMLError(position, "\(header): \(Self.display(key)) is a table (line \(existing.position.line)), not an array of tables")
    case .value(let value):
      throw TOMLError(position, "\(header): \(Self.display(key)) is already a \(value.typeName) (line \(value.position.line)), not an array of tables")
    }
    current = table
  }

  /// `key = value` in the current section.
  mutating func set(_ key: Key, _ value: TOMLValue) throws(TOMLError) {
    try Self.set(key, value, in: current, section: section)
  }

  /// `key = value` in `table` (the current section, or an inline table being read).
  static func set(_ key: Key, _ value: TOMLValue, in start: Table, section: Int) throws(TOMLError) {
    var table = start
    for part in key.dropLast() {
      switch table.entries[part.name]?.node {
      case nil:
        let created = try child(of: table, origin: table.origin == .inline ? .inline : .dotted, at: part.position, section: section)
        table.set(part.name, .table(created), at: part.position)
        table = created
      case .table(let existing) where (existing.origin == .dotted && existing.section == section) || existing.origin == .inline:
        table = existing
      case .table(let existing) where existing.origin == .implicit:
        // Only the parent of a header so far: the dotted key defines it (no header may follow).
        existing.origin = .dotted
        existing.section = section
        table = existing
      case .table(let existing):
        throw TOMLError(
          part.position,
          "\(display(key)): cannot add to \(part.name) with a dotted key, it is a table defined on line \(existing.position.line)")
      case .arrayOfTables(_, let at):
        throw TOMLError(part.position, "\(display(key)): \(part.name) is an array of tables (line \(at.line)), not a table")
      case .value(let existing):
        throw TOMLError(
          part.position, "\(display(key)): \(part.name) is already a \(existing.typeName) (line \(existing.position.line)), not a table")
      }
    }
    guard let last = key.last else { throw TOMLError(value.position, "a key is missing") }
    if let existing = table.entries[last.name] {
      throw TOMLError(last.position, "\(display(key)) is defined twice (first on line \(existing.keyPosition.line))")
    }
    table.set(last.name, .value(value), at: last.position)
  }

  /// The finished document.
  func finish() -> TOMLTable { Self.freeze(root) }

  static func freeze(_ table: Table) -> TOMLTable {
    var result = TOMLTable(position: table.position)
    for key in table.order {
      guard let (node, keyPosition) = table.entries[key] else { continue }
      switch node {
      case .value(let value):
        result.append(key, value, keyPosition: keyPosition)
      case .table(let sub):
        result.append(key, TOMLValue(.table(freeze(sub)), at: sub.position), keyPosition: keyPosition)
      case .arrayOfTables(let tables, let position):
        let array = tables.map { TOMLValue(.table(freeze($0)), at: $0.position) }
        result.append(key, TOMLValue(.array(array), at: position), keyPosition: keyPosition)
      }
    }
    return result
  }
}
