// SPDX-License-Identifier: Apache-2.0
/// A Vault token held in locked memory, with what Vault said about its lifetime.
public struct VaultToken: Sendable {
  public var token: SecretBytes
  /// Time to live when issued or last renewed (zero: never expires).
  public var ttl: Duration
  public var renewable: Bool

  public init(token: SecretBytes, ttl: Duration, renewable: Bool) {
    self.token = token
    self.ttl = ttl
    self.renewable = renewable
  }
}

/// How a snapshot request ended at the HTTP level.
public enum SnapshotResponse: Sendable {
  /// 200: the body was streamed into the sink.
  case streamed(HTTPResponse)
  /// 307 from a standby: the active node's URL for the same request.
  case redirect(location: String)
}

/// How a restore ended at the HTTP level.
public enum RestoreResponse: Sendable, Equatable {
  /// 204: Vault took the archive and installs it now.
  case accepted
  /// 307 from a standby: the active node's URL.
  case redirect(location: String)
}

extension VaultClient {
  /// `POST /v1/auth/<mount>/login` with a role ID and secret ID. The request body and the token
  /// in the answer never become Swift strings.
  public func loginAppRole(mount: String, roleID: SecretBytes, secretID: SecretBytes) async throws(VaultError) -> VaultToken {
    guard Self.isPlainCredential(roleID), Self.isPlainCredential(secretID) else {
      throw .decoding("the role ID or secret ID contains characters a Vault AppRole ID never has")
    }
    var raw = Array("{\"role_id\":\"".utf8)
    roleID.withUnsafeBytes { raw.append(contentsOf: $0) }
    raw.append(contentsOf: Array("\",\"secret_id\":\"".utf8))
    secretID.withUnsafeBytes { raw.append(contentsOf: $0) }
    raw.append(contentsOf: Array("\"}".utf8))
    let body = SecretBytes(raw)
    SecretBytes.wipe(&raw)
    let response: HTTPResponse
    do {
      response = try await transport.send(
        HTTPRequest(method: .post, path: "/v1/auth/\(mount)/login", headers: Self.standardHeaders + [("Content-Type", "application/json")], body: body),
        timeout: timeout)
    } catch {
      throw .transport(error)
    }
    return try Self.token(from: response)
  }

  /// `POST /v1/auth/token/renew-self`.
  public func renewSelf(_ token: SecretBytes) async throws(VaultError) -> VaultToken {
    let response: HTTPResponse
    do {
      response = try await transport.send(
        HTTPRequest(
          method: .post, path: "/v1/auth/token/renew-self", headers: Self.standardHeaders + [("Content-Type", "application/json")],
          body: SecretBytes(utf8: "{}"), secretHeaders: [("X-Vault-Token", token)]),
        timeout: timeout)
    } catch {
      throw .transport(error)
    }
    return try Self.token(from: response)
  }

  /// `GET /v1/sys/storage/raft/snapshot`, streamed into `body`. A standby's 307 is returned,
  /// not followed: the caller re-sends (with the token) to the active node.
  public func downloadSnapshot(token: SecretBytes, limits: DownloadLimits, into body: StreamingBody) async throws(VaultError) -> SnapshotResponse {
    let response: HTTPResponse
    do {
      response = try await transport.download(
        HTTPRequest(method: .get, path: "/v1/sys/storage/raft/snapshot", headers: Self.standardHeaders, secretHeaders: [("X-Vault-Token", token)]),
        limits: limits, into: body)
    } catch {
      throw .transport(error)
    }
    switch response.status {
    case 200: return .streamed(response)
    case 307, 308: return .redirect(location: try Self.redirectLocation(response))
    default:
      throw .http(status: response.status, errors: Self.errors(in: response.body))
    }
  }

  /// `PUT /v1/sys/storage/raft/snapshot` (or `snapshot-force`) with the archive streamed from
  /// `file`. Vault answers 204 once it has the archive (it installs it afterwards); a standby's
  /// 307 is returned for the caller to re-send, body and token included.
  public func restoreSnapshot(token: SecretBytes, file: FileSlice, force: Bool, limits: DownloadLimits) async throws(VaultError) -> RestoreResponse {
    let path = force ? "/v1/sys/storage/raft/snapshot-force" : "/v1/sys/storage/raft/snapshot"
    let response: HTTPResponse
    do {
      response = try await transport.upload(
        HTTPRequest(
          method: .put, path: path, headers: Self.standardHeaders + [("Content-Type", "application/octet-stream")],
          secretHeaders: [("X-Vault-Token", token)]),
        file: file, limits: limits)
    } catch {
      throw .transport(error)
    }
    switch response.status {
    case 200, 204: return .accepted
    case 307, 308: return .redirect(location: try Self.redirectLocation(response))
    default:
      throw .http(status: response.status, errors: Self.errors(in: response.body))
    }
  }

  /// A standby's 307 points at the active node (snapshot paths are never forwarded by Vault).
  static func redirectLocation(_ response: HTTPResponse) throws(VaultError) -> String {
    guard let location = response.header("Location"), !location.isEmpty else {
      throw .http(status: response.status, errors: ["redirect without a Location header"])
    }
    return location
  }

  /// AppRole IDs are UUIDs or similar: letters, digits, `-`, `_`, `.`. Anything else could break
  /// out of the JSON string we build by hand.
  static func isPlainCredential(_ value: SecretBytes) -> Bool {
    value.count > 0 && value.count <= 512
      && value.withUnsafeBytes { bytes in
        bytes.allSatisfy { b in
          (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(b) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(b)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b) || b == UInt8(ascii: "-") || b == UInt8(ascii: "_") || b == UInt8(ascii: ".")
        }
      }
  }

  /// Reads `auth.client_token`, `auth.lease_duration` and `auth.renewable` from a login or renew
  /// answer without copying the token into a String (only into locked memory). The answer's
  /// body is then zeroed in its own storage, the transport's buffer that `response` and every
  /// copy of it share, whatever the outcome (`SecretBytes.wipeStorage`: a plain `wipe` of a
  /// copy would zero a copy-on-write duplicate and leave the original).
  static func token(from response: HTTPResponse) throws(VaultError) -> VaultToken {
    let body = response.body
    defer { SecretBytes.wipeStorage(of: body) }
    guard response.status == 200 else { throw .http(status: response.status, errors: errors(in: body)) }
    guard let root = try? SecretJSON.parse(body), let auth = SecretJSON.member("auth", of: root),
      case .string(let range, false)? = SecretJSON.member("client_token", of: auth), !range.isEmpty
    else { throw .decoding("the login answer has no auth.client_token") }
    let ttl = SecretJSON.integer(SecretJSON.member("lease_duration", of: auth), in: body) ?? 0
    let renewable: Bool
    if case .bool(let flag)? = SecretJSON.member("renewable", of: auth) { renewable = flag } else { renewable = false }
    return VaultToken(token: SecretBytes(body[range]), ttl: .seconds(max(ttl, 0)), renewable: renewable)
  }
}
