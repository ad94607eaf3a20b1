// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
import VaultKeeper

import Curl

/// `CurlTransport` against the real Vault simulator (Tests/Simulator/vault_sim.py).
///
/// Every test starts its own simulator (about 0.3 s) and always kills it, and always shuts its
/// transports down. The suites run one test at a time: several of them measure that something
/// happens "promptly", and the machine has two cores shared with other builds.
@Suite(.serialized) struct CurlTransportTests {
  @Test func healthOverVerifiedTLSKeepsTheConnectionAlive() async throws {
    let pki = try await testPKI()
    try await withSimulator { simulator in
      try await withTransport(try makeNode(simulator.url(), caFile: pki.ca)) { transport in
        let first = try await transport.send(.health, timeout: requestCeiling)
        #expect(first.status == 503)  // initialised, sealed
        #expect(first.newConnection)
        #expect(first.duration > .zero)
        #expect(first.header("Content-Type") == "application/json")
        #expect(first.header("cache-control") == "no-store")
        let sealed = try jsonObject(first)
        #expect(sealed["initialized"] as? Bool == true)
        #expect(sealed["sealed"] as? Bool == true)

        try simulator.control("POST", "/unseal")
        let second = try await transport.send(.health, timeout: requestCeiling)
        #expect(second.status == 200)
        #expect(!second.newConnection, "the kept-alive connection should have been reused")
        #expect(try jsonObject(second)["sealed"] as? Bool == false)

        // The server agrees: one TCP connection carried both requests.
        #expect(try simulator.state()["connections_total"] as? Int == 1)
      }
    }
  }

  @Test func queryAndHeadersReachTheServer() async throws {
    let pki = try await testPKI()
    try await withSimulator { simulator in
      try await withTransport(try makeNode(simulator.url(), caFile: pki.ca)) { transport in
        let request = HTTPRequest(
          method: .get, path: "/v1/sys/health?sealedcode=299", headers: [("X-Vault-Request", "true")])
        let response = try await transport.send(request, timeout: requestCeiling)
        #expect(response.status == 299)
        let logged = try #require(try simulator.requests().last)
        #expect(logged["method"] as? String == "GET")
        #expect(logged["path"] as? String == "/v1/sys/health")
        #expect(logged["x_vault_request"] as? String == "true")
      }
    }
  }

  @Test func headGetsNoBodyAndLeavesTheConnectionUsable() async throws {
    let pki = try await testPKI()
    try await withSimulator { simulator in
      try await withTransport(try makeNode(simulator.url(), caFile: pki.ca)) { transport in
        // Vault answers HEAD on sys/health without a body and without Content-Length.
        let head = try await transport.send(HTTPRequest(method: .head, path: "/v1/sys/health"), timeout: requestCeiling)
        #expect(head.status == 503)
        #expect(head.body.isEmpty)
        let get = try await transport.send(.health, timeout: requestCeiling)
        #expect(get.status == 503)
        #expect(!get.newConnection)
        #expect(try jsonObject(get)["sealed"] as? Bool == true)
      }
    }
  }

  @Test func putSendsTheBodyFromSecretBytes() async throws {
    let pki = try await testPKI()
    try await withSimulator { simulator in
      try await withTransport(try makeNode(simulator.url(), caFile: pki.ca)) { transport in
        let json = [("Content-Type", "application/json")]
        let reset = try await transport.send(
          HTTPRequest(method: .put, path: "/v1/sys/unseal", headers: json, body: SecretBytes(utf8: "{\"reset\":true}")),
          timeout: requestCeiling)
        #expect(reset.status == 200)
        let status = try jsonObject(reset)
        #expect(status["type"] as? String == "shamir")
        #expect(status["sealed"] as? Bool == true)
        #expect(status["progress"] as? Int == 0)
        #expect(status["t"] as? Int == 1)

        // A real share: the server can only unseal if the body arrived byte for byte.
        let keys = try #require(try simulator.initOutput()["unseal_keys_b64"] as? [String])
        let key = try #require(keys.first)
        let unseal = try await transport.send(
          HTTPRequest(method: .put, path: "/v1/sys/unseal", headers: json, body: SecretBytes(utf8: "{\"key\":\"\(key)\"}")),
          timeout: requestCeiling)
        #expect(unseal.status == 200)
        #expect(try jsonObject(unseal)["sealed"] as? Bool == false)
        #expect(!unseal.newConnection)

        // The simulator logs a request after answering it: wait for the second entry.
        let methods = try await simulator.waitForRequests(2).compactMap { $0["method"] as? String }
        #expect(methods == ["PUT", "PUT"])
      }
    }
  }

  /// The bytes on the wire, seen by a raw server: a PUT's body and headers, no
  /// `Expect: 100-continue`, and nothing of the PUT left over in the next request.
  @Test func wireFormatOfPutThenGet() async throws {
    let server = try RawHTTPServer()
    defer { server.stop() }
    try await withTransport(try makeNode("http://127.0.0.1:\(server.port)")) { transport in
      let body = #"{"key":"c2hhcmU="}"#
      let headers = [("X-Vault-Request", "true"), ("Content-Type", "application/json")]
      let put = try await transport.send(
        HTTPRequest(method: .put, path: "/v1/sys/unseal", headers: headers, body: SecretBytes(utf8: body)),
        timeout: requestCeiling)
      #expect(put.status == 200)
      #expect(put.body == Array("{}".utf8))
      _ = try await transport.send(.health, timeout: requestCeiling)

      let requests = await server.waitForRequests(2)
      try #require(requests.count == 2)
      let sent = requests[0]
      #expect(sent.hasPrefix("PUT /v1/sys/unseal HTTP/1.1\r\n"))
      #expect(sent.hasSuffix("\r\n\r\n" + body), "the body arrives verbatim")
      let head = sent.lowercased()
      #expect(head.contains("\r\ncontent-length: \(body.utf8.count)\r\n"))
      #expect(head.contains("\r\nx-vault-request: true\r\n"))
      #expect(head.contains("\r\ncontent-type: application/json\r\n"))
      #expect(!head.contains("\r\nexpect:"))
      #expect(!head.contains("transfer-encoding"))

      let get = requests[1]
      #expect(get.hasPrefix("GET /v1/sys/health HTTP/1.1\r\n"))
      #expect(get.hasSuffix("\r\n\r\n"), "no body")
      #expect(!get.lowercased().contains("content-length"))
      #expect(!get.lowercased().contains("x-vault-request"), "headers of the previous request must not leak")
    }
  }

  /// A PUT without a body must send an empty one. With CURLOPT_POST and no POSTFIELDS, curl
  /// falls back to its default read callback, which reads the *process's stdin* and sends it
  /// chunked (seen: `echo X | vaultkeeperPackageTests.xctest` sends "X" to the server).
  @Test func putWithoutABodySendsAnEmptyOne() async throws {
    let server = try RawHTTPServer()
    defer { server.stop() }
    try await withTransport(try makeNode("http://127.0.0.1:\(server.port)")) { transport in
      let response = try await transport.send(HTTPRequest(method: .put, path: "/v1/sys/seal"), timeout: requestCeiling)
      #expect(response.status == 200)
      let sent = try #require(await server.waitForRequests(1).first)
      #expect(sent.hasPrefix("PUT /v1/sys/seal HTTP/1.1\r\n"))
      #expect(sent.lowercased().contains("\r\ncontent-length: 0\r\n"))
      #expect(!sent.lowercased().contains("transfer-encoding"))
    }
  }

  @Test func bodyLimitIsEnforcedExactly() async throws {
    let pki = try await testPKI()
    try await withSimulator { simulator in
      let node = try makeNode(simulator.url(), caFile: pki.ca)
      try await withTransport(node, bodyLimit: 16) { transport in
        let error = await expectFailure(transport)
        #expect(error?.kind == .protocolError)
        #expect(error?.message.contains("16") == true, "\(String(describing: error))")
      }
      // The health body of a sealed node has a fixed length; exactly that length is fine,
      // one byte less is not.
      let length = try await withTransport(node) { try await $0.send(.health, timeout: requestCeiling).body.count }
      #expect(length > 100)
      try await withTransport(node, bodyLimit: length) { transport in
        let response = try await transport.send(.health, timeout: requestCeiling)
        #expect(response.body.count == length)
      }
      try await withTransport(node, bodyLimit: length - 1) { transport in
        #expect(await expectFailure(transport)?.kind == .protocolError)
        // The failed transfer does not poison the transport: it can still talk (and fail the
        // same way, not with some leftover error).
        #expect(await expectFailure(transport)?.kind == .protocolError)
      }
    }
  }

  @Test func plainHTTPToLoopback() async throws {
    var options = SimulatorOptions()
    options.certificate = nil
    try await withSimulator(options) { simulator in
      try await withTransport(try makeNode(simulator.url(scheme: "http"))) { transport in
        let first = try await transport.send(.health, timeout: requestCeiling)
        #expect(first.status == 503)
        #expect(try jsonObject(first)["sealed"] as? Bool == true)
        let second = try await transport.send(.health, timeout: requestCeiling)
        #expect(!second.newConnection)
      }
    }
  }

  @Test func unixSocket() async throws {
    var options = SimulatorOptions()
    options.certificate = nil
    options.listen = nil
    options.unixSocket = true
    try await withSimulator(options) { simulator in
      let path = try #require(simulator.unixSocketPath)
      try await withTransport(try makeNode("unix://\(path)")) { transport in
        let first = try await transport.send(.health, timeout: requestCeiling)
        #expect(first.status == 503)
        #expect(first.newConnection)
        #expect(try jsonObject(first)["initialized"] as? Bool == true)
        let second = try await transport.send(.health, timeout: requestCeiling)
        #expect(second.status == 503)
        #expect(!second.newConnection)
      }
    }
  }

  @Test func nothingListeningIsAConnectError() async throws {
    let port = try unusedLoopbackPort()
    // Connect timeout and request timeout far away: a refusal that waited for either would
    // end as a timeout, not as the refusal checked below.
    try await withTransport(try makeNode("https://127.0.0.1:\(port)", connectTimeout: requestCeiling)) { transport in
      let error = await expectFailure(transport, timeout: requestCeiling)
      #expect(error?.kind == .connect, "\(String(describing: error))")
      // The server's doing, and said in words (the seal judgement counts it as a restart).
      #expect(error?.serverAction == .refused, "\(String(describing: error))")
      #expect(error?.message.contains("Connection refused") == true, "\(String(describing: error))")
    }
  }
}
