// SPDX-License-Identifier: Apache-2.0
import Testing
@testable import VaultKeeper

/// `config check` prints the effective configuration as TOML an operator can paste back: every
/// string, control characters included, must read back as itself (found by fuzzing: a `\r` in
/// an address made the output unreadable).
@Suite struct EffectiveConfigQuoteTests {
  @Test(arguments: ["plain", "quote \" and backslash \\", "line\nbreak", "carriage\rreturn", "tab\there", "soh\u{1}bell\u{7}del\u{7F}esc\u{1B}",
    "unicode ✓ \u{1F512}"])
  func everyStringReadsBackAsItself(text: String) throws {
    let table = try TOMLParser.parse("x = \(EffectiveConfig.quote(text))\n")
    #expect(table["x"]?.string == text)
  }

  @Test func controlCharactersBecomeUnicodeEscapes() {
    #expect(EffectiveConfig.quote("a\u{1}b") == "\"a\\u0001b\"")
    #expect(EffectiveConfig.quote("\r") == "\"\\r\"")
  }
}
