// SPDX-License-Identifier: Apache-2.0
/// The unseal sequence as a value: the loop reads the seal status and then performs the
/// commands this answers with (submit share *n*, reset), feeding every answer back. Shares go
/// one at a time as `UnsealPlanner` says; the decider adds holds, counts, backoff and the
/// journal lines, each logged once per episode where a condition persists.
extension NodeDecider {
  /// One unseal sequence under way.
  struct UnsealAttempt: Sendable {
    var request: UnsealRequest
    var started: ContinuousClock.Instant
    /// The latest seal status Vault gave.
    var status: SealStatus?
    /// Shares Vault took in this sequence.
    var submitted = 0
    /// Planner steps left: at most every share twice plus a reset per round; the planner
    /// normally ends far sooner.
    var stepsLeft: Int
    /// The share in flight and the status it went into (to tell a duplicate).
    var inFlight: (index: Int, before: SealStatus)?
  }

  enum UnsealCommand: Sendable, Equatable {
    /// Ask for the next step (`nextUnsealStep`), unless the task was cancelled.
    case proceed
    case submit(shareIndex: Int)
    case reset
    case finished(UnsealOutcome)
  }

  struct UnsealStep: Sendable, Equatable {
    var journal: [JournalEntry] = []
    var command: UnsealCommand
  }

  /// Starts a sequence; the loop reads the seal status next and hands it to `sealStatusRead`.
  mutating func unsealStarted(_ request: UnsealRequest, at now: NodeTime) {
    attempt = UnsealAttempt(request: request, started: now.monotonic, stepsLeft: (settings.keys?.count ?? 0) * 2 + 4)
  }

  mutating func sealStatusRead(_ result: Result<SealStatus, VaultError>) -> UnsealStep {
    switch result {
    case .success(let status):
      attempt?.status = status
      return UnsealStep(command: .proceed)
    case .failure(let error):
      var journal: [JournalEntry] = []
      if episodes.first(.sealStatusError) {
        journal.append(JournalEntry(OperatorEvent(level: .warning, message: "cannot read seal status of \(settings.node): \(error)", id: .unsealFailed)))
      }
      return finish(.failed, journal)
    }
  }

  /// The task was cancelled mid-sequence (shutdown, reload).
  mutating func unsealAbandoned() -> UnsealOutcome {
    attempt = nil
    return .undecided
  }

  /// The planner's next step for the latest status.
  mutating func nextUnsealStep(at now: NodeTime) -> UnsealStep {
    guard var current = attempt, let status = current.status, let keys = settings.keys, current.stepsLeft > 0 else { return finish(.undecided) }
    current.stepsLeft -= 1
    defer { if attempt != nil { attempt = current } }
    switch planner.next(status, now: now.monotonic) {
    case .unsealed:
      return finish(.unsealed)
    case .notInitialized:
      return finish(.waitingOnOperator)
    case .completing(let remaining, let why):
      if completion == nil { completion = Completion(reason: current.request.reason, shares: current.submitted, started: current.started) }
      var journal: [JournalEntry] = []
      if episodes.first(.completing) {
        journal.append(JournalEntry(level: .info, message: "vault at \(settings.node) \(why); no further shares for up to \(DurationParsing.humanize(remaining))"))
      }
      // Not waiting on an operator: looked at again at the fast interval.
      return finish(.undecided, journal)
    case .autoUnseal(let type):
      var journal: [JournalEntry] = []
      if episodes.first(.autoUnseal) {
        journal.append(JournalEntry(OperatorEvent(
          level: .notice,
          message: "vault at \(settings.node) uses the \(type) seal (auto-unseal): monitoring only, no key shares are ever submitted to it",
          id: .autoUnseal)))
      }
      return finish(.waitingOnOperator, journal)
    case .notEnoughShares(let have, let need):
      hold(.tooFewShares(have: have, need: need))
      var journal: [JournalEntry] = []
      if episodes.first(.tooFewShares) {
        journal.append(JournalEntry(OperatorEvent(
          level: .critical,
          message: "cannot unseal vault at \(settings.node): \(keys.origin) holds \(have) unseal key share\(have == 1 ? "" : "s") but the threshold is \(need)",
          id: .tooFewShares)))
      }
      return finish(.waitingOnOperator, journal)
    case .wait(_, let why):
      var journal: [JournalEntry] = []
      if episodes.first(.foreignProgress(nonce: status.nonce)) {
        journal.append(JournalEntry(OperatorEvent(
          level: .info,
          message: "\(why) on \(settings.node); leaving it alone for up to \(DurationParsing.format(settings.unseal.foreignProgressGrace))",
          id: .foreignProgress)))
      }
      return finish(.undecided, journal)
    case .reset(let why):
      return UnsealStep(
        journal: [JournalEntry(OperatorEvent(level: .warning, message: "resetting unseal progress on \(settings.node): \(why)", id: .foreignProgressReset))],
        command: .reset)
    case .submit(let index):
      completion = nil  // a new round: an earlier completion did not happen
      current.inFlight = (index, status)
      return UnsealStep(command: .submit(shareIndex: index))
    }
  }

  mutating func resetAnswered(_ result: Result<SealStatus, VaultError>) -> UnsealStep {
    switch result {
    case .success(let status):
      attempt?.status = status
      planner.forget()
      return UnsealStep(command: .proceed)
    case .failure(let error):
      var journal: [JournalEntry] = []
      if episodes.first(.resetError) {
        journal.append(JournalEntry(OperatorEvent(level: .error, message: "cannot reset unseal progress on \(settings.node): \(error)", id: .unsealFailed)))
      }
      return finish(.failed, journal)
    }
  }

  mutating func shareAnswered(_ result: Result<UnsealAnswer, VaultError>, at now: NodeTime) -> UnsealStep {
    guard var current = attempt, let inFlight = current.inFlight, let keys = settings.keys else { return finish(.undecided) }
    current.inFlight = nil
    attempt = current
    let (index, before) = inFlight
    let answer: UnsealAnswer
    switch result {
    case .success(let value):
      answer = value
    case .failure(let error):
      count("error")
      var journal: [JournalEntry] = []
      // Logged once per episode; the loop backs off like for a failing node until it works.
      if episodes.first(.submitError) {
        journal.append(JournalEntry(OperatorEvent(
          level: .error, message: "unseal of \(settings.node) failed: \(ShareRedaction.redact(error.description, keys))", id: .unsealFailed)))
      }
      return finish(.failed, journal)
    }
    switch answer {
    case .status(let after):
      current.submitted += 1
      attempt = current
      let duplicate = after.sealed && after.nonce == before.nonce && after.progress == before.progress && before.progress > 0
      count(duplicate ? "duplicate" : "success")
      planner.submitted(index, answer: after, now: now.monotonic)
      attempt?.status = after
      guard !after.sealed else { return UnsealStep(command: .proceed) }
      let elapsed = current.started.duration(to: now.monotonic)
      unsealSucceeded(at: now)
      unsealedByUs(mainPID: current.request.mainPID)
      episodes.sealEnded()
      var fields = ["vault.unseal_shares": "\(current.submitted)", "vault.unseal_ms": "\(elapsed.milliseconds)"]
      if let evidence = current.request.evidence { fields["vault.restart_evidence"] = evidence.rawValue }
      return finish(.unsealed, [JournalEntry(
        OperatorEvent(
          level: .notice,
          message: "unsealed vault at \(settings.node) (\(current.request.reason)) with \(current.submitted) share\(current.submitted == 1 ? "" : "s") in \(elapsed.milliseconds) ms",
          id: .unsealed),
        fields: fields)])
    case .wrongKey(let message):
      count("wrong_key")
      let backoff = wrongKey(at: now)
      return finish(.waitingOnOperator, [JournalEntry(
        OperatorEvent(
          level: .critical,
          message: "the unseal key shares in \(keys.origin) combine to a wrong key for vault at \(settings.node) "
            + "(Vault said: \(ShareRedaction.redact(message, keys))). Check that the shares belong to this cluster; next try in \(DurationParsing.format(backoff))",
          id: .wrongKey),
        state: .sealed)])
    }
  }

  private mutating func finish(_ outcome: UnsealOutcome, _ journal: [JournalEntry] = []) -> UnsealStep {
    attempt = nil
    return UnsealStep(journal: journal, command: .finished(outcome))
  }
}
