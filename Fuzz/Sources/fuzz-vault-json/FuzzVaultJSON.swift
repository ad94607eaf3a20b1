// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import FuzzSupport
@testable import VaultKeeper

/// Vault's answers, as a Vault node (or whatever answers on its port) sends them: the payload
/// is the HTTP body, the selector picks the status code and the call. Each call goes through
/// `VaultClient` over a transport that returns that answer, so the decoding is exactly the
/// production path: `HealthClassifier` (sys/health), seal-status and unseal answers
/// (`JSONDecoder` over `SealStatus`, Vault's `errors` envelope), login/renew answers
/// (`SecretJSON`, token kept out of Strings), and a standby's redirect `Location`
/// (`StandbyRedirect`, with the body as the header's value).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzVaultJSON(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
  let input = FuzzInput(data, size)
  let statuses = [200, 429, 472, 473, 474, 501, 503, 530, 204, 307, 400, 403, 500, 502]
  let status = statuses[Int(input.selector >> 3) % statuses.count]
  let body = input.payload
  switch input.selector % 8 {
  case 0:
    let observation = HealthClassifier.classify(status: status, body: body, latency: .milliseconds(1), newConnection: false)
    // A state is only ever what the status code says, never what the body alone claims.
    if observation.state != .protocolError, observation.state.healthCode != status {
      violated("health state \(observation.state.name) from HTTP \(status)")
    }
    // The hand-written one-pass reader reads every body exactly as JSONDecoder does.
    let fast = HealthBodyReader.read(Array(body))
    let reference = try? JSONDecoder().decode(HealthBody.self, from: Data(body))
    if fast != reference {
      violated("HealthBodyReader read \(String(describing: fast)), JSONDecoder \(String(describing: reference))")
    }
  case 1:
    _ = runBlocking { await client(status, body).health() }
  case 2:
    _ = runBlocking { () -> String in
      do throws(VaultError) { return "\(try await client(status, body).sealStatus())" } catch { return error.description }
    }
  case 3:
    _ = runBlocking { () -> String in
      do throws(VaultError) {
        return "\(try await client(status, body).submit(share: SecretBytes(utf8: "aGVsbG8gd29ybGQgaGVsbG8gd29ybGQ=")))"
      } catch {
        return error.description
      }
    }
  case 4:
    _ = runBlocking { () -> String in
      do throws(VaultError) {
        let token = try await client(status, body).renewSelf(SecretBytes(utf8: "s.fuzz"))
        return "\(token.ttl) \(token.renewable) \(token.token.count)"
      } catch {
        return error.description
      }
    }
  case 5:
    _ = runBlocking { () -> String in
      do throws(VaultError) {
        let token = try await client(status, body).loginAppRole(
          mount: "approle", roleID: SecretBytes(utf8: "role-1"), secretID: SecretBytes(utf8: "secret-1"))
        return "\(token.ttl)"
      } catch {
        return error.description
      }
    }
  case 6:
    _ = VaultClient.errors(in: body)
  default:
    redirect(String(decoding: body, as: UTF8.self))
  }
  return 0
}

private func client(_ status: Int, _ body: [UInt8]) -> VaultClient {
  VaultClient(transport: CannedTransport(status: status, body: body), timeout: .seconds(1))
}

/// The nodes a redirect may lead to, and the standby that sends it.
private let configured: [NodeConfig] = [
  "https://vault-a.example:8200", "https://10.0.0.2:8200", "https://[fd00::3]:8200", "http://127.0.0.1:8200",
].compactMap { text in
  if case .success(let address) = VaultAddress.parse(text) { return NodeConfig(address: address) }
  return nil
}

private func redirect(_ location: String) {
  let standby = configured[0]
  guard let target = try? StandbyRedirect.target(location, from: standby, configured: configured) else { return }
  // Properties: only configured nodes, and never from https down to plain http.
  guard configured.contains(target) else { violated("a redirect was followed to an unconfigured node: \(location)") }
  if target.address.scheme == .http { violated("a redirect went from https to http: \(location)") }
}

/// Answers every request with one canned response, as a node (or an impostor) would.
private struct CannedTransport: HTTPTransport {
  let status: Int
  let body: [UInt8]

  func send(_ request: HTTPRequest, timeout: Duration) async throws(TransportError) -> HTTPResponse {
    HTTPResponse(status: status, headers: [("Content-Type", "application/json")], body: body, newConnection: false, duration: .milliseconds(1))
  }

  func download(_ request: HTTPRequest, limits: DownloadLimits, into body: StreamingBody) async throws(TransportError) -> HTTPResponse {
    throw TransportError(.local, "not used by this fuzz target")
  }

  func upload(_ request: HTTPRequest, file: FileSlice, limits: DownloadLimits) async throws(TransportError) -> HTTPResponse {
    throw TransportError(.local, "not used by this fuzz target")
  }

  func connectionClosedEvents() -> AsyncStream<Void> { AsyncStream { $0.finish() } }

  func shutdown() {}
}
