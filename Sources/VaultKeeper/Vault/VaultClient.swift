// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What went wrong talking to Vault, beyond the transport.
public enum VaultError: Error, Sendable, Equatable, CustomStringConvertible {
  case transport(TransportError)
  /// An HTTP error status with Vault's `errors` messages.
  case http(status: Int, errors: [String])
  /// A 2xx answer we could not decode.
  case decoding(String)

  public var description: String {
    switch self {
    case .transport(let error): return error.description
    case .http(let status, let errors): return errors.isEmpty ? "HTTP \(status)" : "HTTP \(status): \(errors.joined(separator: "; "))"
    case .decoding(let what): return what
    }
  }
}

/// The result of submitting one share.
public enum UnsealAnswer: Sendable, Equatable {
  case status(SealStatus)
  /// The shares combined into a key that does not decrypt Vault's root key (400 on 1.13+,
  /// 500 on 1.3–1.12, "message authentication failed" / "invalid key"). Never transient.
  case wrongKey(message: String)
}

/// Typed calls to one Vault node's system endpoints over an `HTTPTransport`.
public struct VaultClient: Sendable {
  public let transport: any HTTPTransport
  public let timeout: Duration

  public init(transport: any HTTPTransport, timeout: Duration) {
    self.transport = transport
    self.timeout = timeout
  }

  static let standardHeaders: [(name: String, value: String)] = [("X-Vault-Request", "true")]

  /// One health look; never throws: failures are states too.
  public func health() async -> HealthObservation {
    let started = ContinuousClock.now
    do {
      let response = try await transport.send(
        HTTPRequest(method: .get, path: HealthClassifier.query, headers: Self.standardHeaders), timeout: timeout)
      return HealthClassifier.classify(
        status: response.status, body: response.body, latency: response.duration, newConnection: response.newConnection)
    } catch {
      return HealthClassifier.unreachable(error, latency: started.duration(to: .now))
    }
  }

  public func sealStatus() async throws(VaultError) -> SealStatus {
    let response = try await exchange(HTTPRequest(method: .get, path: "/v1/sys/seal-status", headers: Self.standardHeaders))
    return try decodeSealStatus(response)
  }

  /// Submits one share. The body is assembled directly in locked memory.
  public func submit(share: SecretBytes) async throws(VaultError) -> UnsealAnswer {
    let prefix = Array("{\"key\":\"".utf8)
    let suffix = Array("\"}".utf8)
    var raw = [UInt8]()
    raw.reserveCapacity(prefix.count + share.count + suffix.count)
    raw.append(contentsOf: prefix)
    share.withUnsafeBytes { raw.append(contentsOf: $0) }
    raw.append(contentsOf: suffix)
    let body = SecretBytes(raw)
    SecretBytes.wipe(&raw)
    let request = HTTPRequest(
      method: .put, path: "/v1/sys/unseal", headers: Self.standardHeaders + [("Content-Type", "application/json")], body: body)
    let response: HTTPResponse
    do {
      response = try await transport.send(request, timeout: timeout)
    } catch {
      throw .transport(error)
    }
    if response.status == 200 { return .status(try decodeSealStatus(response)) }
    let errors = Self.errors(in: response.body)
    if (response.status == 400 || response.status == 500), errors.contains(where: Self.isWrongKeyMessage) {
      return .wrongKey(message: errors.joined(separator: "; "))
    }
    throw .http(status: response.status, errors: errors)
  }

  /// Clears unseal progress (`{"reset": true}`).
  public func resetUnseal() async throws(VaultError) -> SealStatus {
    let request = HTTPRequest(
      method: .put, path: "/v1/sys/unseal", headers: Self.standardHeaders + [("Content-Type", "application/json")],
      body: SecretBytes(utf8: "{\"reset\":true}"))
    return try decodeSealStatus(try await exchange(request))
  }

  static func isWrongKeyMessage(_ message: String) -> Bool {
    let lower = message.lowercased()
    // "crypto/aes: invalid key size 0": an empty key, which no set of shares combines to. OpenBao
    // answers so when shares arrive while a Raft node is still completing its join (it unseals
    // itself afterwards): not a verdict on the shares.
    if lower.contains("invalid key size 0") { return false }
    return lower.contains("message authentication failed") || lower.contains("invalid key")
  }

  private func exchange(_ request: HTTPRequest) async throws(VaultError) -> HTTPResponse {
    let response: HTTPResponse
    do {
      response = try await transport.send(request, timeout: timeout)
    } catch {
      throw .transport(error)
    }
    guard (200..<300).contains(response.status) else {
      throw .http(status: response.status, errors: Self.errors(in: response.body))
    }
    return response
  }

  private func decodeSealStatus(_ response: HTTPResponse) throws(VaultError) -> SealStatus {
    do {
      return try JSONDecoder().decode(SealStatus.self, from: Data(response.body))
    } catch {
      throw .decoding("HTTP \(response.status) with a body that is not Vault seal-status JSON")
    }
  }

  static func errors(in body: [UInt8]) -> [String] {
    ((try? JSONDecoder().decode(ErrorBody.self, from: Data(body)))?.errors ?? []).map { String($0.prefix(500)) }
  }
}
