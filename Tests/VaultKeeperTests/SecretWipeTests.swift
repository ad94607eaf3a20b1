// SPDX-License-Identifier: Apache-2.0
import Testing
@testable import VaultKeeper

/// Wiping reaches the storage that held the secret, not a copy-on-write copy of it (issue #10,
/// item 6): a login or renew answer carries a client token, and the array the transport
/// returned shares its storage with every copy the code made on the way.
@Suite struct SecretWipeTests {
  static let token = "hvs.CAESIJ2wipetestwipetestwipetestwipetest"
  static func login() -> [UInt8] {
    Array(
      """
      {"request_id":"1","lease_id":"","renewable":false,"lease_duration":0,"data":null,\
      "auth":{"client_token":"\(token)","accessor":"a","policies":["default"],"lease_duration":3600,"renewable":true}}
      """.utf8)
  }

  static func address(_ bytes: [UInt8]) -> UInt {
    bytes.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) }
  }

  @Test func theLoginAnswerIsZeroedInTheTransportsOwnStorage() throws {
    let response = HTTPResponse(status: 200, body: Self.login(), newConnection: false, duration: .zero)
    let storage = Self.address(response.body)
    let count = response.body.count
    let parsed = try VaultClient.token(from: response)
    #expect(parsed.token.constantTimeEquals(SecretBytes(utf8: Self.token)))
    #expect(parsed.ttl == .seconds(3600) && parsed.renewable)
    // The same buffer the transport handed over (no copy was wiped instead), and all zero.
    #expect(Self.address(response.body) == storage)
    #expect(response.body.count == count)
    #expect(response.body.allSatisfy { $0 == 0 }, "the client token is still in the response body")
  }

  @Test func aRefusedLoginIsZeroedToo() {
    let body = Array(#"{"errors":["invalid role or secret ID"]}"#.utf8)
    let response = HTTPResponse(status: 400, body: body, newConnection: false, duration: .zero)
    #expect(throws: VaultError.self) { try VaultClient.token(from: response) }
    #expect(response.body.allSatisfy { $0 == 0 })
  }

  @Test func wipeStorageZeroesStorageSharedWithOtherCopies() {
    let secret = Self.login()
    let copy = secret  // shares the storage: a copy-on-write copy would leave this intact
    let storage = Self.address(copy)
    SecretBytes.wipeStorage(of: secret)
    #expect(Self.address(copy) == storage && copy.count == Self.login().count)
    #expect(copy.allSatisfy { $0 == 0 } && secret.allSatisfy { $0 == 0 })
  }

  /// The plain wipe keeps its copy-on-write meaning: callers that hand out a copy (and wipe
  /// their own) must not see the copy they handed out zeroed.
  @Test func wipeLeavesOtherCopiesAlone() {
    var secret = Self.login()
    let handedOut = secret
    SecretBytes.wipe(&secret)
    #expect(secret.isEmpty && handedOut == Self.login())
  }
}
