// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Synchronization

@testable import VaultKeeper

/// Certificates as the duty sees them: facts with a recognisable fingerprint per tag.
enum TestCertificates {
  /// `AA:AA:…` (32 bytes) for tag 0xAA.
  static func fingerprint(_ tag: UInt8) -> String {
    let byte = String(tag, radix: 16, uppercase: true)
    return Array(repeating: byte.count == 1 ? "0" + byte : byte, count: 32).joined(separator: ":")
  }

  static func facts(_ tag: UInt8, notAfter: Date) -> CertificateFacts {
    CertificateFacts(
      subject: "CN=vault.example.com", issuer: "CN=Test CA", dnsNames: ["vault.example.com"], ipAddresses: [],
      notBefore: notAfter.addingTimeInterval(-90 * 86400), notAfter: notAfter, sha256: fingerprint(tag), serial: "0\(tag % 10)", keyType: "P256")
  }

  /// What the watcher would hand over for files with these bytes.
  static func contents(_ tag: UInt8) -> CertificateFileContents {
    CertificateFileContents(
      files: CertificateFileSet(certificate: CertificateRig.config.certFile, key: CertificateRig.config.keyFile),
      certificate: Array(repeating: tag, count: 64), key: SecretBytes([tag, tag]))
  }
}

/// Vault's TLS listener and its reload, as the duty reaches them: what a fresh handshake shows,
/// and what a reload does to it. Counts probes and reloads.
final class StubVaultTLS: ServedCertificateSource, VaultReloader {
  enum OnReload: Sendable {
    /// Vault loads the files' certificate; handshakes show it after `probes` more probes.
    case takes(afterProbes: Int)
    /// The job finishes `done` but Vault keeps serving the old certificate.
    case ignores
    /// The reloader fails (polkit, a command's exit status).
    case fails(ReloadOutcome.Result, String)
    /// The reload never answers until cancelled.
    case hangs
  }

  struct State: Sendable {
    var serving: CertificateFacts
    /// What a taking reload loads: the files' certificate.
    var files: CertificateFacts
    var onReload: OnReload = .takes(afterProbes: 0)
    var pending: (facts: CertificateFacts, probes: Int)?
    var probes = 0
    var reloads = 0
    var probeError: String?
  }

  let state: Mutex<State>
  var summary: String { "systemd reload of vault.service" }
  /// One element each time a reload begins, so a test can wait for it.
  let reloadsBegun: AsyncStream<Void>
  private let reloadBegan: AsyncStream<Void>.Continuation

  init(serving: CertificateFacts) {
    state = Mutex(State(serving: serving, files: serving))
    (reloadsBegun, reloadBegan) = AsyncStream.makeStream(of: Void.self)
  }

  func update(_ change: (inout State) -> Void) { state.withLock { change(&$0) } }
  var current: State { state.withLock { $0 } }

  func servedCertificate() async -> Result<ServedCertificate, ServedCertificateError> {
    state.withLock { s in
      s.probes += 1
      if let error = s.probeError { return .failure(ServedCertificateError(error)) }
      if let (facts, probes) = s.pending {
        if probes <= 0 {
          s.serving = facts
          s.pending = nil
        } else {
          s.pending = (facts, probes - 1)
        }
      }
      return .success(ServedCertificate(leaf: s.serving))
    }
  }

  func reload() async -> ReloadOutcome {
    let behaviour = state.withLock { s -> OnReload in
      s.reloads += 1
      if case .takes(let probes) = s.onReload { s.pending = (s.files, probes) }
      return s.onReload
    }
    reloadBegan.yield()
    switch behaviour {
    case .takes, .ignores:
      return ReloadOutcome(result: .succeeded, detail: "job done", duration: .milliseconds(20))
    case .fails(let result, let detail):
      return ReloadOutcome(result: result, detail: detail, output: "reload broke", duration: .milliseconds(20))
    case .hangs:
      let (stream, _) = AsyncStream.makeStream(of: Void.self)
      for await _ in stream {}  // ends only when the task is cancelled
      return ReloadOutcome(result: .timedOut, detail: "cancelled", duration: .zero)
    }
  }
}

/// The certificate files as the inspector judges them, set by the test.
final class StubFiles: Sendable {
  private let verdict: Mutex<CertificateVerdict>
  init(_ verdict: CertificateVerdict) { self.verdict = Mutex(verdict) }
  var current: CertificateVerdict {
    get { verdict.withLock { $0 } }
    set { verdict.withLock { $0 = newValue } }
  }
}

/// The certificate duty wired to stub ports, a virtual clock, a recording log and a real board.
struct CertificateRig {
  static let config = CertificateConfig(
    certFile: "/etc/vault/tls/fullchain.pem", keyFile: "/etc/vault/tls/privkey.pem", names: ["vault.example.com"],
    reload: .systemd(unit: "vault.service"))

  let clock = VirtualDutyClock(mode: .jumping)
  let log = RecordingLog()
  let vault: StubVaultTLS
  /// What the files hold now, as the inspector would judge them.
  let files: StubFiles
  let board: StatusBoard
  let heartbeats = Heartbeats()
  let duty: CertificateDuty

  /// Files and Vault both hold certificate `tag`, ending `daysLeft` days from the clock's start.
  init(tag: UInt8 = 0xA1, daysLeft: Double = 60, config: CertificateConfig = Self.config) {
    let start = clock.now()
    let facts = TestCertificates.facts(tag, notAfter: Date(timeIntervalSince1970: start.wall + daysLeft * 86400))
    vault = StubVaultTLS(serving: facts)
    let files = StubFiles(CertificateVerdict(leaf: facts))
    self.files = files
    board = StatusBoard(configPath: "/dev/null", notifier: SilentNotifier(), stateFile: nil, metricsDirectory: nil, logger: log.logger)
    let address: VaultAddress
    switch VaultAddress.parse("https://vault.example.com:8200") {
    case .success(let parsed): address = parsed
    case .failure(let error): fatalError("test address: \(error)")
    }
    let context = CertificateDuty.Context(
      config: config, node: NodeConfig(address: address), board: board, heartbeats: heartbeats, logger: log.logger, reloader: vault,
      served: vault)
    duty = CertificateDuty(context: context, clock: clock, inspect: { _, _ in files.current })
  }

  /// certbot wrote certificate `tag` (valid, `daysLeft` days from now); Vault has not loaded it.
  func renewFiles(to tag: UInt8, daysLeft: Double = 90, problems: [CertificateProblem] = []) -> CertificateFacts {
    let facts = TestCertificates.facts(tag, notAfter: Date(timeIntervalSince1970: clock.now().wall + daysLeft * 86400))
    files.current = CertificateVerdict(leaf: facts, problems: problems)
    if problems.isEmpty { vault.update { $0.files = facts } }
    return facts
  }

  var posted: CertificateReport? {
    get async { await board.snapshot().certificate }
  }
}
