// SPDX-License-Identifier: Apache-2.0
import Testing

@testable import Systemd

@Suite struct JournalFieldNameTests {
  @Test(arguments: [
    ("duty.name", "DUTY_NAME"),
    ("vault.addr", "VAULT_ADDR"),
    ("message_id", "MESSAGE_ID"),
    ("http-status", "HTTP_STATUS"),
    ("retry after", "RETRY_AFTER"),
    ("ALREADY_OK", "ALREADY_OK"),
    ("unit2", "UNIT2"),
    ("naïve", "NAVE"),
    ("a/b:c", "ABC"),
    ("error.message", "ERROR_MESSAGE"),
    (String(repeating: "k", count: 64), String(repeating: "K", count: 64)),
  ])
  func convertsValidKeys(key: String, expected: String) {
    #expect(journalFieldName(key) == expected)
  }

  @Test(arguments: [
    "",  // empty
    "_pid",  // trusted-field namespace
    "_SYSTEMD_UNIT",
    ".hidden",  // becomes _HIDDEN
    "2fa",  // starts with a digit
    "!!!",  // nothing left
    "é",
    String(repeating: "k", count: 65),  // too long
  ])
  func rejectsInvalidKeys(key: String) {
    #expect(journalFieldName(key) == nil)
  }
}
