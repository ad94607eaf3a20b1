// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The certificate duty's decisions as a value (issue #11): fed what happened, with the time it
/// happened (`NodeTime`), it answers the next thing to do and the journal lines to write. It
/// never reads a clock and does no I/O, so the whole sequence (change noticed, validated,
/// reloaded, proven served, expiry judged) runs in virtual time in the tests.
///
/// One input is handled to the end before the next: `received` starts it, and every answer
/// (`inspected`, `servedRead`, `reloaded`) advances it until the action is `.done`.
public struct CertificateDecider: Sendable {
  public struct Settings: Sendable, Equatable {
    public var certFile: String
    /// The node whose served certificate is compared (its name, for messages).
    public var node: String
    /// The reloader's summary (`systemd reload of vault.service`), for messages.
    public var reloader: String
    public var warnDays: Int
    public var criticalDays: Int
    public var verifyWindow: Duration
    /// The slow re-check (for messages: the loop runs the timer).
    public var checkInterval: Duration
    /// Fresh handshakes after a reload: the first wait, doubled up to `longestProbeWait`.
    public var firstProbeWait: Duration = .milliseconds(50)
    public var longestProbeWait: Duration = .seconds(1)

    public init(config: CertificateConfig, node: String, reloader: String) {
      certFile = config.certFile
      self.node = node
      self.reloader = reloader
      warnDays = config.warnDays
      criticalDays = config.criticalDays
      verifyWindow = config.verifyWindow
      checkInterval = config.checkInterval
    }
  }

  /// What sets the duty to work.
  public enum Input: Sendable {
    case watch(CertificateWatchEvent)
    /// The slow `check_interval` re-check.
    case tick
    /// inotify failed during the run (the reason): only the re-check timer is left.
    case inotifyFailed(String)
  }

  /// What the loop does next.
  public enum Action: Sendable, Equatable {
    /// Validate the files as they are now; hand the verdict to `inspected`.
    case validate
    /// Read the certificate Vault serves on a fresh connection, after waiting `after` (zero:
    /// at once); hand the result to `servedRead`.
    case probeServed(after: Duration)
    /// Ask the reloader once; hand the outcome to `reloaded`.
    case reload
    /// This input is handled: post `report` and wait for the next.
    case done
  }

  public struct Step: Sendable, Equatable {
    public var action: Action
    public var journal: [JournalEntry]

    init(_ action: Action, _ journal: [JournalEntry] = []) {
      self.action = action
      self.journal = journal
    }
  }

  /// Why the files are validated, which decides what follows.
  enum Purpose: Sendable, Equatable {
    /// The first read: compare with what Vault serves, reload if it differs.
    case initial
    /// A renewal: reload if valid.
    case renewal
    /// Readable again with the same bytes: clear the alert, nothing to reload.
    case readableAgain
    /// The slow re-check: like `initial`, but an unchanged refusal is not repeated.
    case recheck
  }

  struct Verification: Sendable {
    var expected: CertificateFacts
    /// When the reload was decided: the verification's elapsed time counts from here.
    var began: NodeTime
    var deadline: ContinuousClock.Instant
    var nextWait: Duration
    var lastServed: ServedCertificate?
    /// The reloader's own detail line (`job done`).
    var detail: String
  }

  enum Phase: Sendable {
    case idle
    case validating(Purpose)
    /// Comparing the served certificate with valid files (start-up, re-check).
    case comparing
    case reloading(expected: CertificateFacts, began: NodeTime)
    case verifying(Verification)
  }

  public let settings: Settings
  public private(set) var report = CertificateReport(state: .unknown)
  var phase = Phase.idle
  var verdict: CertificateVerdict?
  var fileMemory: ExpiryJudge.Memory?
  var servedMemory: ExpiryJudge.Memory?
  /// The last served-certificate read error said, so a lasting one is said once.
  var probeProblem: String?
  /// The file fingerprint a reload was last attempted for: a re-check retries it only after a
  /// failed reload; a renewal with other bytes starts afresh.
  var lastAttempt: String?

  public init(settings: Settings) {
    self.settings = settings
  }

  /// How the files are followed (`inotify`, or the re-check timer alone).
  public mutating func watching(_ mode: CertificateWatchMode) {
    report.watching = mode
  }

  /// Starts handling one input.
  public mutating func received(_ input: Input, at now: NodeTime) -> Step {
    switch input {
    case .watch(.initial):
      phase = .validating(.initial)
      return Step(.validate)
    case .watch(.renewed(let contents)):
      phase = .validating(.renewal)
      return Step(.validate, [JournalEntry(level: .info, message: "certificate files changed (\(contents.fingerprint.hex.prefix(16))…): checking them before reloading Vault")])
    case .watch(.unreadable(let failure)):
      phase = .idle
      report.state = .invalid
      report.problems = [failure.description]
      report.problemCodes = ["unreadable"]
      return Step(
        .done,
        [
          JournalEntry(
            level: .critical, message: "cannot read the certificate files (\(failure)): Vault is not reloaded and keeps its current certificate",
            id: .certificateInvalid, fields: ["certificate.problem": "unreadable"])
        ])
    case .watch(.readableAgain):
      phase = .validating(.readableAgain)
      return Step(.validate)
    case .tick:
      phase = .validating(.recheck)
      return Step(.validate)
    case .inotifyFailed(let reason):
      phase = .idle
      report.watching = .timer
      return Step(
        .done,
        [
          JournalEntry(
            level: .warning,
            message: "inotify stopped working (\(reason)): certificate renewals are now noticed only by the re-check every \(settings.checkIntervalText); restart or reload vaultkeeper to watch again",
            fields: ["certificate.watch": "timer"])
        ])
    }
  }

  /// The files' verdict (`CertificateInspector`), judged at `now`.
  public mutating func inspected(_ verdict: CertificateVerdict, at now: NodeTime) -> Step {
    guard case .validating(let purpose) = phase else { return Step(.done) }
    var journal: [JournalEntry] = []
    let previousProblems = report.problems
    self.verdict = verdict
    report.problems = verdict.problems.map(\.description)
    report.problemCodes = verdict.problems.map(\.code)
    report.fileSHA256 = verdict.leaf?.sha256
    report.fileNotAfter = verdict.leaf?.notAfter.timeIntervalSince1970
    report.fileSubject = verdict.leaf?.subject
    if !verdict.canReload {
      report.state = .invalid
      if purpose != .recheck || report.problems != previousProblems {
        journal.append(
          JournalEntry(
            level: .critical,
            message: "\(purpose == .renewal ? "renewed " : "")certificate in \(settings.certFile) is not usable, Vault is not reloaded: \(verdict.problemSummary)",
            id: .certificateInvalid,
            fields: ["certificate.problem": verdict.problems.map(\.code).joined(separator: ","), "certificate.file": settings.certFile]))
      }
    } else if report.state == .invalid || report.state == .unknown {
      report.state = .ok
    }
    if let leaf = verdict.leaf {
      let (level, entries) = judgeExpiry(leaf, source: .file, at: now)
      report.fileExpiry = level
      journal += entries
    }
    switch purpose {
    case .initial, .recheck:
      phase = .comparing
      return Step(.probeServed(after: .zero), journal)
    case .renewal:
      guard verdict.canReload, let leaf = verdict.leaf else { return finish(journal) }
      return startReload(leaf, at: now, journal)
    case .readableAgain:
      return finish(journal)
    }
  }

  /// What a fresh handshake showed (or why there was none), at `now`.
  public mutating func servedRead(_ result: Result<ServedCertificate, ServedCertificateError>, at now: NodeTime) -> Step {
    switch phase {
    case .comparing:
      return compared(result, at: now)
    case .verifying(var verification):
      if case .success(let served) = result {
        verification.lastServed = served
        if served.leaf.sha256 == verification.expected.sha256 { return verified(verification, at: now) }
      }
      if now.monotonic >= verification.deadline { return notServed(verification, at: now) }
      let wait = verification.nextWait
      verification.nextWait = min(wait * 2, settings.longestProbeWait)
      phase = .verifying(verification)
      return Step(.probeServed(after: wait))
    case .idle, .validating, .reloading:
      return Step(.done)
    }
  }

  /// The reloader's answer, at `now`.
  public mutating func reloaded(_ outcome: ReloadOutcome, at now: NodeTime) -> Step {
    guard case .reloading(let expected, let began) = phase else { return Step(.done) }
    var journal: [JournalEntry] = []
    report.lastReload = now.wall
    if !outcome.output.isEmpty {
      journal.append(JournalEntry(level: .info, message: "reload output: \(outcome.output)", fields: ["certificate.reload": settings.reloader]))
    }
    guard outcome.succeeded else {
      let result = CertificateReloadResult(outcome.result)
      report.state = .reloadFailed
      report.lastReloadResult = result
      report.reloads[result, default: 0] += 1
      journal.append(
        JournalEntry(
          level: .critical, message: "\(settings.reloader) failed (\(outcome.detail)): Vault keeps serving its current certificate",
          id: .certificateReloadFailed, fields: ["certificate.reload": settings.reloader]))
      return finish(journal)
    }
    phase = .verifying(
      Verification(
        expected: expected, began: began, deadline: now.monotonic.advanced(by: settings.verifyWindow), nextWait: settings.firstProbeWait,
        lastServed: nil, detail: outcome.detail))
    return Step(.probeServed(after: .zero), journal)
  }

  // MARK: - The steps' parts

  private mutating func finish(_ journal: [JournalEntry]) -> Step {
    phase = .idle
    return Step(.done, journal)
  }

  private mutating func startReload(_ leaf: CertificateFacts, at now: NodeTime, _ journal: [JournalEntry]) -> Step {
    lastAttempt = leaf.sha256
    phase = .reloading(expected: leaf, began: now)
    return Step(.reload, journal)
  }

  /// Start-up and re-check: if Vault does not serve the valid files' certificate (renewed while
  /// vaultkeeper was down, or an earlier reload failed), reload, once per file fingerprint and
  /// again only after a failed reload: a Vault that did not take the last reload of these very
  /// files will not take the next one either (the alert and STATUS stand).
  private mutating func compared(_ result: Result<ServedCertificate, ServedCertificateError>, at now: NodeTime) -> Step {
    switch result {
    case .failure(let error):
      report.servedError = error.message
      guard probeProblem != error.message else { return finish([]) }
      probeProblem = error.message
      return finish([
        JournalEntry(
          level: .warning, message: "cannot read the certificate Vault serves at \(settings.node): \(error.message)", id: .certificateProbeFailed)
      ])
    case .success(let served):
      probeProblem = nil
      var journal = record(served, at: now)
      guard let expected = verdict?.leaf, verdict?.canReload == true else { return finish(journal) }
      if served.leaf.sha256 == expected.sha256 {
        if report.state != .invalid { report.state = .ok }
        return finish(journal)
      }
      let failedBefore = report.lastReloadResult == .failed || report.lastReloadResult == .timedOut
      guard lastAttempt != expected.sha256 || failedBefore else { return finish(journal) }
      journal.append(
        JournalEntry(
          level: .notice,
          message: "Vault at \(settings.node) serves \(served.leaf.sha256.prefix(23))… but \(settings.certFile) holds \(expected.sha256.prefix(23))…: reloading Vault"))
      return startReload(expected, at: now, journal)
    }
  }

  private mutating func verified(_ verification: Verification, at now: NodeTime) -> Step {
    let leaf = verification.expected
    var journal = verification.lastServed.map { record($0, at: now) } ?? []
    report.state = .ok
    report.lastReloadResult = .succeeded
    report.reloads[.succeeded, default: 0] += 1
    let elapsed = verification.began.monotonic.duration(to: now.monotonic).milliseconds
    journal.append(
      JournalEntry(
        level: .notice,
        message: "Vault at \(settings.node) now serves the renewed certificate (\(leaf.subject), SHA-256 \(leaf.sha256.prefix(23))…, not after \(Self.stamp(leaf.notAfter))), \(elapsed) ms after the reload began (\(settings.reloader): \(verification.detail))",
        id: .certificateReloaded,
        fields: ["certificate.sha256": leaf.sha256, "certificate.not_after": Self.stamp(leaf.notAfter), "certificate.verify_ms": "\(elapsed)"]))
    return finish(journal)
  }

  private mutating func notServed(_ verification: Verification, at now: NodeTime) -> Step {
    let leaf = verification.expected
    let last = verification.lastServed
    var journal = last.map { record($0, at: now) } ?? []
    report.state = .notServed
    report.lastReloadResult = .notServed
    report.reloads[.notServed, default: 0] += 1
    let servedText = last.map { "\($0.leaf.sha256) (not after \(Self.stamp($0.leaf.notAfter)))" } ?? "nothing readable"
    journal.append(
      JournalEntry(
        level: .critical,
        message: "Vault at \(settings.node) still serves the old certificate \(settings.verifyWindowText) after \(settings.reloader): served \(servedText), expected \(leaf.sha256) (not after \(Self.stamp(leaf.notAfter)))",
        id: .certificateNotServed,
        fields: ["certificate.sha256": leaf.sha256, "certificate.served_sha256": last?.leaf.sha256 ?? ""]))
    return finish(journal)
  }

  /// The served certificate into the report, with its expiry judged.
  private mutating func record(_ served: ServedCertificate, at now: NodeTime) -> [JournalEntry] {
    report.servedSHA256 = served.leaf.sha256
    report.servedNotAfter = served.leaf.notAfter.timeIntervalSince1970
    report.servedError = served.verificationError
    let (level, journal) = judgeExpiry(served.leaf, source: .served, at: now)
    report.servedExpiry = level
    return journal
  }

  enum Source: String {
    case file
    case served
  }

  /// The expiry level, and an entry when `ExpiryJudge` says it is worth one (worse at once, the
  /// same once a day per source, better at once).
  private mutating func judgeExpiry(_ leaf: CertificateFacts, source: Source, at time: NodeTime) -> (ExpiryLevel, [JournalEntry]) {
    let now = Date(timeIntervalSince1970: time.wall)
    let memory = source == .file ? fileMemory : servedMemory
    let decision = ExpiryJudge.judge(
      notAfter: leaf.notAfter, now: now, warnDays: settings.warnDays, criticalDays: settings.criticalDays, last: memory)
    if source == .file { fileMemory = decision.memory } else { servedMemory = decision.memory }
    let days = ExpiryLevel.daysLeft(notAfter: leaf.notAfter, now: now)
    let what = source == .file ? "the certificate in \(settings.certFile)" : "the certificate Vault serves at \(settings.node)"
    let notAfter = Self.stamp(leaf.notAfter)
    let fields = [
      "certificate.source": source.rawValue, "certificate.expiry": "\(decision.level)", "certificate.not_after": notAfter,
      "certificate.days_left": "\(days)",
    ]
    switch decision.report {
    case .none:
      return (decision.level, [])
    case .improved:
      let text = "\(what) is \(decision.level == .ok ? "no longer close to expiry" : "now \(decision.level)"): \(days) days left (not after \(notAfter))"
      return (decision.level, [JournalEntry(level: .info, message: text, id: .certificateExpiring, fields: fields)])
    case .escalated, .reminder:
      let text =
        decision.level == .expired
        ? "\(what) EXPIRED at \(notAfter)"
        : "\(what) expires in \(days) days (not after \(notAfter); \(decision.level) below \(decision.level == .critical ? settings.criticalDays : settings.warnDays) days)"
      return (decision.level, [JournalEntry(level: decision.level >= .critical ? .critical : .warning, message: text, id: .certificateExpiring, fields: fields)])
    }
  }

  static func stamp(_ date: Date) -> String {
    date.formatted(.iso8601)
  }
}

extension CertificateDecider.Settings {
  var verifyWindowText: String { DurationParsing.format(verifyWindow) }
  var checkIntervalText: String { DurationParsing.format(checkInterval) }
}
