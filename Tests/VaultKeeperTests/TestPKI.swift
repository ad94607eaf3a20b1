// SPDX-License-Identifier: Apache-2.0
import Crypto
import Foundation
import SwiftASN1
import X509
import _CryptoExtras

/// Certificates made at test time with swift-certificates: a test CA, an intermediate, leaves
/// that are fine, expired, not yet valid, for other names, and keys of every supported kind in
/// every supported PEM format. Nothing is checked in; every run has fresh keys.
enum TestPKI {
  struct Key {
    let privateKey: Certificate.PrivateKey
    /// The key file's content.
    let pem: String
  }

  static func p256() -> Key {
    let key = P256.Signing.PrivateKey()
    return Key(privateKey: .init(key), pem: key.pemRepresentation)  // PKCS#8
  }

  static func p384() -> Key {
    let key = P384.Signing.PrivateKey()
    return Key(privateKey: .init(key), pem: key.pemRepresentation)
  }

  /// A P-256 key in SEC1 form (`EC PRIVATE KEY`, what `openssl ecparam -genkey` writes).
  static func p256SEC1() throws -> Key {
    let key = P256.Signing.PrivateKey()
    var serializer = DER.Serializer()
    try serializer.appendConstructedNode(identifier: .sequence) { coder in
      try coder.serialize(1)
      try coder.serialize(ASN1OctetString(contentBytes: ArraySlice(key.rawRepresentation)))
      try coder.serialize(explicitlyTaggedWithTagNumber: 0, tagClass: .contextSpecific) { inner in
        try inner.serialize(ASN1ObjectIdentifier.NamedCurves.secp256r1)
      }
      try coder.serialize(explicitlyTaggedWithTagNumber: 1, tagClass: .contextSpecific) { inner in
        try inner.serialize(ASN1BitString(bytes: ArraySlice(key.publicKey.x963Representation)))
      }
    }
    return Key(privateKey: .init(key), pem: PEMDocument(type: "EC PRIVATE KEY", derBytes: serializer.serializedBytes).pemString)
  }

  static func ed25519() -> Key {
    let key = Curve25519.Signing.PrivateKey()
    let pem = PEMDocument(type: "PRIVATE KEY", derBytes: ed25519PKCS8(key)).pemString
    return Key(privateKey: .init(key), pem: pem)
  }

  /// RFC 8410: PKCS#8 with the Ed25519 OID and the 32-byte seed in an inner OCTET STRING.
  private static func ed25519PKCS8(_ key: Curve25519.Signing.PrivateKey) -> [UInt8] {
    [0x30, 0x2E, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20] + Array(key.rawRepresentation)
  }

  /// RSA keys take a while to generate: one per run, in both PEM forms.
  static let rsa: (key: Certificate.PrivateKey, pkcs1: String, pkcs8: String) = {
    // A 2048-bit key is the smallest swift-crypto accepts; generation failing is a broken test host.
    guard let key = try? _RSA.Signing.PrivateKey(keySize: .bits2048) else { fatalError("cannot generate an RSA test key") }
    return (.init(key), key.pemRepresentation, key.pkcs8PEMRepresentation)
  }()

  struct Issued {
    let certificate: Certificate
    var pem: String { (try? certificate.serializeAsPEM().pemString) ?? "" }
  }

  static func name(_ cn: String) throws -> DistinguishedName {
    try DistinguishedName {
      OrganizationName("vaultkeeper tests")
      CommonName(cn)
    }
  }

  static func signatureAlgorithm(for key: Certificate.PrivateKey) -> Certificate.SignatureAlgorithm {
    switch key.publicKey.description {
    case let text where text.hasPrefix("RSA"): return .sha256WithRSAEncryption
    case "Ed25519.PublicKey": return .ed25519
    case "P384.PublicKey": return .ecdsaWithSHA384
    default: return .ecdsaWithSHA256
    }
  }

  /// A CA certificate (self-signed when `issuer` is nil).
  static func ca(_ cn: String, key: Key, issuer: (Certificate, Key)? = nil, now: Date = Date(), notAfter: Date? = nil) throws -> Certificate {
    let subject = try name(cn)
    let signer = issuer?.1.privateKey ?? key.privateKey
    return try Certificate(
      version: .v3, serialNumber: .init(), publicKey: key.privateKey.publicKey,
      notValidBefore: now.addingTimeInterval(-3600), notValidAfter: notAfter ?? now.addingTimeInterval(3650 * 86400),
      issuer: issuer?.0.subject ?? subject, subject: subject, signatureAlgorithm: signatureAlgorithm(for: signer),
      extensions: try Certificate.Extensions {
        Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
        Critical(KeyUsage(keyCertSign: true, cRLSign: true))
      },
      issuerPrivateKey: signer)
  }

  /// A server certificate for `dnsNames` and `ips`, valid from `notBefore` to `notAfter`.
  static func leaf(_ cn: String, key: Key, issuer: Certificate, issuerKey: Key, dnsNames: [String], ips: [String] = [], notBefore: Date,
    notAfter: Date) throws -> Certificate
  {
    var sans: [GeneralName] = dnsNames.map { .dnsName($0) }
    for ip in ips {
      sans.append(.ipAddress(ASN1OctetString(contentBytes: ArraySlice(ip.contains(":") ? ipv6(ip) : ip.split(separator: ".").compactMap { UInt8($0) }))))
    }
    return try Certificate(
      version: .v3, serialNumber: .init(), publicKey: key.privateKey.publicKey, notValidBefore: notBefore, notValidAfter: notAfter,
      issuer: issuer.subject, subject: try name(cn), signatureAlgorithm: signatureAlgorithm(for: issuerKey.privateKey),
      extensions: try Certificate.Extensions {
        Critical(BasicConstraints.notCertificateAuthority)
        try ExtendedKeyUsage([.serverAuth])
        SubjectAlternativeNames(sans)
      },
      issuerPrivateKey: issuerKey.privateKey)
  }

  /// Only `::1` is needed by the tests.
  private static func ipv6(_ text: String) -> [UInt8] {
    text == "::1" ? [UInt8](repeating: 0, count: 15) + [1] : [UInt8](repeating: 0, count: 16)
  }

  static func pem(_ certificates: Certificate...) throws -> [UInt8] {
    Array(try certificates.map { try $0.serializeAsPEM().pemString + "\n" }.joined().utf8)
  }

  /// A complete little PKI: root, intermediate, and a leaf for vault.example.com issued by the
  /// intermediate, valid for 90 days from an hour ago.
  struct Chain {
    let now: Date
    let rootKey = TestPKI.p256()
    let intermediateKey = TestPKI.p256()
    let leafKey: Key
    let root: Certificate
    let intermediate: Certificate
    let leaf: Certificate

    init(now: Date = Date(), leafKey: Key = TestPKI.p256(), days: Double = 90, dnsNames: [String] = ["vault.example.com", "*.vault.example.com"])
      throws
    {
      self.now = now
      self.leafKey = leafKey
      root = try TestPKI.ca("test root", key: rootKey, now: now)
      intermediate = try TestPKI.ca("test intermediate", key: intermediateKey, issuer: (root, rootKey), now: now)
      leaf = try TestPKI.leaf(
        "vault.example.com", key: leafKey, issuer: intermediate, issuerKey: intermediateKey, dnsNames: dnsNames, ips: ["127.0.0.1"],
        notBefore: now.addingTimeInterval(-3600), notAfter: now.addingTimeInterval(days * 86400))
    }

    /// Another leaf from the same intermediate.
    func issue(key: Key? = nil, dnsNames: [String] = ["vault.example.com"], notBefore: Date, notAfter: Date) throws -> Certificate {
      try TestPKI.leaf(
        "vault.example.com", key: key ?? leafKey, issuer: intermediate, issuerKey: intermediateKey, dnsNames: dnsNames, notBefore: notBefore,
        notAfter: notAfter)
    }
  }
}
