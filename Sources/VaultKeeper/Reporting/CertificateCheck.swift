// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The Monitoring Plugins verdict of `vaultkeeper cert check`: the certificate files and the
/// certificate Vault serves. Pure, so every combination is unit-tested.
///
/// CRITICAL: a problem with the files (they must not be reloaded), a served certificate that
/// fails verification, is expired, does not cover the names, or either inside critical_days.
/// WARNING: inside warn_days, or Vault still serves another certificate than the file's.
/// UNKNOWN: the served certificate could not be read (and nothing worse was found).
public enum CertificateCheck {
  public static func evaluate(config: CertificateConfig, file: CertificateVerdict, served: Result<ServedCertificate, ServedCertificateError>?,
    servedFrom: String, now: Date) -> CheckVerdict.Outcome
  {
    var findings: [(code: Int, text: String)] = []
    var perf: [String] = []
    let thresholds = "\(config.warnDays);\(config.criticalDays)"

    for problem in file.problems { findings.append((2, "file: \(problem)")) }
    if let leaf = file.leaf {
      let days = ExpiryLevel.daysLeft(notAfter: leaf.notAfter, now: now)
      perf.append("'file_days'=\(days);\(thresholds)")
      if let finding = expiryFinding("file", file.expiry, days: days) { findings.append(finding) }
    }

    switch served {
    case nil:
      break
    case .failure(let error)?:
      findings.append((3, "served: \(error)"))
    case .success(let cert)?:
      let days = ExpiryLevel.daysLeft(notAfter: cert.leaf.notAfter, now: now)
      perf.append("'served_days'=\(days);\(thresholds)")
      if let reason = cert.verificationError { findings.append((2, "served: the certificate Vault serves does not verify: \(reason)")) }
      let level = ExpiryLevel.of(notAfter: cert.leaf.notAfter, now: now, warnDays: config.warnDays, criticalDays: config.criticalDays)
      if level == .expired {
        findings.append((2, "served: Vault serves an expired certificate (expired \(CertificateTime.text(cert.leaf.notAfter)))"))
      } else if let finding = expiryFinding("served", level, days: days) {
        findings.append(finding)
      }
      if now < cert.leaf.notBefore {
        findings.append((2, "served: Vault serves a certificate that is not valid yet (not before \(CertificateTime.text(cert.leaf.notBefore)))"))
      }
      let missing = config.names.filter { !CertificateNames.covers($0, dnsNames: cert.leaf.dnsNames, ipAddresses: cert.leaf.ipAddresses) }
      if !missing.isEmpty { findings.append((2, "served: \(CertificateProblem.nameMismatch(missing: missing, sans: cert.leaf.subjectAlternativeNames))")) }
      if let leaf = file.leaf, leaf.sha256 != cert.leaf.sha256 {
        findings.append(
          (1, "Vault still serves the old certificate: served sha256 \(cert.leaf.sha256) (not after \(CertificateTime.text(cert.leaf.notAfter))), "
            + "file sha256 \(leaf.sha256) (not after \(CertificateTime.text(leaf.notAfter)))"))
      }
    }

    // UNKNOWN only stands when nothing is actually wrong; a real problem outranks it.
    let known = findings.map(\.code).filter { $0 != 3 }
    let worst = known.max() ?? (findings.isEmpty ? 0 : 3)
    var summary: String
    let topIndex = findings.firstIndex { $0.code == worst }
    if let topIndex {
      summary = findings[topIndex].text
      let others = findings.count - 1
      if others > 0 { summary += " (+\(others) more)" }
    } else if let leaf = file.leaf {
      let days = ExpiryLevel.daysLeft(notAfter: leaf.notAfter, now: now)
      summary = "\(leaf.subject) valid for \(days) more days" + (served == nil ? "" : ", Vault serves it")
    } else {
      summary = "no certificate"
    }
    var lines = ["CERT \(CheckVerdict.words[worst]): \(summary)" + (perf.isEmpty ? "" : " | " + perf.joined(separator: " "))]
    for (index, finding) in findings.enumerated() where index != topIndex {
      lines.append("\(CheckVerdict.words[finding.code]): \(finding.text)")
    }
    lines.append("file \(config.certFile):")
    if let leaf = file.leaf {
      lines += details(leaf, now: now)
      lines.append("  key: " + keyLine(file, config: config))
      lines.append("  chain: " + chainLine(file, config: config))
    } else {
      lines.append("  (no certificate)")
    }
    lines.append("served \(servedFrom):")
    switch served {
    case nil: lines.append("  (not checked: [vault] address is not https://)")
    case .failure(let error)?: lines.append("  (unavailable: \(error))")
    case .success(let cert)?:
      lines += details(cert.leaf, now: now)
      lines.append("  verification: " + (cert.verificationError.map { "FAILED: \($0)" } ?? "ok ([vault] ca_file and name)"))
      lines.append("  same as file: " + (file.leaf.map { $0.sha256 == cert.leaf.sha256 ? "yes" : "no" } ?? "unknown"))
    }
    return CheckVerdict.Outcome(code: worst, text: lines.joined(separator: "\n"))
  }

  private static func expiryFinding(_ source: String, _ level: ExpiryLevel?, days: Int) -> (code: Int, text: String)? {
    switch level {
    case .warning?: return (1, "\(source): the certificate expires in \(days) days")
    case .critical?: return (2, "\(source): the certificate expires in \(days) days")
    case .ok?, .expired?, nil: return nil  // expired is reported as a problem of its own
    }
  }

  static func details(_ facts: CertificateFacts, now: Date) -> [String] {
    [
      "  subject: \(facts.subject)",
      "  SANs: \(facts.subjectAlternativeNames.isEmpty ? "none" : facts.subjectAlternativeNames.joined(separator: ", "))",
      "  issuer: \(facts.issuer)",
      "  not before: \(CertificateTime.text(facts.notBefore))",
      "  not after: \(CertificateTime.text(facts.notAfter)) (\(remaining(facts.notAfter, now: now)))",
      "  sha256: \(facts.sha256)",
      "  serial: \(facts.serial)",
      "  key type: \(facts.keyType)",
    ]
  }

  private static func remaining(_ notAfter: Date, now: Date) -> String {
    let left = notAfter.timeIntervalSince(now)
    if left > 0 { return "\(Int(left / 86400)) days left" }
    return "expired \(Int(-left / 86400)) days ago"
  }

  private static func keyLine(_ verdict: CertificateVerdict, config: CertificateConfig) -> String {
    switch verdict.keyMatches {
    case true?: return "matches \(config.keyFile)"
    case false?: return "DOES NOT MATCH \(config.keyFile)"
    case nil: return "not checked (\(config.keyFile) could not be used)"
    }
  }

  private static func chainLine(_ verdict: CertificateVerdict, config: CertificateConfig) -> String {
    guard let ca = config.caFile else { return "not checked (no ca_file)" }
    switch verdict.chainValid {
    case true?:
      let more = verdict.intermediates.count
      return "validates to \(ca) (\(more) more certificate\(more == 1 ? "" : "s") in cert_file)"
    case false?: return "DOES NOT validate to \(ca)"
    case nil: return "not checked"
    }
  }
}
