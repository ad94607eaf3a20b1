// SPDX-License-Identifier: Apache-2.0
import VaultKeeper

/// Reads the certificate a Vault node serves, over libcurl, on a transport (and so a thread and
/// a connection) of its own for each look: the node's regular transport keeps its kept-alive
/// connection, which would still show the certificate from before a reload, and its socket
/// watch is not disturbed by a connect-only handshake.
///
/// First a handshake verified exactly like every request (`[vault] ca_file`, `server_name`,
/// client certificate). If verification fails, e.g. because Vault serves an expired or wrong
/// certificate, a second handshake without verification reads what is served so the operator
/// can see it; the verification error is kept in `ServedCertificate.verificationError`, never
/// dropped. Neither handshake is followed by any request, so no token, key or path is sent.
public struct CurlServedCertificateSource: ServedCertificateSource {
  public let node: NodeConfig

  public init(node: NodeConfig) {
    self.node = node
  }

  public func servedCertificate() async -> Result<ServedCertificate, ServedCertificateError> {
    guard node.address.scheme == .https else {
      return .failure(ServedCertificateError("\(node.name) is not an https:// address: there is no served certificate to read"))
    }
    let transport = CurlTransport(settings: .init(node: node), name: "curl cert")
    defer { transport.shutdown() }
    let timeout = node.timeout
    do {
      let pems = try await transport.probeCertificates(.verified, timeout: timeout)
      return ServedCertificate.parse(pems: pems, verificationError: nil)
    } catch let verified where verified.kind == .tls {
      do {
        let pems = try await transport.probeCertificates(.unverified, timeout: timeout)
        return ServedCertificate.parse(pems: pems, verificationError: verified.message)
      } catch {
        // The handshake itself fails (protocol, client certificate required): report the
        // verified attempt's reason, the one that matters.
        return .failure(ServedCertificateError("TLS handshake with \(node.name) failed: \(verified.message)"))
      }
    } catch {
      return .failure(ServedCertificateError("cannot connect to \(node.name): \(error)"))
    }
  }
}
