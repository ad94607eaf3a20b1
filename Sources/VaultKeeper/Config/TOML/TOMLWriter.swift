// SPDX-License-Identifier: Apache-2.0
/// Writes a parsed document back as TOML that parses to the same value tree: one `key = value`
/// line per top-level key, nested tables inline. For tests and the fuzz target's round trip
/// (parse, write, parse again), not for people.
public enum TOMLWriter {
  public static func write(_ table: TOMLTable) -> String {
    table.keys.compactMap { key in table[key].map { "\(quote(key)) = \(write($0))\n" } }.joined()
  }

  public static func write(_ value: TOMLValue) -> String {
    switch value.kind {
    case .string(let text): quote(text)
    case .integer(let number): String(number)
    case .float(let number): number.isNaN ? "nan" : number.isInfinite ? (number < 0 ? "-inf" : "inf") : "\(number)"
    case .boolean(let flag): flag ? "true" : "false"
    case .dateTime(let dateTime): dateTime.description
    case .array(let items): "[" + items.map(write).joined(separator: ", ") + "]"
    case .table(let table): "{" + table.keys.compactMap { key in table[key].map { "\(quote(key)) = \(write($0))" } }.joined(separator: ", ") + "}"
    }
  }

  /// A basic string; control characters, `"` and `\` escaped.
  public static func quote(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
      switch scalar {
      case "\"": out += "\\\""
      case "\\": out += "\\\\"
      case "\n": out += "\\n"
      case "\t": out += "\\t"
      case "\r": out += "\\r"
      case _ where scalar.value < 0x20 || scalar.value == 0x7F:
        let hex = String(scalar.value, radix: 16, uppercase: true)
        out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
      default: out.unicodeScalars.append(scalar)
      }
    }
    return out + "\""
  }
}
