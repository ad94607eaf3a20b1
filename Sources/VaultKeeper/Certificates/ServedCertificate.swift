// SPDX-License-Identifier: Apache-2.0
import X509

/// The certificate Vault presents on its TLS listener, as read on a fresh connection.
public struct ServedCertificate: Sendable, Equatable {
  public var leaf: CertificateFacts
  /// The further certificates the server sent, in order.
  public var chain: [CertificateFacts]
  /// nil when the handshake verified (against `[vault] ca_file` and the expected name). Else why
  /// it did not; the certificate was then read from a second handshake without verification,
  /// on which no request at all is sent.
  public var verificationError: String?

  public init(leaf: CertificateFacts, chain: [CertificateFacts] = [], verificationError: String? = nil) {
    self.leaf = leaf
    self.chain = chain
    self.verificationError = verificationError
  }

  /// Builds the facts from the PEM certificates a TLS library reported (libcurl's certinfo
  /// "Cert:" fields), the leaf first.
  public static func parse(pems: [String], verificationError: String?) -> Result<ServedCertificate, ServedCertificateError> {
    var facts: [CertificateFacts] = []
    for (index, pem) in pems.enumerated() {
      switch CertificateInspector.certificates(in: Array(pem.utf8), path: "served certificate") {
      case .success(let parsed):
        guard let (certificate, der) = parsed.first else {
          return .failure(ServedCertificateError("certificate \(index + 1) of the served chain is not PEM"))
        }
        facts.append(CertificateFacts(certificate, der: der))
      case .failure(let problem):
        return .failure(ServedCertificateError("certificate \(index + 1) of the served chain: \(problem)"))
      }
    }
    guard let leaf = facts.first else { return .failure(ServedCertificateError("the server sent no certificate")) }
    return .success(ServedCertificate(leaf: leaf, chain: Array(facts.dropFirst()), verificationError: verificationError))
  }
}

/// Why the served certificate could not be read (nothing listens, not TLS, handshake refused).
public struct ServedCertificateError: Error, Sendable, Equatable, CustomStringConvertible {
  public var message: String
  public init(_ message: String) { self.message = message }
  public var description: String { message }
}

/// Fetches the certificate a Vault node serves, each time on a new connection (a kept-alive one
/// would still show the certificate from before a reload). Implemented over libcurl in `Curl`.
public protocol ServedCertificateSource: Sendable {
  func servedCertificate() async -> Result<ServedCertificate, ServedCertificateError>
}
