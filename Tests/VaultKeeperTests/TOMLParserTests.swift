// SPDX-License-Identifier: Apache-2.0
import Testing
@testable import VaultKeeper

/// `TOMLParser` by hand: every value kind, every escape, the redefinition rules, positions of
/// keys, values and errors, the nesting limit, and the inputs toml++ (the parser it replaced)
/// aborted the process on.
@Suite struct TOMLParserTests {
  func parse(_ text: String) throws(TOMLError) -> TOMLTable { try TOMLParser.parse(text) }

  func value(_ text: String) throws -> TOMLValue {
    try #require(try parse("x = \(text)\n")["x"])
  }

  func failure(_ text: String) -> TOMLError? {
    do throws(TOMLError) {
      _ = try parse(text)
      return nil
    } catch {
      return error
    }
  }

  // MARK: values

  @Test func scalars() throws {
    #expect(try value("\"text\"").string == "text")
    #expect(try value("'C:\\path'").string == "C:\\path")
    #expect(try value("true").bool == true)
    #expect(try value("false").bool == false)
    #expect(try value("42").integer == 42)
    #expect(try value("+17").integer == 17)
    #expect(try value("-0").integer == 0)
    #expect(try value("1_000_000").integer == 1_000_000)
    #expect(try value("0xDEAD_beef").integer == 0xDEAD_BEEF)
    #expect(try value("0o755").integer == 0o755)
    #expect(try value("0b1101_0101").integer == 0b1101_0101)
    #expect(try value("9223372036854775807").integer == Int64.max)
    #expect(try value("-9223372036854775808").integer == Int64.min)
    #expect(try value("0x7FFFFFFFFFFFFFFF").integer == Int64.max)
    #expect(try value("3.25").float == 3.25)
    #expect(try value("-1e3").float == -1000)
    #expect(try value("6.626e-34").float == 6.626e-34)
    #expect(try value("1E+2").float == 100)
    #expect(try value("1_0.5_0e0_1").float == 105)
    #expect(try value("inf").float == .infinity)
    #expect(try value("-inf").float == -.infinity)
    #expect(try value("+nan").float?.isNaN == true)
    #expect(try value("[1, \"two\", [3.0], {a = 4}]").array?.count == 4)
    #expect(try value("{ a = 1, b.c = \"d\" }").table?["b"]?.table?["c"]?.string == "d")
  }

  @Test(arguments: [
    ("1979-05-27T07:32:00Z", "date-time", "1979-05-27T07:32:00Z"),
    ("1979-05-27 07:32:00.999999-07:00", "date-time", "1979-05-27T07:32:00.999999-07:00"),
    ("1979-05-27t07:32:00+05:30", "date-time", "1979-05-27T07:32:00+05:30"),
    ("1979-05-27T07:32:00", "local date-time", "1979-05-27T07:32:00"),
    ("2024-02-29", "local date", "2024-02-29"),
    ("07:32:00.5", "local time", "07:32:00.5"),
    ("00:00:00.1234567891", "local time", "00:00:00.123456789"),
  ])
  func dateTimes(text: String, kind: String, written: String) throws {
    let parsed = try #require(try value(text).dateTime)
    #expect(parsed.kindName == kind)
    #expect(parsed.description == written)
  }

  @Test(arguments: ["2023-02-29", "1979-13-01", "1979-05-32", "1979-05-27T24:00:00", "1979-05-27T07:60:00", "07:32:60", "07:32",
    "1979-05-27T07:32:00+24:00", "1979-05-27T", "07:32:00.", "1979-5-27"])
  func impossibleDateTimesAreRefused(text: String) {
    #expect(failure("x = \(text)\n") != nil)
  }

  @Test(arguments: [
    ("\"\\b\\t\\n\\f\\r\\\"\\\\\"", "\u{8}\t\n\u{C}\r\"\\"),
    ("\"\\u00e9\\U0001F512\"", "é\u{1F512}"),
    ("\"\"\"\nline one\nline two\"\"\"", "line one\nline two"),
    ("\"\"\"a \\\n   \n  b\"\"\"", "a b"),
    ("\"\"\"quote \"\" inside\"\"\"\"\"", "quote \"\" inside\"\""),
    ("'''\nraw \\n ''stays'''''", "raw \\n ''stays''"),
    ("\"tab\there\"", "tab\there"),
  ])
  func strings(text: String, expected: String) throws {
    #expect(try value(text).string == expected)
  }

  @Test(arguments: ["\"\\x41\"", "\"\\e\"", "\"\\uD800\"", "\"\\U00110000\"", "\"\\u12\"", "\"a\nb\"", "'a\nb'", "\"open", "'''open",
    "\"\"\"\"\"\"\"\"\"", "\"a\u{1}b\"", "'a\u{7F}b'", "\"\"\"a\rb\"\"\""])
  func badStringsAreRefused(text: String) {
    #expect(failure("x = \(text)\n") != nil)
  }

  @Test(arguments: ["01", "1__2", "_1", "1_", "0x", "+0x1", "0xG", "0o8", "0b2", "9223372036854775808", "-9223372036854775809",
    "0x1_0000_0000_0000_0000", "1.", ".5", "1.e5", "1e", "1e_5", "01.5", "nan1", "infinity", "1.2.3", "true1"])
  func badNumbersAreRefused(text: String) {
    #expect(failure("x = \(text)\n") != nil)
  }

  // MARK: tables and the rules on defining them

  @Test func tablesArraysOfTablesAndDottedKeys() throws {
    let doc = try parse("""
      top = 1
      [a.b]
      c = 2
      [a]
      d.e = 3
      [[p]]
      n = 1
      [[p]]
      n = 2
      [p.sub]
      q = 'x'
      "quoted key" = 4
      """)
    #expect(doc.keys == ["top", "a", "p"])
    #expect(doc["a"]?.table?["b"]?.table?["c"]?.integer == 2)
    #expect(doc["a"]?.table?["d"]?.table?["e"]?.integer == 3)
    let peers = try #require(doc["p"]?.array)
    #expect(peers.count == 2)
    #expect(peers[1].table?["sub"]?.table?["q"]?.string == "x")
    #expect(peers[1].table?["sub"]?.table?["quoted key"]?.integer == 4)
  }

  @Test(arguments: [
    ("a = 1\na = 2\n", 2),  // a key twice
    ("[a]\n[a]\n", 2),  // a table twice
    ("[a]\nb = 1\n[a.b]\n", 3),  // a value is no table
    ("[a.b]\n[a]\n[a]\n", 3),
    ("a.b = 1\n[a]\n", 2),  // defined by dotted keys, then by a header
    ("[a]\nb.c = 1\n[a.b]\n", 3),
    ("[a.b.c]\n[a]\nb.d = 1\n[a.b]\n", 4),
    ("[a]\n[a.b]\n[a]\nb.c = 1\n", 3),
    ("[a.b]\nx = 1\n[a]\nb.y = 2\n", 4),  // dotted keys cannot add to a header's table
    ("a = {b = 1}\na.c = 2\n", 2),  // inline tables are complete as written
    ("a = {b = 1}\n[a.c]\n", 2),
    ("a = {b = {c = 1}, b.d = 2}\n", 1),
    ("a = [1]\n[[a]]\n", 2),  // a static array is no array of tables
    ("[[a]]\n[a]\n", 2),
    ("[a]\n[[a]]\n", 2),
    ("a = {}\n[a.b]\n", 2),
    ("a = [{b = 1}]\n[a.c]\n", 2),
  ])
  func redefinitionsAreRefusedOnTheirLine(text: String, line: Int) {
    #expect(failure(text)?.line == line, "\(text)")
  }

  @Test(arguments: [
    "[a.b.c]\n[a]\nb.d = 1\n",  // a dotted key may define a table a header only implied
    "[a]\nb.c.d = 1\n[a.b.x]\n",  // and a header may go through it
    "a.b = 1\n[a.c]\n",
    "[[a]]\n[a.b]\n[[a]]\n[a.b]\n",  // each table of an array has its own subtables
    "a.b.c = 1\na.b.d = 2\na.e = 3\n",
  ])
  func definitionsTOMLAllows(text: String) {
    #expect(failure(text) == nil, "\(text)")
  }

  // MARK: positions

  @Test func keysValuesAndTablesCarryTheirPositions() throws {
    let doc = try parse("# comment\n\n[vault]\n  address = \"x\"\n[[peer]]\nunit   =   'u'\nlist = [\n  1,\n  2,\n]\n")
    let vault = try #require(doc["vault"]?.table)
    #expect(vault.position == TOMLPosition(line: 3, column: 1))
    #expect(vault.entry("address")?.keyPosition == TOMLPosition(line: 4, column: 3))
    #expect(vault["address"]?.position == TOMLPosition(line: 4, column: 13))
    let peer = try #require(doc["peer"]?.array?.first?.table)
    #expect(peer.position.line == 5)
    #expect(peer.entry("unit")?.keyPosition == TOMLPosition(line: 6, column: 1))
    #expect(peer["unit"]?.position == TOMLPosition(line: 6, column: 12))
    #expect(peer["list"]?.array?[1].position == TOMLPosition(line: 9, column: 3))
  }

  @Test func columnsCountCharactersNotBytes() {
    let error = failure("s = \"é✓\" x\n")
    #expect(error?.line == 1)
    #expect(error?.column == 10)
  }

  @Test(arguments: [
    ("x = \n", 1, 5, "expected a value"),
    ("a = 1\nb = \"open\n", 2, 5, "not closed"),
    ("a = 1\n[b\n", 2, 3, "expected ']'"),
    ("a = 1 2\n", 1, 7, "expected the end of the line"),
    ("x = [1 2]\n", 1, 8, "expected ',' or ']'"),
    ("x = {a = 1,}\n", 1, 12, "expected a key"),
    ("x = {a = 1\n}\n", 1, 11, "on one line"),
    ("= 1\n", 1, 1, "expected a key"),
    ("a b = 1\n", 1, 3, "expected '='"),
  ])
  func errorsSayWhereAndWhat(text: String, line: Int, column: Int, phrase: String) throws {
    let error = try #require(failure(text))
    #expect(error.line == line)
    #expect(error.column == column)
    #expect(error.message.contains(phrase), "\(error.message)")
  }

  // MARK: the file as a whole

  @Test func byteOrderMarkAndCRLF() throws {
    let doc = try parse("\u{FEFF}[t]\r\na = 1 # c\r\ns = \"\"\"\r\nx\r\ny\"\"\"\r\n")
    #expect(doc["t"]?.table?["a"]?.integer == 1)
    #expect(doc["t"]?.table?["s"]?.string == "x\r\ny")
  }

  @Test(arguments: ["a = 1\r\n\rb = 2\n", "a = 1\u{0}\n", "# bell \u{7}\n", "a = \"x\" # del \u{7F}\n", "a = 1 \u{B}\n", "a\u{C} = 1\n"])
  func controlCharactersAreRefused(text: String) {
    #expect(failure(text) != nil)
  }

  @Test func invalidUTF8IsRefusedWhereItIs() throws {
    do throws(TOMLError) {
      _ = try TOMLParser.parse(Array("a = 1\nb = \"".utf8) + [0xC3, 0x28] + Array("\"\n".utf8))
      Issue.record("accepted invalid UTF-8")
    } catch {
      #expect(error.line == 2)
      #expect(error.column == 6)
    }
    for bad: [UInt8] in [[0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xE2, 0x82], [0xFF]] {
      #expect(throws: TOMLError.self) { try TOMLParser.parse(Array("s = '".utf8) + bad + Array("'".utf8)) }
    }
  }

  static let deepDocuments: [String] = {
    let path: (Int) -> String = { count in Array(repeating: "a", count: count).joined(separator: ".") }
    var documents: [String] = []
    documents.append(String(repeating: "[", count: 10_000))
    documents.append("a = " + String(repeating: "[", count: 100_000))
    documents.append("a = " + String(repeating: "{b = ", count: 100_000))
    documents.append("[" + path(5_000) + "]")
    documents.append(path(5_000) + " = 1")
    documents.append((1...200).map { "[" + path($0) + "]\n" }.joined())
    documents.append((1...200).map { "[[" + path($0) + "]]\n" }.joined())
    return documents
  }()

  @Test(arguments: deepDocuments)
  func deepNestingIsRefusedNotOverflowingTheStack(text: String) {
    #expect(failure(text) != nil)
  }

  /// Positions are found incrementally: a document on one long line is not quadratic.
  @Test func aLongLineIsFine() throws {
    let items = Array(repeating: "{a = 1}", count: 100_000).joined(separator: ", ")
    let doc = try parse("x = [\(items)]\n")
    #expect(doc["x"]?.array?.count == 100_000)
    #expect(doc["x"]?.array?.last?.table?.entry("a")?.keyPosition.column == 6 + 9 * 99_999 + 1)
  }

  @Test func nestingUpToTheLimitIsFine() throws {
    let depth = TOMLDocumentBuilder.maxDepth
    // `a` is one level below the root, each array one more.
    let nested = String(repeating: "[", count: depth - 1) + String(repeating: "]", count: depth - 1)
    #expect(try parse("a = [\(nested)]\n")["a"]?.array != nil)
    #expect(failure("a = [[\(nested)]]\n")?.message.contains("nested more than") == true)
  }

  // MARK: inputs toml++ aborted the process on (found by fuzzing), now located syntax errors

  @Test(arguments: [
    ("[?t]\n", 1, 2), ("[\u{15}t]\naddress = \"x\"\n", 1, 2), ("a = 1\n\n[[ ?x]]\n", 3, 4), ("[ \t%]", 1, 4), ("  [{}]\n", 1, 4),
    ("[vault]\naddress = \"https://v:8200\"\n[.x]\n", 3, 2), ("\u{FEFF}[\\\\x]\n", 1, 3),
    ("x = [}]\n", 1, 6), ("x = [1, }]\n", 1, 9), ("x = [\n  # c\n  }\n]\n", 3, 3), ("x = [[[}]]]\n", 1, 8), ("x = [{a = [}]}]\n", 1, 12),
    ("[]\n", 1, 2), ("[ [x]]\n", 1, 3), ("[", 1, 2), ("[[]]", 1, 3),
  ])
  func whatCrashedTheOldParserIsALocatedError(text: String, line: Int, column: Int) {
    let error = failure(text)
    #expect(error?.line == line, "\(text)")
    #expect(error?.column == column, "\(text)")
  }

  @Test func controlCharactersAreNamedByTheirCode() {
    #expect(failure("[\u{15}]")?.message.contains("control character 0x15") == true)
  }

  /// Valid TOML with `[` where it is not a header (the old pre-scan's cases).
  @Test(arguments: [
    "[vault]\naddress = \"https://127.0.0.1:8200\"\n",
    "[[peer]]\naddress = \"https://b:8200\"\n[[ peer ]]\naddress = \"https://c:8200\"\n",
    "[ \"quoted key\" ]\n['literal']\n[a.\"b\".c]\n[-_9]\n",
    "x = [\n  [1, 2],\n  [\"[?\", '[?'],\n]\n[t]\n",
    "s = \"\"\"\n[?not a header\n\\\"\"\"\n\"\"\"\n[t]\n",
    "s = '''\n[?still a string\n''''\n[t]\n",
    "# [?a comment\n[t] # [?\n",
    "k = \"a \\\" [? b\"\n[t]\n",
    "k = { a = \"[?\", b = [1, [2]] }\n[t]\n",
    "x = [ ]\ny = [1, 2, ]\nz = [{ a = 1 }, { b = [] }]\nw = { }\n",
    "x = [\n  1, # one\n  { a = \"}\" },\n]\n",
    "a = 1\r\n[t]\r\n",
    "\u{FEFF}[vault]\n",
  ])
  func validTOMLPasses(text: String) {
    #expect(failure(text) == nil, "\(text)")
  }

  /// The writer's output reads back as the same tree (the fuzz target's property).
  @Test func writtenDocumentsReadBack() throws {
    let doc = try parse("""
      a = "x\\u0001\\"y"
      "k e y" = [1, 2.5, -inf, nan, true, 1979-05-27T07:32:00Z, 07:32:00, 2000-01-01, 2000-01-01T00:00:00]
      [t.u]
      v = { w = [[1], {x = 'y'}] }
      [[arr]]
      [[arr]]
      z = 1e300
      """)
    let again = try TOMLParser.parse(TOMLWriter.write(doc))
    #expect(again.sameValue(as: doc))
  }
}
