// SPDX-License-Identifier: Apache-2.0
/// Finds the line a key was written on. TOMLKit (toml++) reports positions for syntax errors but
/// not for values, so validation errors locate their key by scanning the source text: table
/// headers (`[vault]`, `[[peer]]`, counted) and `key = value` lines. Dotted keys and inline
/// tables fall back to the nearest table header, which still points the operator close enough.
struct TOMLLineLocator {
  private var keyLines: [String: Int] = [:]
  private var tableLines: [String: Int] = [:]

  init(source: String) {
    var currentTable = ""
    var arrayCounts: [String: Int] = [:]
    var lineNumber = 0
    for rawLine in source.split(separator: "\n", omittingEmptySubsequences: false) {
      lineNumber += 1
      let line = rawLine.trimmingWhitespace()
      if line.isEmpty || line.hasPrefix("#") { continue }
      if line.hasPrefix("[[") {
        let name = Self.headerName(line, brackets: 2)
        let index = arrayCounts[name, default: 0]
        arrayCounts[name] = index + 1
        currentTable = "\(name)[\(index)]"
        tableLines[currentTable] = lineNumber
        continue
      }
      if line.hasPrefix("[") {
        currentTable = Self.headerName(line, brackets: 1)
        tableLines[currentTable] = lineNumber
        continue
      }
      guard let equals = line.firstIndex(of: "=") else { continue }
      var key = line[..<equals].trimmingWhitespace()
      if key.count >= 2, key.first == "\"", key.last == "\"" { key = String(key.dropFirst().dropLast()) }
      let path = currentTable.isEmpty ? key : "\(currentTable).\(key)"
      if keyLines[path] == nil { keyLines[path] = lineNumber }
    }
  }

  private static func headerName(_ line: String, brackets: Int) -> String {
    var inner = Substring(line.dropFirst(brackets))
    if let end = inner.firstIndex(of: "]") { inner = inner[..<end] }
    return inner.trimmingWhitespace()
  }

  /// The line of `path` (e.g. `vault.address`, `peer[1].ca_file`), else of its table.
  func line(of path: String) -> Int? {
    if let line = keyLines[path] { return line }
    var table = path
    while let dot = table.lastIndex(of: ".") {
      table = String(table[..<dot])
      if let line = tableLines[table] { return line }
    }
    return tableLines[table]
  }
}
