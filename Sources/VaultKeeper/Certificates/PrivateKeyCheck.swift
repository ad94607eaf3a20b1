// SPDX-License-Identifier: Apache-2.0
import SwiftASN1
import X509

/// Parses a TLS private key and tells whether it belongs to a certificate. Supports what
/// swift-certificates reads: RSA, ECDSA P-256/P-384/P-521 and Ed25519, as PKCS#8
/// (`PRIVATE KEY`), SEC1 (`EC PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`) PEM.
enum PrivateKeyCheck {
  /// The public key of the private key in `pem`, or the problem. `pem` stays the caller's to
  /// wipe; the decoded DER is wiped here. (The parsed key itself lives in swift-crypto's
  /// BoringSSL objects, which clear their memory when freed.)
  static func publicKey(fromPEM pem: [UInt8], path: String) -> Result<Certificate.PublicKey, CertificateProblem> {
    var blocks: [PEMBlocks.Block]
    do {
      blocks = try PEMBlocks.parse(pem)
    } catch {
      return .failure(.keyInvalid(path: path, reason: "malformed PEM"))
    }
    defer {
      for index in blocks.indices { SecretBytes.wipe(&blocks[index].der) }
    }
    if blocks.contains(where: { $0.label == "ENCRYPTED PRIVATE KEY" || ($0.label.hasSuffix("PRIVATE KEY") && $0.hadHeaders) }) {
      return .failure(.keyEncrypted(path: path))
    }
    guard let index = blocks.firstIndex(where: { $0.label.hasSuffix("PRIVATE KEY") }) else { return .failure(.noKey(path: path)) }
    // The key object is made and dropped inside this call, so by the time the deferred wipe
    // runs the DER buffer has no other owner and is wiped in place rather than copied.
    return parse(label: blocks[index].label, der: blocks[index].der, path: path)
  }

  private static func parse(label: String, der: [UInt8], path: String) -> Result<Certificate.PublicKey, CertificateProblem> {
    do {
      let key = try Certificate.PrivateKey(pemDocument: PEMDocument(type: label, derBytes: der))
      return .success(key.publicKey)
    } catch {
      // swift-asn1/swift-crypto errors describe structure, never key bytes; still, only the
      // kind of failure is kept.
      return .failure(.keyInvalid(path: path, reason: "\(label) block does not parse (\(reasonKind(error)))"))
    }
  }

  private static func reasonKind(_ error: any Error) -> String {
    if let certificateError = error as? CertificateError { return "\(certificateError.code)" }
    if error is ASN1Error { return "bad DER" }
    return "unsupported or corrupt key"
  }
}
