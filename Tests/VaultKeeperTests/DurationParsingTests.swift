// SPDX-License-Identifier: Apache-2.0
import Testing
@testable import VaultKeeper

@Suite struct DurationParsingTests {
  @Test(arguments: [
    ("250ms", 250), ("5s", 5000), ("1h", 3_600_000), ("1m30s", 90_000), ("1.5s", 1500), ("2d", 172_800_000), (" 10s ", 10_000), ("0s", 0),
  ])
  func parsesDurations(text: String, milliseconds: Int64) {
    #expect(DurationParsing.parse(text)?.milliseconds == milliseconds)
  }

  @Test(arguments: ["", "5", "s", "5x", "-5s", "5 s", "1h-", "ms", "1e3s", "99999999d"])
  func rejectsGarbage(text: String) {
    #expect(DurationParsing.parse(text) == nil)
  }

  @Test func formatsWithLargestExactUnit() {
    #expect(DurationParsing.format(.milliseconds(250)) == "250ms")
    #expect(DurationParsing.format(.seconds(5)) == "5s")
    #expect(DurationParsing.format(.seconds(120)) == "2m")
    #expect(DurationParsing.format(.seconds(7200)) == "2h")
    #expect(DurationParsing.format(.milliseconds(1500)) == "1500ms")
    #expect(DurationParsing.format(.zero) == "0s")
  }

  @Test func humanizes() {
    #expect(DurationParsing.humanize(.seconds(42)) == "42s")
    #expect(DurationParsing.humanize(.seconds(180)) == "3m")
    #expect(DurationParsing.humanize(.seconds(3900)) == "1h5m")
    #expect(DurationParsing.humanize(.seconds(90000)) == "1d1h")
  }
}
