// SPDX-License-Identifier: Apache-2.0
import Crypto
import SwiftASN1
import X509

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A certificate and key made for one drill, for the throwaway server's TCP listener (which
/// exists only because Raft needs a cluster listener). The same certificate is the only CA the
/// listener accepts client certificates from; its key signs nothing else and is deleted with the
/// drill's directory, so no client can ever present one: the listener's API is closed to all.
enum DrillCertificate {
  struct Files {
    var certificatePEM: String
    var keyPEM: String
  }

  static func make(now: Date = Date()) throws -> Files {
    let key = P256.Signing.PrivateKey()
    let privateKey = Certificate.PrivateKey(key)
    let name = try DistinguishedName {
      OrganizationName("vaultkeeper")
      CommonName("vaultkeeper restore drill")
    }
    let certificate = try Certificate(
      version: .v3, serialNumber: .init(), publicKey: privateKey.publicKey,
      notValidBefore: now.addingTimeInterval(-300), notValidAfter: now.addingTimeInterval(86400),
      issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
      extensions: try Certificate.Extensions {
        Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
        Critical(KeyUsage(digitalSignature: true, keyCertSign: true))
        try ExtendedKeyUsage([.serverAuth])
        SubjectAlternativeNames([.ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1]))])
      },
      issuerPrivateKey: privateKey)
    return Files(certificatePEM: try certificate.serializeAsPEM().pemString + "\n", keyPEM: key.pemRepresentation + "\n")
  }
}
