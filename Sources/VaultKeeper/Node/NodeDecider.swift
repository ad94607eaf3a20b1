// SPDX-License-Identifier: Apache-2.0
/// Every decision about one node, as a value: fed events (a health answer, a share-count look,
/// evidence of a restart, the steps of an unseal) with the time they happened, it answers with
/// named results (journal lines, whether and why to unseal, the next poll delay, the report).
/// It performs no I/O and reads no clock; `NodeSupervisor`'s loop does both and feeds the
/// results back. The unseal sequence itself is in `NodeDecider+Unseal.swift`.
struct NodeDecider: Sendable {
  struct Settings: Sendable {
    /// The node's name in messages and reports (its address as written).
    var node: String
    var health: HealthConfig
    var unseal: UnsealConfig
    var keys: KeyShares?
  }

  /// Why the node is unsealed, and what showed a restart (the `vault.restart_evidence` field).
  struct UnsealRequest: Sendable, Equatable {
    var reason: String
    var evidence: SealJudge.Evidence?
    /// The Vault unit's main PID when known (0 otherwise), remembered with the success.
    var mainPID: Int
  }

  /// What a health answer means before any seal is dealt with.
  struct HealthAnswerDecision: Sendable, Equatable {
    var journal: [JournalEntry]
    /// Read the seal status once to compare the threshold with our share count.
    var checkShareCount: Bool
  }

  enum SealDecision: Sendable, Equatable {
    /// Not sealed: nothing to do.
    case notSealed
    /// Sealed, and left so for an operator (deliberate seal, wrong-key backoff, unseal off).
    case waitOnOperator([JournalEntry])
    case unseal(UnsealRequest)
  }

  /// How one pass over the node ends.
  enum CycleEnd: Sendable {
    /// We just unsealed it: look again at once and report what Vault says then, rather than
    /// the stale "sealed" answer (READY=1 and STATUS would otherwise say "sealed").
    case lookAgainNow
    /// Post the report (and the memory a reload carries over), then wait `delay` or a ring.
    case report(NodeReport, memory: NodeMemory, delay: Duration)
  }

  let settings: Settings
  let schedule: PollSchedule
  /// What survives a reload (kept by the board between configurations).
  private(set) var memory: NodeMemory
  var planner: UnsealPlanner
  private(set) var failures = FailureTracker()
  var episodes = EpisodeLog()
  /// The node took a full set of our shares and finishes the unseal itself (a Raft node
  /// completing its join): reported as *unsealed* when the node is next seen unsealed.
  var completion: Completion?
  /// Unseal attempts that failed on an error (not a wrong key) in a row.
  private(set) var unsealErrors = 0
  /// The unseal sequence under way, if any.
  var attempt: UnsealAttempt?

  struct Completion: Sendable, Equatable {
    var reason: String
    var shares: Int
    var started: ContinuousClock.Instant
  }

  /// `memory`: what the node's previous duty left (a reload), nil at start-up.
  init(settings: Settings, memory: NodeMemory?, now: NodeTime) {
    self.settings = settings
    self.schedule = PollSchedule(settings.health)
    var carried = memory ?? NodeMemory(
      judge: SealJudge(after: settings.unseal.after), previous: nil, hold: nil,
      report: NodeReport(address: settings.node, state: .unknown, since: now.wall, lastCheck: 0), wrongKeyUntil: nil, wrongKeyCount: 0)
    carried.judge.after = settings.unseal.after
    // A reload is how an operator installs corrected keys: give them a try at once instead of
    // waiting out a wrong-key backoff earned by the old ones.
    carried.wrongKeyUntil = nil
    carried.wrongKeyCount = 0
    if carried.hold == .wrongKey { carried.hold = nil }
    self.memory = carried
    self.planner = UnsealPlanner(shareCount: settings.keys?.count ?? 0, foreignProgressGrace: settings.unseal.foreignProgressGrace)
  }

  /// Evidence from outside the health checks: the server closed our kept-alive connection, or
  /// systemd reported another main PID for the unit.
  mutating func notice(_ evidence: SealJudge.Evidence) {
    memory.judge.notice(evidence)
  }

  /// A health answer: failure accounting, a Raft join's completion, the transition line.
  mutating func healthAnswered(_ observation: HealthObservation, at now: NodeTime) -> HealthAnswerDecision {
    let state = observation.state
    let previous = memory.previous
    let step = failures.record(
      state, previous: previous, now: now.monotonic, reconnectWindow: schedule.reconnectWindow, errorAfter: settings.health.unreachableErrorAfter)
    var journal: [JournalEntry] = []
    let completed = state.isHealthy ? completion : nil
    if state != .sealed { completion = nil }
    if let completed {
      // Our shares did it, once the node had finished its Raft join.
      let elapsed = completed.started.duration(to: now.monotonic)
      unsealSucceeded(at: now)
      journal.append(JournalEntry(
        OperatorEvent(
          level: .notice,
          message: "unsealed vault at \(settings.node) (\(completed.reason)) with \(completed.shares) share\(completed.shares == 1 ? "" : "s") in \(elapsed.milliseconds) ms (it finished its Raft join first)",
          id: .unsealed),
        fields: ["vault.unseal_shares": "\(completed.shares)", "vault.unseal_ms": "\(elapsed.milliseconds)"]))
    }
    if let event = TransitionReport.event(
      node: settings.node, previous: previous, observation: observation, consecutiveFailures: step.consecutiveFailures, escalate: step.escalate)
    {
      journal.append(JournalEntry(event, state: state, version: observation.version))
    }
    // Says at start-up, not at the next seal, when the key file cannot reach the threshold:
    // seal-status reports `t` whether sealed or not.
    let checkShareCount = !state.isFailure && state != .uninitialized && settings.unseal.enabled && settings.keys != nil
      && episodes.first(.shareCountChecked)
    return HealthAnswerDecision(journal: journal, checkShareCount: checkShareCount)
  }

  /// The start-up share-count look answered (nil when it failed: nothing to say then).
  mutating func shareCountRead(_ status: SealStatus?) -> [JournalEntry] {
    guard let keys = settings.keys, let status, status.acceptsUnsealShares, status.threshold > keys.count else { return [] }
    guard episodes.first(.tooFewShares) else { return [] }
    return [JournalEntry(OperatorEvent(
      level: .critical,
      message: "\(keys.origin) holds \(keys.count) unseal key share\(keys.count == 1 ? "" : "s") but vault at \(settings.node) needs \(status.threshold): vaultkeeper cannot unseal it on its own",
      id: .tooFewShares))]
  }

  /// Whether to unseal the node just observed, and why. `mainPID`: the Vault unit's main PID
  /// when known, 0 otherwise.
  mutating func judgeSeal(_ observation: HealthObservation, mainPID: Int, at now: NodeTime) -> SealDecision {
    guard observation.state == .sealed else {
      if memory.hold != nil && !observation.state.isFailure { memory.hold = nil }
      planner.forget()
      episodes.sealEnded()
      return .notSealed
    }
    guard settings.unseal.enabled, settings.keys != nil else { return .waitOnOperator([]) }
    let verdict = memory.judge.verdict(sealedObservation: observation, mainPID: mainPID)
    let reason: String
    switch verdict {
    case .deliberate:
      guard memory.hold == nil else { return .waitOnOperator([]) }
      memory.hold = .deliberateSeal
      return .waitOnOperator([JournalEntry(
        OperatorEvent(
          level: .critical,
          message: "vault at \(settings.node) was sealed while its process kept running: treating it as a deliberate seal and leaving it sealed. "
            + "To unseal it anyway run `vaultkeeper unseal`; a restart of Vault is unsealed automatically",
          id: .deliberateSeal),
        state: .sealed)])
    case .startup: reason = "sealed at start-up"
    case .restart: reason = "sealed after a restart"
    case .always: reason = "sealed (unseal.after = always)"
    }
    if let until = memory.wrongKeyUntil, until > now.monotonic { return .waitOnOperator([]) }
    if memory.hold == .deliberateSeal { memory.hold = nil }
    let evidence = verdict == .restart ? memory.judge.restartEvidence(mainPID: mainPID) : nil
    return .unseal(UnsealRequest(reason: reason, evidence: evidence, mainPID: mainPID))
  }

  /// The pass over the node is done: remember what was seen, and say what to report and how
  /// long to wait (`jitter` in 0...1, drawn by the loop).
  mutating func cycleEnded(_ observation: HealthObservation, mainPID: Int, outcome: UnsealOutcome, at now: NodeTime, jitter: Double) -> CycleEnd {
    let previous = memory.previous
    memory.judge.observe(observation, mainPID: mainPID)
    memory.previous = observation.state
    if outcome == .unsealed { return .lookAgainNow }

    var report = memory.report
    if report.state != observation.state { report.since = now.wall }
    report.state = observation.state
    report.lastCheck = now.wall
    report.latencyMilliseconds = Double(observation.latency.milliseconds)
    report.version = observation.version ?? report.version
    report.clusterName = observation.clusterName ?? report.clusterName
    report.clusterID = observation.clusterID ?? report.clusterID
    report.problem = observation.problem
    report.hold = memory.hold
    report.consecutiveFailures = failures.consecutiveFailures
    memory.report = report

    unsealErrors = outcome == .failed ? unsealErrors + 1 : 0
    // A node that answers health but fails unseal requests backs off like a failing one, so a
    // persistent 5xx is not hammered (or logged) four times a second.
    let situation = outcome == .failed
      ? PollSchedule.Situation(state: .protocolError, consecutiveFailures: unsealErrors)
      : PollSchedule.Situation(
        state: observation.state, changed: previous != observation.state, consecutiveFailures: max(failures.backoffFailures, 1),
        sinceConnectionLoss: failures.sinceConnectionLoss(now: now.monotonic), waitingOnOperator: outcome == .waitingOnOperator)
    return .report(report, memory: memory, delay: schedule.nextDelay(situation, jitter: jitter))
  }

  /// Our shares opened the node: every hold and backoff ends with it.
  mutating func unsealSucceeded(at now: NodeTime) {
    memory.report.lastUnsealTime = now.wall
    memory.hold = nil
    memory.wrongKeyUntil = nil
    memory.wrongKeyCount = 0
  }

  /// Counts an unseal request by its result (`unseal_attempts` in the report and metrics).
  mutating func count(_ result: String) {
    memory.report.unsealAttempts[result, default: 0] += 1
  }

  mutating func hold(_ reason: HoldReason) { memory.hold = reason }

  /// A wrong key: hold, and wait `wrong_key_backoff`, doubling per wrong key up to 16×.
  mutating func wrongKey(at now: NodeTime) -> Duration {
    memory.wrongKeyCount += 1
    let wait = settings.unseal.wrongKeyBackoff * (1 << min(memory.wrongKeyCount - 1, 4))
    memory.wrongKeyUntil = now.monotonic.advanced(by: wait)
    memory.hold = .wrongKey
    planner.forget()
    return wait
  }

  /// Our own unseal request was answered "unsealed": as good as seeing the node unsealed.
  mutating func unsealedByUs(mainPID: Int) { memory.judge.unsealedByUs(mainPID: mainPID) }
}
