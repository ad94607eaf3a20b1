// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What `sys/init` of the throwaway server returned: its one share and its root token, in
/// locked memory. Both are worthless once the snapshot is restored over them.
struct DrillInit: Sendable {
  var share: SecretBytes
  var rootToken: SecretBytes
}

/// `GET /v1/sys/leader`: unauthenticated, and it reports the Raft applied index.
struct LeaderStatus: Decodable, Sendable {
  var isSelf: Bool?
  var raftAppliedIndex: UInt64?

  enum CodingKeys: String, CodingKey {
    case isSelf = "is_self"
    case raftAppliedIndex = "raft_applied_index"
  }
}

extension VaultClient {
  /// `PUT /v1/sys/init` with one share and threshold one. The answer's keys and token are read
  /// into locked memory and the body wiped, never made Swift strings.
  func initialiseForDrill() async throws(VaultError) -> DrillInit {
    let response: HTTPResponse
    do {
      response = try await transport.send(
        HTTPRequest(
          method: .put, path: "/v1/sys/init", headers: Self.standardHeaders + [("Content-Type", "application/json")],
          body: SecretBytes(utf8: "{\"secret_shares\":1,\"secret_threshold\":1}")),
        timeout: timeout)
    } catch {
      throw .transport(error)
    }
    let body = response.body
    defer { SecretBytes.wipeStorage(of: body) }
    guard response.status == 200 else { throw .http(status: response.status, errors: Self.errors(in: body)) }
    guard let root = try? SecretJSON.parse(body),
      case .array(let keys)? = SecretJSON.member("keys_base64", of: root),
      case .string(let keyRange, false)? = keys.first, !keyRange.isEmpty,
      case .string(let tokenRange, false)? = SecretJSON.member("root_token", of: root), !tokenRange.isEmpty
    else { throw .decoding("the sys/init answer has no keys_base64 and root_token") }
    return DrillInit(share: SecretBytes(body[keyRange]), rootToken: SecretBytes(body[tokenRange]))
  }

  /// `GET /v1/sys/leader`.
  func leader() async throws(VaultError) -> LeaderStatus {
    let response: HTTPResponse
    do {
      response = try await transport.send(HTTPRequest(method: .get, path: "/v1/sys/leader", headers: Self.standardHeaders), timeout: timeout)
    } catch {
      throw .transport(error)
    }
    guard response.status == 200 else { throw .http(status: response.status, errors: Self.errors(in: response.body)) }
    guard let leader = try? JSONDecoder().decode(LeaderStatus.self, from: Data(response.body)) else {
      throw .decoding("the sys/leader answer is not JSON with raft_applied_index")
    }
    return leader
  }

  /// The HTTP status of `GET /v1/sys/health` (200: active, unsealed), or nil when unreachable.
  func healthStatus() async -> Int? {
    try? await transport.send(HTTPRequest(method: .get, path: "/v1/sys/health", headers: Self.standardHeaders), timeout: timeout).status
  }
}
