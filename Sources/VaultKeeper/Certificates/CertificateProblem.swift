// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One exact reason not to reload Vault with the certificate files as they are. Messages name
/// the file and the fact, never key material.
public enum CertificateProblem: Error, Sendable, Equatable, CustomStringConvertible {
  case certificateUnreadable(path: String, reason: String)
  /// Empty, garbage, or PEM without a CERTIFICATE block.
  case noCertificate(path: String)
  case certificateInvalid(path: String, reason: String)
  case keyUnreadable(path: String, reason: String)
  /// Readable or writable by everyone: refused unread (see `TLSKeyFile`).
  case keyInsecure(path: String, mode: UInt32)
  case noKey(path: String)
  case keyEncrypted(path: String)
  case keyInvalid(path: String, reason: String)
  case keyMismatch(keyType: String, certificateKeyType: String)
  case caUnreadable(path: String, reason: String)
  case noCACertificate(path: String)
  case chainInvalid(reason: String)
  case notYetValid(notBefore: Date)
  case expired(notAfter: Date)
  case nameMismatch(missing: [String], sans: [String])

  /// A stable short name for metric labels and journal fields.
  public var code: String {
    switch self {
    case .certificateUnreadable: return "cert_unreadable"
    case .noCertificate: return "no_certificate"
    case .certificateInvalid: return "cert_invalid"
    case .keyUnreadable: return "key_unreadable"
    case .keyInsecure: return "key_insecure"
    case .noKey: return "no_key"
    case .keyEncrypted: return "key_encrypted"
    case .keyInvalid: return "key_invalid"
    case .keyMismatch: return "key_mismatch"
    case .caUnreadable: return "ca_unreadable"
    case .noCACertificate: return "no_ca_certificate"
    case .chainInvalid: return "chain_invalid"
    case .notYetValid: return "not_yet_valid"
    case .expired: return "expired"
    case .nameMismatch: return "name_mismatch"
    }
  }

  public var description: String {
    switch self {
    case .certificateUnreadable(let path, let reason): return "cannot read cert_file \(path): \(reason)"
    case .noCertificate(let path): return "no certificate in cert_file \(path) (expected a PEM \"BEGIN CERTIFICATE\" block)"
    case .certificateInvalid(let path, let reason): return "cert_file \(path) holds an invalid certificate: \(reason)"
    case .keyUnreadable(let path, let reason): return "cannot read key_file \(path): \(reason)"
    case .keyInsecure(let path, let mode):
      return "key_file \(path) is accessible to every user (mode \(String(mode, radix: 8))); refusing to read it: chmod o-rwx \(path)"
    case .noKey(let path): return "no private key in key_file \(path) (expected a PEM \"BEGIN PRIVATE KEY\" block)"
    case .keyEncrypted(let path): return "key_file \(path) is encrypted with a passphrase; Vault needs an unencrypted key"
    case .keyInvalid(let path, let reason): return "key_file \(path) holds no usable private key: \(reason)"
    case .keyMismatch(let keyType, let certificateKeyType):
      let kinds = keyType == certificateKeyType ? "" : " (key is \(keyType), the certificate's is \(certificateKeyType))"
      return "the private key in key_file does not match the certificate's public key\(kinds)"
    case .caUnreadable(let path, let reason): return "cannot read ca_file \(path): \(reason)"
    case .noCACertificate(let path): return "no certificate in ca_file \(path)"
    case .chainInvalid(let reason): return "the certificate chain does not validate to ca_file: \(reason)"
    case .notYetValid(let notBefore): return "the certificate is not valid yet (not before \(CertificateTime.text(notBefore)))"
    case .expired(let notAfter): return "the certificate expired on \(CertificateTime.text(notAfter))"
    case .nameMismatch(let missing, let sans):
      let listed = sans.isEmpty ? "none" : sans.joined(separator: ", ")
      return "the certificate does not cover \(missing.joined(separator: ", ")) (its subject alternative names: \(listed))"
    }
  }
}

/// Certificate times in messages: ISO 8601 UTC, whatever the host's time zone.
public enum CertificateTime {
  public static func text(_ date: Date) -> String {
    var seconds = Int64(date.timeIntervalSince1970.rounded(.down))
    let days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400
    seconds -= days * 86400
    let (y, m, d) = SnapshotName.civil(fromDays: days)
    func two(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
    return "\(y)-\(two(m))-\(two(d))T\(two(seconds / 3600)):\(two(seconds % 3600 / 60)):\(two(seconds % 60))Z"
  }
}
