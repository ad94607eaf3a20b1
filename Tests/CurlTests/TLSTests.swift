// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
import VaultKeeper

import Curl

extension CurlTransportTests {
  /// Certificate verification is always on: trust, names, validity, client certificates.
  /// Each refusal is paired with a configuration that works against the same server, so a
  /// failure for an unrelated reason cannot pass for a verification failure.
  @Suite struct TLS {
    private func simulator(certificate: String, clientCA: Bool = false, listen: String = "127.0.0.1:0") -> SimulatorOptions {
      var options = SimulatorOptions()
      options.certificate = certificate
      options.requireClientCertificate = clientCA
      options.listen = listen
      return options
    }

    @Test func impostorCertificateIsRefused() async throws {
      let pki = try await testPKI()
      try await withSimulator(simulator(certificate: "impostor")) { simulator in
        try await withTransport(try makeNode(simulator.url(), caFile: pki.ca)) { transport in
          let error = await expectFailure(transport)
          #expect(error?.kind == .tls, "\(String(describing: error))")
        }
        try await withTransport(try makeNode(simulator.url(), caFile: pki.impostorCA)) { transport in
          let status = try await transport.send(.health, timeout: requestCeiling).status
          #expect(status == 503)
        }
      }
    }

    @Test func systemTrustStoreDoesNotTrustTheTestCA() async throws {
      try await withSimulator(simulator(certificate: "server")) { simulator in
        try await withTransport(try makeNode(simulator.url())) { transport in
          #expect(await expectFailure(transport)?.kind == .tls)
        }
      }
    }

    @Test func expiredCertificateIsRefused() async throws {
      let pki = try await testPKI()
      try await withSimulator(simulator(certificate: "expired")) { simulator in
        try await withTransport(try makeNode(simulator.url(), caFile: pki.ca)) { transport in
          let error = await expectFailure(transport)
          #expect(error?.kind == .tls, "\(String(describing: error))")
        }
      }
    }

    @Test func certificateForAnotherNameIsRefused() async throws {
      let pki = try await testPKI()
      try await withSimulator(simulator(certificate: "other-name")) { simulator in
        for host in ["127.0.0.1", "localhost"] {
          try await withTransport(try makeNode(simulator.url(host: host), caFile: pki.ca)) { transport in
            let error = await expectFailure(transport)
            #expect(error?.kind == .tls, "\(host): \(String(describing: error))")
          }
        }
        // The certificate is fine for the name it carries.
        try await withTransport(try makeNode(simulator.url(), caFile: pki.ca, serverName: "other.test")) { transport in
          let status = try await transport.send(.health, timeout: requestCeiling).status
          #expect(status == 503)
        }
      }
    }

    @Test func serverNameIsVerifiedInsteadOfTheAddress() async throws {
      let pki = try await testPKI()
      try await withSimulator(simulator(certificate: "server")) { simulator in
        try await withTransport(try makeNode(simulator.url(), caFile: pki.ca, serverName: "vault.test")) { transport in
          let first = try await transport.send(.health, timeout: requestCeiling)
          #expect(first.status == 503)
          // CONNECT_TO must not get in the way of keep-alive.
          let second = try await transport.send(.health, timeout: requestCeiling)
          #expect(!second.newConnection)
        }
        try await withTransport(try makeNode(simulator.url(), caFile: pki.ca, serverName: "wrong.test")) { transport in
          let error = await expectFailure(transport)
          #expect(error?.kind == .tls, "\(String(describing: error))")
        }
      }
    }

    @Test func ipv6AddressWithAndWithoutServerName() async throws {
      let pki = try await testPKI()
      try await withSimulator(simulator(certificate: "server", listen: "[::1]:0")) { simulator in
        let url = simulator.url(host: "::1")
        #expect(url.hasPrefix("https://[::1]:"))
        try await withTransport(try makeNode(url, caFile: pki.ca)) { transport in
          let status = try await transport.send(.health, timeout: requestCeiling).status
          #expect(status == 503)
        }
        try await withTransport(try makeNode(url, caFile: pki.ca, serverName: "vault.test")) { transport in
          let status = try await transport.send(.health, timeout: requestCeiling).status
          #expect(status == 503)
        }
        try await withTransport(try makeNode(url, caFile: pki.ca, serverName: "wrong.test")) { transport in
          #expect(await expectFailure(transport)?.kind == .tls)
        }
      }
    }

    /// Ports.swift documents a bad CA file as `.local` (a problem on our side, not the node's).
    @Test func unusableLocalFilesAreLocalProblems() async throws {
      let pki = try await testPKI()
      let garbage = try makeScratchDirectory("garbage") + "/garbage.pem"
      try "not a certificate\n".write(toFile: garbage, atomically: true, encoding: .utf8)
      try await withSimulator(simulator(certificate: "server")) { simulator in
        let caError = try await withTransport(try makeNode(simulator.url(), caFile: garbage)) { await expectFailure($0) }
        let certError = try await withTransport(
          try makeNode(simulator.url(), caFile: pki.ca, clientCertFile: garbage, clientKeyFile: pki.clientKey)
        ) { await expectFailure($0) }
        #expect(caError != nil)
        #expect(certError != nil)
        #expect(caError?.kind == .local, "\(String(describing: caError))")
        #expect(certError?.kind == .local, "\(String(describing: certError))")
      }
    }

    @Test func mutualTLS() async throws {
      let pki = try await testPKI()
      try await withSimulator(simulator(certificate: "server", clientCA: true)) { simulator in
        try await withTransport(try makeNode(simulator.url(), caFile: pki.ca)) { transport in
          let error = await expectFailure(transport)
          // With TLS 1.3 the server rejects the missing certificate after the client finished
          // its handshake, so curl may only notice while reading: either kind is a refusal.
          #expect(error?.kind == .tls || error?.kind == .protocolError, "\(String(describing: error))")
        }
        let node = try makeNode(
          simulator.url(), caFile: pki.ca, clientCertFile: pki.clientCert, clientKeyFile: pki.clientKey)
        try await withTransport(node) { transport in
          let first = try await transport.send(.health, timeout: requestCeiling)
          #expect(first.status == 503)
          #expect(try jsonObject(first)["sealed"] as? Bool == true)
          let again = try await transport.send(.health, timeout: requestCeiling)
          #expect(!again.newConnection)
        }
      }
    }

    @Test func httpsTransportRefusesAPlainHTTPServer() async throws {
      let pki = try await testPKI()
      var options = SimulatorOptions()
      options.certificate = nil
      try await withSimulator(options) { simulator in
        try await withTransport(try makeNode(simulator.url(scheme: "https"), caFile: pki.ca)) { transport in
          let error = await expectFailure(transport)
          #expect(error?.kind == .tls || error?.kind == .protocolError, "\(String(describing: error))")
        }
        // Nothing is wrong with the server itself.
        try await withTransport(try makeNode(simulator.url(scheme: "http"))) { transport in
          let status = try await transport.send(.health, timeout: requestCeiling).status
          #expect(status == 503)
        }
      }
    }

    @Test func httpTransportDoesNotSpeakToATLSServerInClear() async throws {
      try await withSimulator(simulator(certificate: "server")) { simulator in
        try await withTransport(try makeNode(simulator.url(scheme: "http"))) { transport in
          let error = await expectFailure(transport)
          #expect(error?.kind == .protocolError || error?.kind == .tls, "\(String(describing: error))")
        }
      }
    }
  }
}
