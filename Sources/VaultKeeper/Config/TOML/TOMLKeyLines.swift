// SPDX-License-Identifier: Apache-2.0
/// The line of every key of a parsed document, by the dotted path configuration errors name
/// (`vault.address`, `peer[1].ca_file`: the second table of an array), and of every table, so
/// an error about a missing key can point at the table's header.
struct TOMLKeyLines: Sendable {
  private var keys: [String: Int] = [:]
  private var tables: [String: Int] = [:]

  init(_ root: TOMLTable) {
    record(root, at: nil)
  }

  private mutating func record(_ table: TOMLTable, at prefix: String?) {
    if let prefix { tables[prefix] = table.position.line }
    for key in table.keys {
      guard let entry = table.entry(key) else { continue }
      let path = prefix.map { "\($0).\(key)" } ?? key
      keys[path] = entry.keyPosition.line
      switch entry.value.kind {
      case .table(let sub):
        record(sub, at: path)
      case .array(let items):
        for (index, item) in items.enumerated() {
          if let sub = item.table { record(sub, at: "\(path)[\(index)]") }
        }
      default:
        break
      }
    }
  }

  /// The line of `path`, else of the nearest table that contains it.
  func line(of path: String) -> Int? {
    if let line = keys[path] ?? tables[path] { return line }
    var table = path
    while let dot = table.lastIndex(of: ".") {
      table = String(table[..<dot])
      if let line = tables[table] { return line }
    }
    return nil
  }
}
