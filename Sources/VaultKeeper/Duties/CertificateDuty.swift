// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging

/// The certificate duty of `vaultkeeper run` (`[certificate]`): when certbot (or anyone)
/// renews Vault's certificate, validate the new files, reload Vault, and prove on a fresh TLS
/// connection that Vault serves the new certificate; besides, watch both certificates' expiry.
///
/// The pieces: `CertificateWatcher` (inotify, debounce, byte-identical gate) says when the
/// files changed; `CertificateInspector` says whether they may be loaded; a `VaultReloader`
/// (systemd, signal, command) reloads; a `ServedCertificateSource` shows what Vault serves;
/// `ExpiryJudge` decides which expiry states are worth an entry. This type sequences them.
public final class CertificateDuty: Sendable {
  public struct Context: Sendable {
    public var config: CertificateConfig
    public var node: NodeConfig
    public var board: StatusBoard
    public var heartbeats: Heartbeats
    public var logger: Logger
    public var reloader: any VaultReloader
    public var served: any ServedCertificateSource

    public init(config: CertificateConfig, node: NodeConfig, board: StatusBoard, heartbeats: Heartbeats, logger: Logger,
      reloader: any VaultReloader, served: any ServedCertificateSource)
    {
      self.config = config
      self.node = node
      self.board = board
      self.heartbeats = heartbeats
      self.logger = logger
      self.reloader = reloader
      self.served = served
    }
  }

  static let heartbeat = "certificate"

  public let context: Context

  public init(context: Context) {
    self.context = context
  }

  enum Input: Sendable {
    case watch(CertificateWatchEvent)
    case tick
    /// inotify failed during the run (the reason): only the re-check timer is left.
    case inotifyFailed(String)
  }

  struct State {
    var report = CertificateReport(state: .unknown)
    var verdict: CertificateVerdict?
    var fileMemory: ExpiryJudge.Memory?
    var servedMemory: ExpiryJudge.Memory?
    var probeProblem: String?
    /// The file fingerprint a failed reload or verification was last attempted for: the slow
    /// tick retries it, a renewal with other bytes starts afresh.
    var lastAttempt: String?
  }

  public func run() async {
    let config = context.config
    let files = CertificateFileSet(certificate: config.certFile, key: config.keyFile, ca: config.caFile)
    let (inputs, feed) = AsyncStream.makeStream(of: Input.self)
    var watcher = CertificateWatcher(files: files, recheckEvery: config.checkInterval)
    watcher.onInotifyFailure = { reason in feed.yield(.inotifyFailed(reason)) }
    var state = State()
    state.report.watching = .inotify
    let events: AsyncStream<CertificateWatchEvent>
    do {
      events = try watcher.events()
    } catch {
      state.report.watching = .timer
      context.logger.warning("\(error); re-checking the certificate files every \(DurationParsing.format(config.checkInterval)) instead")
      var polling = watcher
      polling.useInotify = false
      guard let fallback = try? polling.events() else {
        context.logger.error("cannot watch the certificate files at all: certificate renewals are not followed")
        return
      }
      events = fallback
    }
    await withTaskGroup(of: Void.self) { group in
      group.addTask {
        for await event in events { feed.yield(.watch(event)) }
        feed.finish()
      }
      group.addTask {
        while !Task.isCancelled {
          try? await Task.sleep(for: config.checkInterval)
          if !Task.isCancelled { feed.yield(.tick) }
        }
      }
      for await input in inputs {
        if Task.isCancelled { break }
        await handle(input, &state)
        await context.board.post(certificate: state.report)
        context.heartbeats.retire(Self.heartbeat)
      }
      group.cancelAll()
    }
    context.heartbeats.retire(Self.heartbeat)
  }

  private func handle(_ input: Input, _ state: inout State) async {
    // Each step is bounded (reload timeout, probes, the verify window): promise accordingly.
    let config = context.config
    context.heartbeats.promise(Self.heartbeat, within: config.reloadTimeout + config.verifyWindow + .seconds(60))
    switch input {
    case .watch(.initial):
      await inspect(&state, renewal: false)
      await compareServed(&state, retryReload: true)
    case .watch(.renewed(let contents)):
      context.logger.info("certificate files changed (\(contents.fingerprint.hex.prefix(16))…): checking them before reloading Vault")
      await inspect(&state, renewal: true)
      if state.verdict?.canReload == true { await reloadAndVerify(&state, started: .now) }
    case .watch(.unreadable(let failure)):
      state.report.state = .invalid
      state.report.problems = [failure.description]
      state.report.problemCodes = ["unreadable"]
      context.logger.critical(
        "cannot read the certificate files (\(failure)): Vault is not reloaded and keeps its current certificate",
        metadata: ["message_id": "\(MessageID.certificateInvalid.rawValue)", "certificate.problem": "unreadable"])
    case .watch(.readableAgain):
      await inspect(&state, renewal: false)
    case .inotifyFailed(let reason):
      state.report.watching = .timer
      context.logger.warning(
        "inotify stopped working (\(reason)): certificate renewals are now noticed only by the re-check every \(DurationParsing.format(config.checkInterval)); restart or reload vaultkeeper to watch again",
        metadata: ["certificate.watch": "timer"])
    case .tick:
      await inspect(&state, renewal: false, quiet: true)
      await compareServed(&state, retryReload: true)
    }
  }

  /// Validates the files as they are now and records the verdict; a failed check is a
  /// critical entry naming every problem (once per renewal or change of problems).
  private func inspect(_ state: inout State, renewal: Bool, quiet: Bool = false) async {
    let config = context.config
    let now = Date()
    let verdict = await CertificateInspector.inspectFiles(config, now: now)
    let previousProblems = state.report.problems
    state.verdict = verdict
    state.report.problems = verdict.problems.map(\.description)
    state.report.problemCodes = verdict.problems.map(\.code)
    state.report.fileSHA256 = verdict.leaf?.sha256
    state.report.fileNotAfter = verdict.leaf?.notAfter.timeIntervalSince1970
    state.report.fileSubject = verdict.leaf?.subject
    if !verdict.canReload {
      state.report.state = .invalid
      if renewal || !quiet || state.report.problems != previousProblems {
        context.logger.critical(
          "\(renewal ? "renewed " : "")certificate in \(config.certFile) is not usable, Vault is not reloaded: \(verdict.problemSummary)",
          metadata: [
            "message_id": "\(MessageID.certificateInvalid.rawValue)",
            "certificate.problem": "\(verdict.problems.map(\.code).joined(separator: ","))", "certificate.file": "\(config.certFile)",
          ])
      }
    } else if state.report.state == .invalid || state.report.state == .unknown {
      state.report.state = .ok
    }
    if let leaf = verdict.leaf {
      state.report.fileExpiry = judgeExpiry(leaf, source: "file", memory: &state.fileMemory, now: now)
    }
  }

  /// Looks at what Vault serves on a fresh connection. If it is not the certificate in the
  /// files while those are valid (renewed while vaultkeeper was down, or an earlier reload
  /// failed), Vault is reloaded: once per file fingerprint, again only after a failed reload.
  private func compareServed(_ state: inout State, retryReload: Bool) async {
    let now = Date()
    switch await context.served.servedCertificate() {
    case .success(let served):
      state.probeProblem = nil
      record(served, &state, now: now)
      guard let expected = state.verdict?.leaf?.sha256, state.verdict?.canReload == true else { return }
      if served.leaf.sha256 == expected {
        if state.report.state != .invalid { state.report.state = .ok }
        return
      }
      // Once per file fingerprint: a Vault that did not take the last reload of these very
      // files will not take the next one either (the alert and STATUS stand); a reload that
      // failed (polkit, a command) is retried on the next check.
      let failedBefore = state.report.lastReloadResult == .failed || state.report.lastReloadResult == .timedOut
      guard retryReload, state.lastAttempt != expected || failedBefore else { return }
      context.logger.notice(
        "Vault at \(context.node.name) serves \(served.leaf.sha256.prefix(23))… but \(context.config.certFile) holds \(expected.prefix(23))…: reloading Vault")
      await reloadAndVerify(&state, started: .now)
    case .failure(let error):
      state.report.servedError = error.message
      if state.probeProblem != error.message {
        state.probeProblem = error.message
        context.logger.warning(
          "cannot read the certificate Vault serves at \(context.node.name): \(error.message)",
          metadata: ["message_id": "\(MessageID.certificateProbeFailed.rawValue)"])
      }
    }
  }

  private func record(_ served: ServedCertificate, _ state: inout State, now: Date) {
    state.report.servedSHA256 = served.leaf.sha256
    state.report.servedNotAfter = served.leaf.notAfter.timeIntervalSince1970
    state.report.servedError = served.verificationError
    state.report.servedExpiry = judgeExpiry(served.leaf, source: "served", memory: &state.servedMemory, now: now)
  }

  /// Reloads Vault and proves the new certificate is served: fresh handshakes with back-off
  /// (50 ms doubling to 1 s) for `verify_window`.
  private func reloadAndVerify(_ state: inout State, started: ContinuousClock.Instant) async {
    let config = context.config
    guard let leaf = state.verdict?.leaf else { return }
    state.lastAttempt = leaf.sha256
    let outcome = await context.reloader.reload()
    state.report.lastReload = Date().timeIntervalSince1970
    if !outcome.output.isEmpty {
      context.logger.info("reload output: \(outcome.output)", metadata: ["certificate.reload": "\(context.reloader.summary)"])
    }
    guard outcome.succeeded else {
      state.report.state = .reloadFailed
      state.report.lastReloadResult = CertificateReloadResult(outcome.result)
      state.report.reloads[CertificateReloadResult(outcome.result), default: 0] += 1
      context.logger.critical(
        "\(context.reloader.summary) failed (\(outcome.detail)): Vault keeps serving its current certificate",
        metadata: ["message_id": "\(MessageID.certificateReloadFailed.rawValue)", "certificate.reload": "\(context.reloader.summary)"])
      return
    }
    var delay = Duration.milliseconds(50)
    var last: ServedCertificate?
    let deadline = ContinuousClock.now.advanced(by: config.verifyWindow)
    while !Task.isCancelled {
      if case .success(let served) = await context.served.servedCertificate() {
        last = served
        if served.leaf.sha256 == leaf.sha256 { break }
      }
      if ContinuousClock.now >= deadline { break }
      try? await Task.sleep(for: delay)
      delay = min(delay * 2, .seconds(1))
    }
    if Task.isCancelled { return }
    let now = Date()
    if let last { record(last, &state, now: now) }
    if let last, last.leaf.sha256 == leaf.sha256 {
      state.report.state = .ok
      state.report.lastReloadResult = .succeeded
      state.report.reloads[.succeeded, default: 0] += 1
      let elapsed = started.duration(to: .now)
      context.logger.notice(
        "Vault at \(context.node.name) now serves the renewed certificate (\(leaf.subject), SHA-256 \(leaf.sha256.prefix(23))…, not after \(Self.stamp(leaf.notAfter))), \(elapsed.milliseconds) ms after the reload began (\(context.reloader.summary): \(outcome.detail))",
        metadata: [
          "message_id": "\(MessageID.certificateReloaded.rawValue)", "certificate.sha256": "\(leaf.sha256)",
          "certificate.not_after": "\(Self.stamp(leaf.notAfter))", "certificate.verify_ms": "\(elapsed.milliseconds)",
        ])
      return
    }
    state.report.state = .notServed
    state.report.lastReloadResult = .notServed
    state.report.reloads[.notServed, default: 0] += 1
    let servedText = last.map { "\($0.leaf.sha256) (not after \(Self.stamp($0.leaf.notAfter)))" } ?? "nothing readable"
    context.logger.critical(
      "Vault at \(context.node.name) still serves the old certificate \(DurationParsing.format(config.verifyWindow)) after \(context.reloader.summary): served \(servedText), expected \(leaf.sha256) (not after \(Self.stamp(leaf.notAfter)))",
      metadata: [
        "message_id": "\(MessageID.certificateNotServed.rawValue)", "certificate.sha256": "\(leaf.sha256)",
        "certificate.served_sha256": "\(last?.leaf.sha256 ?? "")",
      ])
  }

  /// Logs an expiry state when `ExpiryJudge` says it is worth it; returns the level's name.
  private func judgeExpiry(_ leaf: CertificateFacts, source: String, memory: inout ExpiryJudge.Memory?, now: Date) -> ExpiryLevel {
    let config = context.config
    let decision = ExpiryJudge.judge(notAfter: leaf.notAfter, now: now, warnDays: config.warnDays, criticalDays: config.criticalDays, last: memory)
    memory = decision.memory
    let days = ExpiryLevel.daysLeft(notAfter: leaf.notAfter, now: now)
    let what = source == "file" ? "the certificate in \(config.certFile)" : "the certificate Vault serves at \(context.node.name)"
    let metadata: Logger.Metadata = [
      "message_id": "\(MessageID.certificateExpiring.rawValue)", "certificate.source": "\(source)",
      "certificate.expiry": "\(decision.level)", "certificate.not_after": "\(Self.stamp(leaf.notAfter))", "certificate.days_left": "\(days)",
    ]
    switch decision.report {
    case .none:
      break
    case .improved:
      context.logger.info("\(what) is \(decision.level == .ok ? "no longer close to expiry" : "now \(decision.level)"): \(days) days left (not after \(Self.stamp(leaf.notAfter)))", metadata: metadata)
    default:
      let text = decision.level == .expired
        ? "\(what) EXPIRED at \(Self.stamp(leaf.notAfter))"
        : "\(what) expires in \(days) days (not after \(Self.stamp(leaf.notAfter)); \(decision.level) below \(decision.level == .critical ? config.criticalDays : config.warnDays) days)"
      context.logger.log(level: decision.level >= .critical ? .critical : .warning, "\(text)", metadata: metadata)
    }
    return decision.level
  }

  static func stamp(_ date: Date) -> String {
    date.formatted(.iso8601)
  }
}
