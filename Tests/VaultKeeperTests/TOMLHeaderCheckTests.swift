// SPDX-License-Identifier: Apache-2.0
import Testing
@testable import VaultKeeper

/// toml++ aborts the process on a table header that does not start with a key (found by
/// fuzzing): such a file must be a configuration error naming the line, and valid TOML must
/// never be refused by the check that catches it.
@Suite struct TOMLHeaderCheckTests {
  func failure(_ text: String) -> TOMLHeaderCheck.Failure? {
    do throws(TOMLHeaderCheck.Failure) {
      try TOMLHeaderCheck.check(text)
      return nil
    } catch {
      return error
    }
  }

  /// The fuzzer's reproducers, and their relatives.
  @Test(arguments: [
    ("[?t]\n", 1), ("[\u{15}t]\naddress = \"x\"\n", 1), ("a = 1\n\n[[ ?x]]\n", 3), ("[ \t%]", 1), ("  [{}]\n", 1),
    ("[vault]\naddress = \"https://v:8200\"\n[.x]\n", 3),
    // After a byte order mark, which toml++ skips (found by fuzzing).
    ("\u{FEFF}[\\\\x]\n", 1),
  ])
  func headersThatWouldCrashTheParserAreErrors(text: String, line: Int) {
    #expect(failure(text)?.line == line)
    #expect(failure(text)?.message.hasPrefix("a table header must start with a key") == true)
  }

  /// toml++ also asserts on an array element that starts with `}` (found by fuzzing).
  @Test(arguments: [("x = [}]\n", 1), ("x = [1, }]\n", 1), ("x = [\n  # c\n  }\n]\n", 3), ("x = [[[}]]]\n", 1), ("x = [{a = [}]}]\n", 1)])
  func arrayElementsThatWouldCrashTheParserAreErrors(text: String, line: Int) {
    #expect(failure(text)?.line == line)
    #expect(failure(text)?.message == "an array element must be a value, not '}'")
  }

  @Test func controlCharactersAreNamedByTheirCode() {
    #expect(failure("[\u{15}]")?.message.hasSuffix("not byte 0x15") == true)
  }

  /// Valid TOML, including `[` where it is not a header: inside strings of all four kinds,
  /// comments and multi-line arrays.
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
    #expect(failure(text) == nil)
  }

  /// Errors toml++ reports itself are left to it (it names them better).
  @Test(arguments: ["[]\n", "[ [x]]\n", "[", "[[]]"])
  func errorsTheParserReportsItselfPass(text: String) {
    #expect(failure(text) == nil)
  }

  @Test func theLoaderNamesTheFileAndLine() {
    do throws(ConfigError) {
      _ = try ConfigLoader().parse("[vault]\naddress = \"https://127.0.0.1:8200\"\n[?t]\n", path: "/etc/vaultkeeper/vaultkeeper.toml")
      Issue.record("accepted a header toml++ aborts on")
    } catch {
      #expect(error.file == "/etc/vaultkeeper/vaultkeeper.toml")
      #expect(error.line == 3)
      #expect(error.message.contains("TOML syntax error: a table header must start with a key"))
    }
  }
}
