// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
@testable import VaultKeeper

/// The TOML 1.0 cases of the toml-test suite (TOMLCorpus/, MIT, see its README), kept where
/// Python's tomllib agrees with them (TOMLCorpus/select.py): every valid document must give the
/// expected value tree, every invalid one must be refused with a located error.
@Suite struct TOMLConformanceTests {
  static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("TOMLCorpus")

  static func cases(_ kind: String) -> [String] {
    let root = corpus.appendingPathComponent(kind)
    guard let walker = FileManager.default.enumerator(atPath: root.path) else { return [] }
    return walker.compactMap { $0 as? String }.filter { $0.hasSuffix(".toml") }.sorted().map { "\(kind)/\($0)" }
  }

  /// toml-test's JSON encoding of a value tree: tables are objects, arrays are arrays, and every
  /// scalar is `{"type": …, "value": "…"}`.
  indirect enum Expected: Decodable, CustomStringConvertible {
    case scalar(type: String, value: String)
    case table([String: Expected])
    case array([Expected])

    init(from decoder: Decoder) throws {
      let container = try decoder.singleValueContainer()
      if let items = try? container.decode([Expected].self) {
        self = .array(items)
      } else if let scalar = try? container.decode([String: String].self), Set(scalar.keys) == ["type", "value"],
        let type = scalar["type"], let value = scalar["value"]
      {
        self = .scalar(type: type, value: value)
      } else {
        self = .table(try container.decode([String: Expected].self))
      }
    }

    var description: String {
      switch self {
      case .scalar(let type, let value): "\(type)(\(value))"
      case .table(let entries): "{" + entries.keys.sorted().map { "\($0): \(entries[$0]!)" }.joined(separator: ", ") + "}"
      case .array(let items): "[" + items.map(\.description).joined(separator: ", ") + "]"
      }
    }
  }

  /// Where `value` differs from `expected`, or nil.
  static func difference(_ value: TOMLValue, _ expected: Expected, at path: String) -> String? {
    switch (value.kind, expected) {
    case (.table(let table), .table(let entries)):
      guard Set(table.keys) == Set(entries.keys) else { return "\(path): keys \(table.keys.sorted()) != \(entries.keys.sorted())" }
      for key in table.keys {
        guard let sub = table[key], let want = entries[key] else { return "\(path).\(key): missing" }
        if let problem = difference(sub, want, at: "\(path).\(key)") { return problem }
      }
      return nil
    case (.array(let items), .array(let wanted)):
      guard items.count == wanted.count else { return "\(path): \(items.count) items, expected \(wanted.count)" }
      for (index, pair) in zip(items, wanted).enumerated() {
        if let problem = difference(pair.0, pair.1, at: "\(path)[\(index)]") { return problem }
      }
      return nil
    case (_, .scalar(let type, let text)):
      let same: Bool
      switch (value.kind, type) {
      case (.string(let s), "string"): same = s == text
      case (.integer(let i), "integer"): same = Int64(text) == i
      case (.boolean(let b), "bool"): same = (b ? "true" : "false") == text
      case (.float(let d), "float"):
        let want: Double? = switch text {
        case "inf", "+inf": .infinity
        case "-inf": -.infinity
        case "nan", "+nan", "-nan": .nan
        default: Double(text)
        }
        same = want.map { $0 == d || ($0.isNaN && d.isNaN) } ?? false
      case (.dateTime(let d), "datetime"), (.dateTime(let d), "datetime-local"), (.dateTime(let d), "date-local"),
        (.dateTime(let d), "time-local"):
        // The expected text is read by the parser's own date-time reader (it is TOML syntax too).
        let parsed = try? TOMLParser.parse("x = \(text)")["x"]?.dateTime
        let kind = ["datetime": "date-time", "datetime-local": "local date-time", "date-local": "local date", "time-local": "local time"][type]
        same = parsed == d && d.kindName == kind
      default: same = false
      }
      return same ? nil : "\(path): \(value.typeName) \(TOMLWriter.write(value)) != \(type) \(text)"
    default:
      return "\(path): \(value.typeName) \(TOMLWriter.write(value)) != \(expected)"
    }
  }

  @Test func theCorpusIsThere() {
    #expect(Self.cases("valid").count > 150)
    #expect(Self.cases("invalid").count > 400)
  }

  @Test func validDocumentsGiveTheExpectedTree() throws {
    var failures: [String] = []
    for name in Self.cases("valid") {
      let file = Self.corpus.appendingPathComponent(name)
      let bytes = [UInt8](try Data(contentsOf: file))
      let expected = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: file.deletingPathExtension().appendingPathExtension("json")))
      do {
        let table = try TOMLParser.parse(bytes)
        if let problem = Self.difference(TOMLValue(.table(table), at: table.position), expected, at: "") {
          failures.append("\(name): \(problem)")
        }
        // What the writer makes of it must read back as the same tree.
        let again = try TOMLParser.parse(TOMLWriter.write(table))
        if !again.sameValue(as: table) { failures.append("\(name): the written document reads back differently") }
      } catch {
        failures.append("\(name): refused: \(error)")
      }
    }
    #expect(failures == [])
  }

  @Test func invalidDocumentsAreRefusedWithAPosition() throws {
    var accepted: [String] = []
    for name in Self.cases("invalid") {
      let bytes = [UInt8](try Data(contentsOf: Self.corpus.appendingPathComponent(name)))
      do {
        _ = try TOMLParser.parse(bytes)
        accepted.append(name)
      } catch {
        let lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).count
        #expect(error.line >= 1 && error.line <= lines && error.column >= 1, "\(name): \(error)")
      }
    }
    #expect(accepted == [])
  }
}
