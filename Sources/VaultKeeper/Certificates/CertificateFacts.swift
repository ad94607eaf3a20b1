// SPDX-License-Identifier: Apache-2.0
import Crypto
import SwiftASN1
import X509

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What an operator needs to know about one certificate, in printable form. The same for the
/// file on disk and the certificate Vault serves, so the two can be compared field by field.
public struct CertificateFacts: Sendable, Equatable {
  /// RFC 4514 form, e.g. `CN=vault.example.com,O=Example`.
  public var subject: String
  public var issuer: String
  /// DNS subject alternative names, as written (wildcards included).
  public var dnsNames: [String]
  /// iPAddress subject alternative names, as text.
  public var ipAddresses: [String]
  public var notBefore: Date
  public var notAfter: Date
  /// SHA-256 of the DER certificate, colon-separated upper-case hex: the form of
  /// `openssl x509 -noout -fingerprint -sha256`, so operators can compare by eye.
  public var sha256: String
  /// The serial number, colon-separated upper-case hex.
  public var serial: String
  /// The public key's kind, e.g. `P256`, `RSA2048`, `Ed25519`.
  public var keyType: String

  /// All SANs for messages: DNS names, then IP addresses.
  public var subjectAlternativeNames: [String] { dnsNames + ipAddresses }

  public init(subject: String, issuer: String, dnsNames: [String], ipAddresses: [String], notBefore: Date, notAfter: Date, sha256: String,
    serial: String, keyType: String)
  {
    self.subject = subject
    self.issuer = issuer
    self.dnsNames = dnsNames
    self.ipAddresses = ipAddresses
    self.notBefore = notBefore
    self.notAfter = notAfter
    self.sha256 = sha256
    self.serial = serial
    self.keyType = keyType
  }

  /// Facts of a parsed certificate; `der` is its encoding (hashed for the fingerprint).
  init(_ certificate: Certificate, der: [UInt8]) {
    var dns: [String] = []
    var ips: [String] = []
    // A malformed SAN extension reads as "no SANs": the name check then reports the mismatch.
    if let sans = try? certificate.extensions.subjectAlternativeNames {
      for name in sans {
        switch name {
        case .dnsName(let text): dns.append(text)
        case .ipAddress(let octets): ips.append(IPAddressText.format(octets.bytes))
        default: continue
        }
      }
    }
    self.init(
      subject: certificate.subject.description, issuer: certificate.issuer.description, dnsNames: dns, ipAddresses: ips,
      notBefore: certificate.notValidBefore, notAfter: certificate.notValidAfter, sha256: Self.fingerprint(der),
      serial: Self.colonHex(certificate.serialNumber.bytes), keyType: Self.keyType(certificate.publicKey))
  }

  /// SHA-256 fingerprint of DER bytes in `AB:CD:…` form.
  public static func fingerprint(_ der: some Collection<UInt8>) -> String {
    colonHex(SHA256.hash(data: Array(der)))
  }

  static func colonHex(_ bytes: some Sequence<UInt8>) -> String {
    let digits = Array("0123456789ABCDEF".utf8)
    var out: [UInt8] = []
    for byte in bytes {
      if !out.isEmpty { out.append(UInt8(ascii: ":")) }
      out.append(digits[Int(byte >> 4)])
      out.append(digits[Int(byte & 0x0F)])
    }
    return String(decoding: out, as: UTF8.self)
  }

  /// "P256.PublicKey" → "P256": swift-certificates' description names the kind (and RSA size).
  static func keyType(_ key: Certificate.PublicKey) -> String {
    let text = key.description
    return text.hasSuffix(".PublicKey") ? String(text.dropLast(".PublicKey".count)) : text
  }
}
