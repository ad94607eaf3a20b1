#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import Synchronization

/// systemd's view of the node's unit, updated by the D-Bus watcher task.
public final class UnitView: Sendable {
  private let snapshot = Mutex<UnitSnapshot?>(nil)
  public init() {}
  public var current: UnitSnapshot? { snapshot.withLock { $0 } }
  public func update(_ value: UnitSnapshot?) { snapshot.withLock { $0 = value } }
  /// The main PID while the unit runs, 0 when unknown.
  public var mainPID: Int { current.map { $0.activeState == "active" || $0.activeState == "reloading" ? $0.mainPID : 0 } ?? 0 }
}

/// Watches one Vault node and unseals it: the health duty and the unseal duty for that node,
/// in one loop so the two never race each other over the same node.
public final class NodeSupervisor: Sendable {
  public struct Context: Sendable {
    public var node: NodeConfig
    public var health: HealthConfig
    public var unseal: UnsealConfig
    public var keys: KeyShares?
    public var client: VaultClient
    public var board: StatusBoard
    public var heartbeats: Heartbeats
    public var doorbell: Doorbell
    public var unitView: UnitView
    public var logger: Logger

    public init(node: NodeConfig, health: HealthConfig, unseal: UnsealConfig, keys: KeyShares?, client: VaultClient, board: StatusBoard,
      heartbeats: Heartbeats, doorbell: Doorbell, unitView: UnitView, logger: Logger)
    {
      self.node = node
      self.health = health
      self.unseal = unseal
      self.keys = keys
      self.client = client
      self.board = board
      self.heartbeats = heartbeats
      self.doorbell = doorbell
      self.unitView = unitView
      self.logger = logger
    }
  }

  let context: Context
  /// Mutable loop state, touched only by `run()`'s task (the Mutex makes that checkable).
  private let loopState: Mutex<LoopState>

  struct LoopState: Sendable {
    var memory: NodeMemory
    var planner: UnsealPlanner
    var consecutiveFailures = 0
    var connectionLostAt: ContinuousClock.Instant?
    /// Start of the current run of failures (unreachable or protocol errors).
    var failingSince: ContinuousClock.Instant?
    /// The "still unreachable" error was logged for the current outage.
    var escalated = false
    /// Failures after the reconnect window, for the exponential backoff.
    var backoffFailures = 0
    /// Unseal attempts that failed on an error (not a wrong key) in a row.
    var unsealErrors = 0
    var loggedOnce: Set<String> = []
    /// The node took a full set of our shares and finishes the unseal itself (a Raft node
    /// completing its join): why we unsealed, how many shares, since when. Reported as
    /// *unsealed* when the node is next seen unsealed.
    var completing: (reason: String, shares: Int, started: ContinuousClock.Instant)?
  }

  public init(context: Context, memory: NodeMemory?) {
    self.context = context
    let now = Date().timeIntervalSince1970
    let memory = memory ?? NodeMemory(
      judge: SealJudge(after: context.unseal.after), previous: nil, hold: nil,
      report: NodeReport(address: context.node.name, state: .unknown, since: now, lastCheck: 0), wrongKeyUntil: nil, wrongKeyCount: 0)
    var adjusted = memory
    adjusted.judge.after = context.unseal.after
    // A reload is how an operator installs corrected keys: give them a try at once instead of
    // waiting out a wrong-key backoff earned by the old ones.
    adjusted.wrongKeyUntil = nil
    adjusted.wrongKeyCount = 0
    if adjusted.hold == .wrongKey { adjusted.hold = nil }
    loopState = Mutex(LoopState(memory: adjusted, planner: UnsealPlanner(shareCount: context.keys?.count ?? 0, foreignProgressGrace: context.unseal.foreignProgressGrace)))
  }

  private var name: String { "node \(context.node.name)" }

  private func log(_ event: OperatorEvent, _ extra: Logger.Metadata = [:], state: NodeState? = nil, version: String? = nil) {
    var metadata: Logger.Metadata = ["message_id": "\(event.id.rawValue)", "vault.addr": "\(context.node.name)"]
    if let state { metadata["vault.state"] = "\(state.name)" }
    if let version { metadata["vault.version"] = "\(version)" }
    metadata.merge(extra) { _, new in new }
    context.logger.log(level: event.level, "\(event.message)", metadata: metadata)
  }

  /// Logs an event once per occurrence of `key` (cleared when the condition ends).
  private func logOnce(_ key: String, _ event: OperatorEvent, _ extra: Logger.Metadata = [:]) {
    let first = loopState.withLock { $0.loggedOnce.insert(key).inserted }
    if first { log(event, extra) }
  }

  private func clearOnce(_ prefix: String) {
    loopState.withLock { s in s.loggedOnce = s.loggedOnce.filter { !$0.hasPrefix(prefix) } }
  }

  public func run() async {
    let heartbeatName = name
    defer { context.heartbeats.retire(heartbeatName) }
    let slack = Duration.seconds(5)
    while !Task.isCancelled {
      context.heartbeats.promise(heartbeatName, within: context.node.timeout * 2 + slack)
      let observation = await context.client.health()
      if Task.isCancelled { break }
      var waitingOnOperator = false
      var unsealedNow = false
      var unsealErrored = false
      let pid = context.unitView.mainPID
      let reconnectWindow = PollSchedule(context.health).reconnectWindow
      let errorAfter = context.health.unreachableErrorAfter
      let (previous, failures, escalate) = loopState.withLock { s -> (NodeState?, Int, Bool) in
        let previous = s.memory.previous
        s.consecutiveFailures = observation.state.isFailure ? s.consecutiveFailures + 1 : 0
        var escalate = false
        if observation.state.isFailure {
          if previous?.isFailure != true { s.failingSince = s.failingSince ?? .now }
          // Only a lost connection (Vault restarting) earns the quick reconnect polling; a node
          // answering garbage or 5xx gets the ordinary backoff.
          if observation.state == .unreachable, previous != .unreachable { s.connectionLostAt = s.connectionLostAt ?? .now }
          if observation.state != .unreachable { s.connectionLostAt = nil }
          let outage = s.failingSince.map { $0.duration(to: .now) } ?? .zero
          if s.connectionLostAt == nil || outage >= reconnectWindow { s.backoffFailures += 1 }
          if !s.escalated, s.consecutiveFailures >= errorAfter, outage >= reconnectWindow {
            s.escalated = true
            escalate = true
          }
        } else {
          s.connectionLostAt = nil
          s.failingSince = nil
          s.escalated = false
          s.backoffFailures = 0
        }
        return (previous, s.consecutiveFailures, escalate)
      }
      let completed = loopState.withLock { s in
        defer { if observation.state != .sealed { s.completing = nil } }
        return observation.state.isHealthy ? s.completing : nil
      }
      if let completed {
        // Our shares did it, once the node had finished its Raft join.
        let elapsed = completed.started.duration(to: .now)
        loopState.withLock { s in
          s.memory.report.lastUnsealTime = Date().timeIntervalSince1970
          s.memory.hold = nil
          s.memory.wrongKeyUntil = nil
          s.memory.wrongKeyCount = 0
        }
        log(OperatorEvent(
          level: .notice,
          message: "unsealed vault at \(context.node.name) (\(completed.reason)) with \(completed.shares) share\(completed.shares == 1 ? "" : "s") in \(elapsed.milliseconds) ms (it finished its Raft join first)",
          id: .unsealed), ["vault.unseal_shares": "\(completed.shares)", "vault.unseal_ms": "\(elapsed.milliseconds)"])
      }
      if let event = TransitionReport.event(
        node: context.node.name, previous: previous, observation: observation, consecutiveFailures: failures,
        escalate: escalate)
      {
        log(event, state: observation.state, version: observation.version)
      }

      if !observation.state.isFailure, observation.state != .uninitialized {
        await checkShareCountOnce()
      }
      if observation.state == .sealed {
        context.heartbeats.promise(heartbeatName, within: context.node.timeout * Double(max(context.keys?.count ?? 0, 1) * 2 + 4) + slack)
        (waitingOnOperator, unsealedNow, unsealErrored) = await handleSealed(observation, pid: pid)
      } else {
        loopState.withLock { s in
          if s.memory.hold != nil && !observation.state.isFailure { s.memory.hold = nil }
          s.planner.forget()
        }
        clearOnce("sealed.")
      }
      loopState.withLock { s in
        s.memory.judge.observe(observation, mainPID: pid)
        s.memory.previous = observation.state
      }
      // Just unsealed: look again at once and report what Vault says now, rather than publishing
      // the stale "sealed" answer (READY=1 and STATUS would otherwise say "sealed").
      if unsealedNow { continue }
      await publish(observation)

      let situation = loopState.withLock { s in
        s.unsealErrors = unsealErrored ? s.unsealErrors + 1 : 0
        // A node that answers health but fails unseal requests backs off like a failing one,
        // so a persistent 5xx is not hammered (or logged) four times a second.
        return unsealErrored
          ? PollSchedule.Situation(state: .protocolError, consecutiveFailures: s.unsealErrors)
          : PollSchedule.Situation(
            state: observation.state, changed: previous != observation.state, consecutiveFailures: max(s.backoffFailures, 1),
            sinceConnectionLoss: s.connectionLostAt.map { $0.duration(to: .now) }, waitingOnOperator: waitingOnOperator)
      }
      let delay = PollSchedule(context.health).nextDelay(situation, jitter: Double.random(in: 0...1))
      context.heartbeats.promise(heartbeatName, within: delay + slack)
      await context.doorbell.wait(for: delay)
    }
  }

  /// One look and, when `unseal` is set and the node is sealed, one unseal regardless of how it
  /// got sealed (the operator's override for a deliberate seal). Used by `vaultkeeper unseal`.
  public func checkOnce(unseal: Bool) async -> (before: HealthObservation, after: HealthObservation, unsealed: Bool) {
    let first = await context.client.health()
    guard unseal, first.state == .sealed, let keys = context.keys else { return (first, first, false) }
    let (_, unsealed, _) = await self.unseal(keys: keys, reason: "requested by `vaultkeeper unseal`")
    return (first, await context.client.health(), unsealed)
  }

  /// The server closed our kept-alive connection (a Vault restart does that): evidence for the
  /// seal judgement, and a reason to look now.
  public func connectionLost() {
    loopState.withLock { $0.memory.judge.notice(.connectionClosed) }
    context.doorbell.ring()
  }

  /// systemd reports another main PID for the Vault unit: evidence of a new process, look now.
  public func unitMainPIDChanged() {
    loopState.withLock { $0.memory.judge.notice(.newMainPID) }
    context.doorbell.ring()
  }

  private func publish(_ observation: HealthObservation) async {
    let now = Date().timeIntervalSince1970
    let (report, memory) = loopState.withLock { s -> (NodeReport, NodeMemory) in
      var r = s.memory.report
      if r.state != observation.state { r.since = now }
      r.state = observation.state
      r.lastCheck = now
      r.latencyMilliseconds = Double(observation.latency.milliseconds)
      r.version = observation.version ?? r.version
      r.clusterName = observation.clusterName ?? r.clusterName
      r.clusterID = observation.clusterID ?? r.clusterID
      r.problem = observation.problem
      r.hold = s.memory.hold
      r.consecutiveFailures = s.consecutiveFailures
      s.memory.report = r
      return (r, s.memory)
    }
    await context.board.post(report, memory: memory)
  }

  // MARK: - Unsealing

  /// Returns (waiting on an operator, unsealed now, failed on an error).
  private func handleSealed(_ observation: HealthObservation, pid: Int) async -> (Bool, Bool, Bool) {
    guard context.unseal.enabled, let keys = context.keys else { return (true, false, false) }
    let (verdict, evidence, held, wrongKeyUntil) = loopState.withLock { s in
      (s.memory.judge.verdict(sealedObservation: observation, mainPID: pid), s.memory.judge.restartEvidence(mainPID: pid), s.memory.hold,
        s.memory.wrongKeyUntil)
    }
    if verdict == .deliberate {
      if held == nil {
        loopState.withLock { $0.memory.hold = .deliberateSeal }
        log(OperatorEvent(
          level: .critical,
          message: "vault at \(context.node.name) was sealed while its process kept running: treating it as a deliberate seal and leaving it sealed. "
            + "To unseal it anyway run `vaultkeeper unseal`; a restart of Vault is unsealed automatically",
          id: .deliberateSeal), state: .sealed)
      }
      return (true, false, false)
    }
    if let until = wrongKeyUntil, until > .now {
      return (true, false, false)
    }
    if held == .deliberateSeal {
      loopState.withLock { $0.memory.hold = nil }
    }
    let reason: String
    switch verdict {
    case .startup: reason = "sealed at start-up"
    case .restart: reason = "sealed after a restart"
    case .always: reason = "sealed (unseal.after = always)"
    case .deliberate: reason = ""
    }
    return await unseal(keys: keys, reason: reason, evidence: verdict == .restart ? evidence : nil, pid: pid)
  }

  /// Says at start-up, not at the next seal, when the key file cannot reach the threshold:
  /// seal-status reports `t` whether sealed or not.
  private func checkShareCountOnce() async {
    guard context.unseal.enabled, let keys = context.keys else { return }
    guard loopState.withLock({ $0.loggedOnce.insert("startup.sharecount").inserted }) else { return }
    guard let status = try? await context.client.sealStatus(), status.acceptsUnsealShares, status.threshold > keys.count else { return }
    logOnce("sealed.few", OperatorEvent(
      level: .critical,
      message: "\(keys.origin) holds \(keys.count) unseal key share\(keys.count == 1 ? "" : "s") but vault at \(context.node.name) needs \(status.threshold): vaultkeeper cannot unseal it on its own",
      id: .tooFewShares))
  }

  private func count(_ result: String) {
    loopState.withLock { $0.memory.report.unsealAttempts[result, default: 0] += 1 }
  }

  /// `evidence`: for a restart, what showed it (the `vault.restart_evidence` field).
  /// `pid`: the Vault unit's main PID when known (0 otherwise), remembered with the success.
  private func unseal(keys: KeyShares, reason: String, evidence: SealJudge.Evidence? = nil, pid: Int = 0) async -> (Bool, Bool, Bool) {
    let started = ContinuousClock.now
    var status: SealStatus
    do {
      status = try await context.client.sealStatus()
    } catch {
      logOnce("sealed.error.status", OperatorEvent(level: .warning, message: "cannot read seal status of \(context.node.name): \(error)", id: .unsealFailed))
      return (false, false, true)
    }
    var submitted = 0
    // Bounded: at most every share twice plus a reset per round; the planner normally ends
    // far sooner.
    for _ in 0..<(keys.count * 2 + 4) {
      if Task.isCancelled { return (false, false, false) }
      let step = loopState.withLock { $0.planner.next(status, now: .now) }
      switch step {
      case .unsealed:
        return (false, true, false)
      case .notInitialized:
        return (true, false, false)
      case .completing(let remaining, let why):
        loopState.withLock { s in
          if s.completing == nil { s.completing = (reason, submitted, started) }
        }
        if loopState.withLock({ $0.loggedOnce.insert("sealed.completing").inserted }) {
          context.logger.info(
            "vault at \(context.node.name) \(why); no further shares for up to \(DurationParsing.humanize(remaining))",
            metadata: ["vault.addr": "\(context.node.name)"])
        }
        // Not waiting on an operator: looked at again at the fast interval.
        return (false, false, false)
      case .autoUnseal(let type):
        logOnce("sealed.auto", OperatorEvent(
          level: .notice,
          message: "vault at \(context.node.name) uses the \(type) seal (auto-unseal): monitoring only, no key shares are ever submitted to it",
          id: .autoUnseal))
        return (true, false, false)
      case .notEnoughShares(let have, let need):
        loopState.withLock { $0.memory.hold = .tooFewShares(have: have, need: need) }
        logOnce("sealed.few", OperatorEvent(
          level: .critical,
          message: "cannot unseal vault at \(context.node.name): \(keys.origin) holds \(have) unseal key share\(have == 1 ? "" : "s") but the threshold is \(need)",
          id: .tooFewShares))
        return (true, false, false)
      case .wait(_, let why):
        logOnce("sealed.foreign.\(status.nonce)", OperatorEvent(
          level: .info,
          message: "\(why) on \(context.node.name); leaving it alone for up to \(DurationParsing.format(context.unseal.foreignProgressGrace))",
          id: .foreignProgress))
        return (false, false, false)
      case .reset(let why):
        log(OperatorEvent(level: .warning, message: "resetting unseal progress on \(context.node.name): \(why)", id: .foreignProgressReset))
        do {
          status = try await context.client.resetUnseal()
        } catch {
          logOnce("sealed.error.reset", OperatorEvent(level: .error, message: "cannot reset unseal progress on \(context.node.name): \(error)", id: .unsealFailed))
          return (false, false, true)
        }
        loopState.withLock { $0.planner.forget() }
      case .submit(let index):
        loopState.withLock { $0.completing = nil }  // a new round: an earlier completion did not happen
        let before = status
        let answer: UnsealAnswer
        do {
          answer = try await context.client.submit(share: keys.shares[index])
        } catch {
          count("error")
          // Logged once per episode; the loop backs off like for a failing node until it works.
          logOnce("sealed.error.submit", OperatorEvent(level: .error, message: "unseal of \(context.node.name) failed: \(redacted(error.description, keys))", id: .unsealFailed))
          return (false, false, true)
        }
        switch answer {
        case .status(let after):
          submitted += 1
          let duplicate = after.sealed && after.nonce == before.nonce && after.progress == before.progress && before.progress > 0
          count(duplicate ? "duplicate" : "success")
          loopState.withLock { $0.planner.submitted(index, answer: after) }
          status = after
          if !after.sealed {
            let elapsed = started.duration(to: .now)
            loopState.withLock { s in
              s.memory.report.lastUnsealTime = Date().timeIntervalSince1970
              s.memory.judge.unsealedByUs(mainPID: pid)
              s.memory.hold = nil
              s.memory.wrongKeyUntil = nil
              s.memory.wrongKeyCount = 0
            }
            clearOnce("sealed.")
            var fields: Logger.Metadata = ["vault.unseal_shares": "\(submitted)", "vault.unseal_ms": "\(elapsed.milliseconds)"]
            if let evidence { fields["vault.restart_evidence"] = "\(evidence.rawValue)" }
            log(OperatorEvent(
              level: .notice,
              message: "unsealed vault at \(context.node.name) (\(reason)) with \(submitted) share\(submitted == 1 ? "" : "s") in \(elapsed.milliseconds) ms",
              id: .unsealed), fields)
            return (false, true, false)
          }
        case .wrongKey(let message):
          count("wrong_key")
          let backoff = loopState.withLock { s -> Duration in
            s.memory.wrongKeyCount += 1
            let factor = 1 << min(s.memory.wrongKeyCount - 1, 4)
            let wait = context.unseal.wrongKeyBackoff * factor
            s.memory.wrongKeyUntil = .now.advanced(by: wait)
            s.memory.hold = .wrongKey
            s.planner.forget()
            return wait
          }
          log(OperatorEvent(
            level: .critical,
            message: "the unseal key shares in \(keys.origin) combine to a wrong key for vault at \(context.node.name) "
              + "(Vault said: \(redacted(message, keys))). Check that the shares belong to this cluster; next try in \(DurationParsing.format(backoff))",
            id: .wrongKey), state: .sealed)
          return (true, false, false)
        }
      }
    }
    return (false, false, false)
  }

  /// Vault never echoes keys in errors, but a proxy in between might: strip any share text.
  /// Works on bytes so the share is never copied into a String we cannot wipe.
  private func redacted(_ text: String, _ keys: KeyShares) -> String {
    var bytes = Array(text.utf8)
    var changed = false
    for share in keys.shares {
      share.withUnsafeBytes { needle in
        guard needle.count > 0, bytes.count >= needle.count else { return }
        var i = 0
        while i + needle.count <= bytes.count {
          if bytes[i..<(i + needle.count)].elementsEqual(needle) {
            bytes.replaceSubrange(i..<(i + needle.count), with: Array("<redacted>".utf8))
            changed = true
            i += 10
          } else {
            i += 1
          }
        }
      }
    }
    return changed ? String(decoding: bytes, as: UTF8.self) : text
  }
}
