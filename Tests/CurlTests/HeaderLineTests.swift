// SPDX-License-Identifier: Apache-2.0
import Testing

@testable import Curl

/// The header callback's byte-level reading of one header line, as libcurl passes it (CR LF
/// included).
@Suite struct HeaderLineTests {
  private func read(_ text: String) -> HeaderLine {
    Array(text.utf8).withUnsafeBytes { HeaderLine($0) }
  }

  @Test func statusLinesStartANewResponse() {
    #expect(read("HTTP/1.1 100 Continue\r\n") == .status)
    #expect(read("HTTP/2 503 \r\n") == .status)
  }

  @Test func fieldsKeepTheNameAsSentAndTrimTheValue() {
    #expect(read("Content-Type: application/json\r\n") == .field(name: "Content-Type", value: "application/json"))
    #expect(read("etag:\t \"abc\"  \r\n") == .field(name: "etag", value: "\"abc\""))
    #expect(read("Location: https://vault.test:8200/v1/x?a=b:c\r\n") == .field(name: "Location", value: "https://vault.test:8200/v1/x?a=b:c"))
  }

  @Test func emptyValuesAndLinesWithoutAColon() {
    #expect(read("X-Empty:\r\n") == .field(name: "X-Empty", value: ""))
    #expect(read("X-Spaces:   \r\n") == .field(name: "X-Spaces", value: ""))
    #expect(read("\r\n") == .other)
    #expect(read("") == .other)
    #expect(read("no colon here\r\n") == .other)
  }

  @Test func nonASCIIBytesAreKeptAndInvalidUTF8IsRepaired() {
    #expect(read("X-Meta: caf\u{e9}\r\n") == .field(name: "X-Meta", value: "caf\u{e9}"))
    let invalid: [UInt8] = Array("X-Bad: a".utf8) + [0xFF] + Array("b\r\n".utf8)
    #expect(invalid.withUnsafeBytes { HeaderLine($0) } == .field(name: "X-Bad", value: "a\u{FFFD}b"))
  }
}
