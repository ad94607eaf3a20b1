// SPDX-License-Identifier: Apache-2.0
import Crypto

/// What the certificate files held at one moment: the bytes of each (the key in locked memory)
/// and one SHA-256 over all of them, which is how a renewal is told from a rewrite of the same
/// bytes or a `touch`.
public struct CertificateFileContents: Sendable, CustomStringConvertible {
  public var files: CertificateFileSet
  public var certificate: [UInt8]
  public var key: SecretBytes
  public var chain: [UInt8]?
  public var ca: [UInt8]?
  public var fingerprint: CertificateFingerprint

  /// Files larger than this are refused: a certificate with its chain is a few KiB, a CA
  /// bundle a few hundred; anything bigger is not what the path should name.
  public static let sizeLimit = 1 << 20

  public init(files: CertificateFileSet, certificate: [UInt8], key: SecretBytes, chain: [UInt8]? = nil, ca: [UInt8]? = nil) {
    self.files = files
    self.certificate = certificate
    self.key = key
    self.chain = chain
    self.ca = ca
    self.fingerprint = CertificateFingerprint(certificate: certificate, key: key, chain: chain, ca: ca)
  }

  /// Reads every file of `files`, following symlinks.
  public static func read(_ files: CertificateFileSet) throws(CertificateReadFailure) -> CertificateFileContents {
    let certificate = try readPublic(files.certificate)
    var keyBytes: [UInt8]
    do {
      keyBytes = try FileAccess.readBytes(path: files.key, limit: sizeLimit)
    } catch {
      throw CertificateReadFailure(path: files.key, reason: error.description)
    }
    let key = SecretBytes(keyBytes)
    SecretBytes.wipe(&keyBytes)
    let chain = try files.chain.map { path throws(CertificateReadFailure) in try readPublic(path) }
    let ca = try files.ca.map { path throws(CertificateReadFailure) in try readPublic(path) }
    return CertificateFileContents(files: files, certificate: certificate, key: key, chain: chain, ca: ca)
  }

  private static func readPublic(_ path: String) throws(CertificateReadFailure) -> [UInt8] {
    do {
      return try FileAccess.readBytes(path: path, limit: sizeLimit)
    } catch {
      throw CertificateReadFailure(path: path, reason: error.description)
    }
  }

  public var description: String { "certificate files \(fingerprint)" }
}

/// SHA-256 over every file's bytes, each preceded by its role and length so that moving bytes
/// from one file to another (or a chain appearing) changes it too.
public struct CertificateFingerprint: Sendable, Hashable, CustomStringConvertible {
  /// Lower-case hex, as `sha256sum` prints.
  public let hex: String

  init(certificate: [UInt8], key: SecretBytes, chain: [UInt8]?, ca: [UInt8]?) {
    var hasher = SHA256()
    func add(_ role: UInt8, _ buffer: UnsafeRawBufferPointer) {
      var header = [role]
      var length = UInt64(buffer.count).bigEndian
      withUnsafeBytes(of: &length) { header.append(contentsOf: $0) }
      header.withUnsafeBytes { hasher.update(bufferPointer: $0) }
      hasher.update(bufferPointer: buffer)
    }
    certificate.withUnsafeBytes { add(1, $0) }
    key.withUnsafeBytes { add(2, $0) }
    if let chain { chain.withUnsafeBytes { add(3, $0) } }
    if let ca { ca.withUnsafeBytes { add(4, $0) } }
    hex = SnapshotTarVerifier.hex(hasher.finalize())
  }

  public var description: String { hex }
}

/// One certificate file could not be read (missing, unreadable, too large).
public struct CertificateReadFailure: Error, Sendable, Equatable, CustomStringConvertible {
  public var path: String
  /// What failed, e.g. `open /etc/vault.d/tls/key.pem: Permission denied`.
  public var reason: String

  public init(path: String, reason: String) {
    self.path = path
    self.reason = reason
  }

  public var description: String { reason }
}
