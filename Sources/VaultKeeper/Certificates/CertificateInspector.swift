// SPDX-License-Identifier: Apache-2.0
import SwiftASN1
@_spi(FixedExpiryValidationTime) @_spi(DisableValidityCheck) import X509

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Validates certificate files before Vault is reloaded with them: the certificate parses, the
/// key belongs to it, the chain validates to ca_file, it is valid now, and it covers the names
/// clients use. Every problem is collected (not just the first), so one alert says everything.
public enum CertificateInspector {
  /// How the files are named in messages (their configured paths).
  public struct Files: Sendable {
    public var cert: String
    public var key: String
    public var ca: String

    public init(cert: String = "cert_file", key: String = "key_file", ca: String = "ca_file") {
      self.cert = cert
      self.key = key
      self.ca = ca
    }
  }

  /// Reads the configured files and inspects them. The key bytes are wiped before returning.
  /// Blocking reads of small local files; the chain validation is async.
  public static func inspectFiles(_ config: CertificateConfig, now: Date) async -> CertificateVerdict {
    let files = Files(cert: config.certFile, key: config.keyFile, ca: config.caFile ?? "ca_file")
    var early: [CertificateProblem] = []
    let certPEM: [UInt8]
    do {
      certPEM = try FileAccess.readBytes(path: config.certFile, limit: 1 << 20)
    } catch {
      return CertificateVerdict(problems: [.certificateUnreadable(path: config.certFile, reason: error.description)])
    }
    var keyPEM: [UInt8]?
    switch TLSKeyFile.read(path: config.keyFile) {
    case .success(let bytes): keyPEM = bytes
    case .failure(let problem): early.append(problem)
    }
    defer {
      // Drop our reference first so the wipe works on the only copy, in place.
      if var bytes = keyPEM {
        keyPEM = nil
        SecretBytes.wipe(&bytes)
      }
    }
    var caPEM: [UInt8]?
    if let ca = config.caFile {
      do {
        caPEM = try FileAccess.readBytes(path: ca, limit: 4 << 20)
      } catch {
        early.append(.caUnreadable(path: ca, reason: error.description))
      }
    }
    var verdict = await inspect(
      certPEM: certPEM, keyPEM: keyPEM, caPEM: caPEM, names: config.names, now: now, warnDays: config.warnDays,
      criticalDays: config.criticalDays, files: files)
    verdict.problems = early + verdict.problems
    return verdict
  }

  /// Inspects PEM contents. A nil `keyPEM` skips the key check (`keyMatches` stays nil), a nil
  /// `caPEM` the chain check. `keyPEM` remains the caller's to wipe.
  public static func inspect(certPEM: [UInt8], keyPEM: [UInt8]?, caPEM: [UInt8]?, names: [String], now: Date, warnDays: Int = 21,
    criticalDays: Int = 7, files: Files = Files()) async -> CertificateVerdict
  {
    var verdict = CertificateVerdict()
    let parsed: [(Certificate, [UInt8])]
    switch certificates(in: certPEM, path: files.cert) {
    case .failure(let problem):
      verdict.problems.append(problem)
      return verdict
    case .success(let list):
      guard !list.isEmpty else {
        verdict.problems.append(.noCertificate(path: files.cert))
        return verdict
      }
      parsed = list
    }
    let leaf = parsed[0].0
    let facts = CertificateFacts(leaf, der: parsed[0].1)
    verdict.leaf = facts
    verdict.intermediates = parsed.dropFirst().map { CertificateFacts($0.0, der: $0.1) }

    if let keyPEM {
      switch PrivateKeyCheck.publicKey(fromPEM: keyPEM, path: files.key) {
      case .success(let publicKey):
        let matches = publicKey == leaf.publicKey
        verdict.keyMatches = matches
        if !matches {
          verdict.problems.append(.keyMismatch(keyType: CertificateFacts.keyType(publicKey), certificateKeyType: facts.keyType))
        }
      case .failure(let problem):
        verdict.problems.append(problem)
      }
    }

    if let caPEM {
      switch certificates(in: caPEM, path: files.ca) {
      case .failure(let problem):
        verdict.problems.append(problem == .noCertificate(path: files.ca) ? .noCACertificate(path: files.ca) : problem)
      case .success(let roots) where roots.isEmpty:
        verdict.problems.append(.noCACertificate(path: files.ca))
      case .success(let roots):
        let failure = await chainFailure(leaf: leaf, intermediates: parsed.dropFirst().map { $0.0 }, roots: roots.map { $0.0 }, now: now)
        verdict.chainValid = failure == nil
        if let failure { verdict.problems.append(.chainInvalid(reason: failure)) }
      }
    }

    if now < facts.notBefore { verdict.problems.append(.notYetValid(notBefore: facts.notBefore)) }
    let expiry = ExpiryLevel.of(notAfter: facts.notAfter, now: now, warnDays: warnDays, criticalDays: criticalDays)
    verdict.expiry = expiry
    if expiry == .expired { verdict.problems.append(.expired(notAfter: facts.notAfter)) }

    let missing = names.filter { !CertificateNames.covers($0, dnsNames: facts.dnsNames, ipAddresses: facts.ipAddresses) }
    if !missing.isEmpty { verdict.problems.append(.nameMismatch(missing: missing, sans: facts.subjectAlternativeNames)) }
    return verdict
  }

  /// The CERTIFICATE blocks of a PEM file, parsed, with their DER. An empty list when the file
  /// holds none (garbage, an empty file, only a key).
  static func certificates(in pem: [UInt8], path: String) -> Result<[(Certificate, [UInt8])], CertificateProblem> {
    let blocks: [PEMBlocks.Block]
    do {
      blocks = try PEMBlocks.parse(pem)
    } catch {
      switch error {
      case .unterminated(let label):
        return .failure(.certificateInvalid(path: path, reason: "the PEM block \"\(label)\" has no END line"))
      case .badBase64(let label, let index):
        return .failure(.certificateInvalid(path: path, reason: "PEM block \(index) (\(label)) is not valid base64"))
      }
    }
    var out: [(Certificate, [UInt8])] = []
    for (index, block) in blocks.enumerated() where block.label == "CERTIFICATE" {
      do {
        out.append((try Certificate(derEncoded: block.der), block.der))
      } catch {
        return .failure(.certificateInvalid(path: path, reason: "PEM block \(index + 1) is not an X.509 certificate"))
      }
    }
    return .success(out)
  }

  /// Why the chain does not validate, or nil when it does. An expired or not-yet-valid leaf
  /// fails any chain check at `now`; that is already its own problem, so the chain is then judged
  /// again with validity periods left out, to tell whether it is *also* broken (wrong issuer,
  /// bad signature, constraints).
  static func chainFailure(leaf: Certificate, intermediates: [Certificate], roots: [Certificate], now: Date) async -> String? {
    guard let failure = await validate(leaf, intermediates, roots, RFC5280Policy(fixedExpiryValidationTime: now)) else { return nil }
    if now > leaf.notValidAfter || now < leaf.notValidBefore {
      return await validate(leaf, intermediates, roots, RFC5280Policy.withValidityCheckDisabled())
    }
    return failure
  }

  private static func validate(_ leaf: Certificate, _ intermediates: [Certificate], _ roots: [Certificate], _ policy: RFC5280Policy) async
    -> String?
  {
    var verifier = Verifier(rootCertificates: CertificateStore(roots)) { policy }
    switch await verifier.validate(leaf: leaf, intermediates: CertificateStore(intermediates)) {
    case .validCertificate:
      return nil
    case .couldNotValidate(let failures):
      if let first = failures.first { return concise("\(first.policyFailureReason)") }
      return "no path from the certificate (issuer \(leaf.issuer)) to a certificate in ca_file"
    }
  }

  /// swift-certificates' reasons embed a whole `Certificate(…)` dump; keep its subject only:
  /// `RFC5280Policy: certificate "CN=…" is not yet valid`.
  static func concise(_ reason: String) -> String {
    guard let start = reason.firstRange(of: "Certificate Certificate("), let end = reason.ranges(of: "])").last,
      start.upperBound <= end.lowerBound,
      let subjectStart = reason[start.upperBound..<end.lowerBound].firstRange(of: "subject: \""),
      let subjectEnd = reason[subjectStart.upperBound...].firstIndex(of: "\"")
    else { return reason }
    let subject = reason[subjectStart.upperBound..<subjectEnd]
    return String(reason[..<start.lowerBound]) + "certificate \"\(subject)\"" + String(reason[end.upperBound...])
  }
}
