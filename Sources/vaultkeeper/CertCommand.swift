// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Curl
import Platform
import Systemd
import VaultKeeper

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

struct CertCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "cert", abstract: "Vault's TLS certificate ([certificate]).", subcommands: [CertCheck.self])
}

/// `vaultkeeper cert check`: the certificate files and the certificate Vault serves, as a
/// Monitoring Plugins check.
struct CertCheck: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "check",
    abstract: "Check the certificate files and the certificate Vault serves; Monitoring Plugins output and exit codes.",
    discussion: """
      Validates cert_file, key_file and ca_file as before a reload (key match, chain, validity, \
      names), reads the certificate [vault] serves on a fresh TLS connection (a handshake only, \
      no request), and compares the two. Exit 0 OK, 1 WARNING (inside warn_days, or Vault still \
      serves another certificate), 2 CRITICAL (the files must not be reloaded, or the served \
      certificate is expired, inside critical_days or fails verification), 3 UNKNOWN \
      (configuration error, no [certificate], or the served certificate cannot be read).
      """)

  @OptionGroup var config: ConfigOption

  func run() async throws {
    let loaded: Config
    do {
      loaded = try ConfigLoader().load(path: config.path)
    } catch {
      print("CERT UNKNOWN: \(error)")
      throw ExitCode(3)
    }
    guard let certificate = loaded.certificate else {
      print("CERT UNKNOWN: \(config.path): no [certificate] table")
      throw ExitCode(3)
    }
    let outcome = await Self.outcome(loaded, certificate)
    print(outcome.text)
    throw ExitCode(Int32(outcome.code))
  }

  /// Inspects the files and the served certificate now (also used by `vaultkeeper check`).
  static func outcome(_ loaded: Config, _ certificate: CertificateConfig) async -> CheckVerdict.Outcome {
    ProcessHardening.apply()  // Vault's private key is about to be read into this process
    let now = Date()
    let file = await CertificateInspector.inspectFiles(certificate, now: now)
    let served: Result<ServedCertificate, ServedCertificateError>?
    if loaded.vault.address.scheme == .https {
      served = await CurlServedCertificateSource(node: loaded.vault).servedCertificate()
    } else {
      served = nil
    }
    return CertificateCheck.evaluate(config: certificate, file: file, served: served, servedFrom: loaded.vault.name, now: now)
  }
}
