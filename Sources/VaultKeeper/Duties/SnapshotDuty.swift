// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging

/// The scheduled snapshot duty of `vaultkeeper run`: takes the cluster's Raft snapshot when it
/// is due and this node is the active one, applies retention after each success, remembers the
/// last good snapshot in the state directory, and reports freshness (STATUS, state file,
/// metrics, journal). The decisions are values fed with the time from `context.clock`:
/// `SnapshotScheduler` (due, catch-up, retries, waiting, token refresh; over `SnapshotSchedule`,
/// `SnapshotPlan` and `SnapshotLedger`), `SnapshotFreshness`, `RetentionPolicy`,
/// `TransferDeadline` and `TokenLifetime`. This type only performs what they answer; the
/// snapshot itself goes through `SnapshotPipeline`, as `snapshot now`'s does.
///
/// Three tasks:
/// - the schedule: downloads, verifies and commits local snapshots, then local retention;
/// - the uploads (`SnapshotUploads`, with `[snapshot.s3]`): rung after each local snapshot,
///   they upload what the bucket lacks and apply remote retention;
/// - the freshness timer: judges staleness every second (`SnapshotFreshness`), so the stale
///   alert fires while a transfer hangs.
///
/// A snapshot and an upload pass each hold `context.workLock` shared, beside each other (a slow
/// bucket never delays the next local snapshot); a restore drill holds it exclusive, so it never
/// runs beside either, and a snapshot due during a drill waits for it (at most the drill's
/// timeout plus its clean-up).
///
/// Transfers run on transports of their own (a thread and connection per attempt), so a
/// multi-gigabyte download never delays the node's health checks or the watchdog. Every transfer
/// has a deadline from its size (`TransferDeadline`); the schedule's heartbeat is renewed by
/// download progress, the uploads' is promised for an upload's whole budget.
public final class SnapshotDuty: Sendable {
  public struct Context: Sendable {
    public var config: SnapshotConfig
    /// The local node (`[vault]`): the one whose leadership decides and that is asked.
    public var node: NodeConfig
    /// The `[[peer]]` nodes: besides `node`, the only places a standby's redirect may lead.
    public var peers: [NodeConfig] = []
    public var board: StatusBoard
    public var heartbeats: Heartbeats
    public var logger: Logger
    public var environment: [String: String]
    public var makeTransport: @Sendable (NodeConfig) -> any HTTPTransport
    public var makeDecompressor: @Sendable () throws(SnapshotVerificationError) -> any StreamDecompressor
    /// The signed-HTTP transport for `[snapshot.s3]` (libcurl, in the Curl adapter).
    public var makeObjectTransport: @Sendable (S3Config, S3Credentials) -> any ObjectTransport
    public var ledgerPath: String
    /// Snapshots and upload passes hold it shared, a restore drill exclusive (`SnapshotWorkLock`).
    public var workLock: SnapshotWorkLock
    /// Wall time for names and the ledger, monotonic time for waits and staleness.
    public var clock: any NodeClock

    public init(config: SnapshotConfig, node: NodeConfig, board: StatusBoard, heartbeats: Heartbeats, logger: Logger, environment: [String: String],
      makeTransport: @escaping @Sendable (NodeConfig) -> any HTTPTransport,
      makeDecompressor: @escaping @Sendable () throws(SnapshotVerificationError) -> any StreamDecompressor,
      makeObjectTransport: @escaping @Sendable (S3Config, S3Credentials) -> any ObjectTransport, ledgerPath: String,
      workLock: SnapshotWorkLock = SnapshotWorkLock(), clock: any NodeClock = SystemNodeClock())
    {
      self.config = config
      self.node = node
      self.board = board
      self.heartbeats = heartbeats
      self.logger = logger
      self.environment = environment
      self.makeTransport = makeTransport
      self.makeDecompressor = makeDecompressor
      self.makeObjectTransport = makeObjectTransport
      self.ledgerPath = ledgerPath
      self.workLock = workLock
      self.clock = clock
    }

    /// The take → retain → upload pipeline, shared with `snapshot now`.
    var pipeline: SnapshotPipeline {
      SnapshotPipeline(config: config, node: node, peers: peers, makeTransport: makeTransport, makeDecompressor: makeDecompressor, clock: clock)
    }
  }

  static let heartbeat = "snapshot"
  /// How often staleness is judged, whatever the schedule or a transfer is doing.
  static let freshnessTick = Duration.seconds(1)
  /// What STATUS says while a due snapshot waits for the work lock.
  static let lockBusy = "a restore drill is running"

  public let context: Context

  public init(context: Context) {
    self.context = context
  }

  public func run() async {
    var state = await start()
    let status = state.status
    defer {
      context.heartbeats.retire(Self.heartbeat)
      context.heartbeats.retire(SnapshotUploads.heartbeat)
    }
    // The role comes from the node's health: wait for the first answer before judging anything.
    await context.board.waitForFirstResults()
    await reportFutureFiles(status)
    let uploads = makeUploads(status)
    await withTaskGroup(of: Void.self) { group in
      group.addTask {
        while !Task.isCancelled {
          await self.judgeFreshness(status)
          try? await Task.sleep(for: Self.freshnessTick)
        }
      }
      if let uploads { group.addTask { await uploads.run() } }
      while !Task.isCancelled {
        if case .waited(let wait) = await self.pass(&state, uploads: uploads) {
          try? await Task.sleep(for: wait.delay)
        }
      }
      group.cancelAll()
    }
  }

  func makeUploads(_ status: SnapshotDutyStatus) -> SnapshotUploads? {
    context.config.s3.map { SnapshotUploads(context: context, s3: $0, status: status) }
  }

  struct State: Sendable {
    var ledger: SnapshotLedger
    var tokens: TokenKeeper
    var scheduler: SnapshotScheduler
    var ledgerProblem = false
    let status: SnapshotDutyStatus
  }

  /// How one turn of the schedule ended.
  enum Pass: Sendable, Equatable {
    /// A snapshot was attempted (committed or not); the next turn follows at once.
    case attempted(committed: Bool)
    /// Nothing to do now: the loop sleeps `delay` (the heartbeat is promised for it).
    case waited(SnapshotScheduler.Wait)
  }

  /// One turn of the schedule: ask the board for the node's role, feed the scheduler, and
  /// perform its answer (renew the token, take a snapshot, or publish and promise the wait).
  func pass(_ state: inout State, uploads: SnapshotUploads?) async -> Pass {
    let role = SnapshotPlan.role(localState: await context.board.state(of: context.node.name))
    var renewed = false
    while true {
      let now = context.clock.now()
      switch state.scheduler.tick(at: now, role: role, tokenRefreshDue: await state.tokens.refreshDue, mayRenew: !renewed) {
      case .renewToken:
        // A renewal, then perhaps a login: each bounded by the node's timeouts. At most one per
        // turn, so a renewal that did not move the refresh time cannot spin here.
        context.heartbeats.promise(Self.heartbeat, within: (context.node.connectTimeout + context.node.timeout) * 2 + .seconds(30))
        await state.tokens.maintain()
        renewed = true
      case .take:
        let committed = await takeSnapshot(&state)
        if committed { uploads?.ring() }
        return .attempted(committed: committed)
      case .wait(let wait):
        state.status.update { s in
          s.phaseKnown = true
          s.report.phase = wait.phase
          s.report.waitingFor = wait.waitingFor
          s.report.nextDue = wait.nextDue
        }
        await state.status.publish()
        context.heartbeats.promise(Self.heartbeat, within: wait.delay + .seconds(30))
        return .waited(wait)
      }
    }
  }

  func start() async -> State {
    let config = context.config
    let directory = config.directory
    let leftovers = await OffPool.run { SnapshotDirectory.removeLeftovers(directory) }
    if !leftovers.isEmpty {
      context.logger.notice("removed \(leftovers.count) unfinished snapshot file\(leftovers.count == 1 ? "" : "s") left by an interrupted run in \(directory)")
    }
    let path = context.ledgerPath
    let loaded = await OffPool.run { SnapshotLedger.load(path: path) }
    let previous = await context.board.snapshot().snapshot  // counters survive a reload
    let begun = SnapshotScheduler.start(
      ledger: loaded, settings: SnapshotScheduler.Settings(schedule: config.schedule), consecutiveFailures: previous?.consecutiveFailures ?? 0,
      at: context.clock.now(), random: Double.random(in: 0...1))
    if let recorded = begun.futureRecord {
      context.logger.warning(
        "the snapshot state in \(path) records a snapshot dated in the future (\(SnapshotName.stamp(Date(timeIntervalSince1970: recorded.time)))): was the clock ahead? It is not believed; a snapshot is due now",
        metadata: ["message_id": "\(MessageID.snapshotFutureDated.rawValue)", "snapshot.file": "\(recorded.file)"])
    }
    let ledger = begun.ledger
    var report = SnapshotReport(phase: .idle, staleAfterSeconds: config.staleAfter.seconds)
    if let previous {
      report.failures = previous.failures
      report.retentionDeleted = previous.retentionDeleted
      report.uploadFailures = previous.uploadFailures
      report.consecutiveFailures = previous.consecutiveFailures
      report.lastUpload = previous.lastUpload
      report.lastUploadFailure = previous.lastUploadFailure
      report.lastUploadFailureReason = previous.lastUploadFailureReason
      // Until the freshness task judges again: a reload does not make stale backups fresh.
      report.stale = previous.stale
    }
    report.lastSuccess = begun.lastSuccess?.timeIntervalSince1970
    report.trackingSince = ledger.trackingSince
    if let recorded = ledger.lastSuccess, begun.lastSuccess != nil {
      report.lastFile = recorded.file
      report.lastRaftIndex = recorded.raftIndex
      report.lastBytes = recorded.bytes
      report.lastDurationSeconds = recorded.durationSeconds
    }
    report.lastFailure = ledger.lastFailure?.time
    report.lastFailureReason = ledger.lastFailure?.reason
    let status = SnapshotDutyStatus(
      report: report, freshness: SnapshotFreshness(staleAfter: config.staleAfter, reference: begun.freshnessReference), board: context.board)

    let logger = context.logger
    let tokens = TokenKeeper(
      auth: config.auth, node: context.node, environment: context.environment, makeTransport: context.makeTransport,
      onEvent: { event in
        switch event {
        case .loggedIn(let ttl): logger.debug("snapshot token obtained by AppRole login (TTL \(DurationParsing.format(ttl)))")
        case .renewed(let ttl): logger.debug("snapshot token renewed (TTL \(DurationParsing.format(ttl)))")
        case .renewalFailed(let why): logger.warning("could not renew the snapshot token (\(why)); logging in again")
        }
      }, clock: context.clock)
    if begun.catchUp {
      logger.info("the last good snapshot is older than the schedule allows (downtime?): taking one now")
    }
    var state = State(ledger: ledger, tokens: tokens, scheduler: begun.scheduler, status: status)
    if begun.saveLedger { await saveLedger(&state) }
    return state
  }

  /// Takes one snapshot under the work lock. Returns whether a snapshot was committed.
  ///
  /// While a restore drill holds the lock, the schedule's heartbeat is retired rather than
  /// promised: the drill keeps its own promise for exactly its own budget (up to its timeout),
  /// so the watchdog still catches a drill that hangs, and a guess at its length here could only
  /// be too short (a false restart) or too long (a hang hidden). Once the lock is ours the
  /// promise is re-armed.
  private func takeSnapshot(_ state: inout State) async -> Bool {
    if context.workLock.isHeldExclusively {
      state.status.update { s in
        s.phaseKnown = true
        s.report.phase = .waiting
        s.report.waitingFor = Self.lockBusy
      }
      await state.status.publish()
    }
    context.heartbeats.retire(Self.heartbeat)
    let committed = await context.workLock.shared { await self.takeLocked(&state) }
    return committed ?? false  // nil: cancelled while waiting (stopping or reloading)
  }

  private func takeLocked(_ state: inout State) async -> Bool {
    let heartbeats = context.heartbeats
    state.status.update { s in
      s.phaseKnown = true
      s.report.phase = .running
      s.report.waitingFor = nil
    }
    await state.status.publish()
    // Login and the first bytes are bounded by the node's timeouts; afterwards every piece of
    // progress renews the promise, a stall is cut by the low-speed limit (60 s), and a trickle
    // by the transfer deadline (checked as the bytes arrive).
    let stall = DownloadLimits().lowSpeedWindow + .seconds(30)
    heartbeats.promise(Self.heartbeat, within: context.node.connectTimeout + context.node.timeout * 3 + stall)
    let cluster = await context.board.clusterName(of: context.node.name)
    let result: Result<SnapshotPipeline.Taken, SnapshotError>
    do {
      result = .success(
        try await context.pipeline.take(clusterName: cluster, tokens: state.tokens, progress: { _ in heartbeats.promise(Self.heartbeat, within: stall) }))
    } catch {
      result = .failure(error)
    }
    if Task.isCancelled {
      // A download cut off leaves nothing behind; one already committed stays, and the next
      // generation's uploads send it if the bucket lacks it.
      context.logger.notice("snapshot interrupted: vaultkeeper is stopping or reloading (an unfinished download leaves no file behind)")
      return false
    }
    let committed: Bool
    switch result {
    case .success(let taken):
      await succeeded(taken, &state)
      committed = true
    case .failure(let error):
      await failed(error, &state)
      committed = false
    }
    await state.status.publish()
    return committed
  }

  private func succeeded(_ taken: SnapshotPipeline.Taken, _ state: inout State) async {
    let outcome = taken.outcome
    state.ledger.lastSuccess = SnapshotLedger.Success(
      time: taken.time.timeIntervalSince1970, file: taken.fileName, raftIndex: outcome.facts.index, bytes: outcome.bytes,
      durationSeconds: outcome.duration.seconds)
    await saveLedger(&state)
    let now = context.clock.now()
    let wasStale = state.status.update { s -> Bool in
      let wasStale = s.report.stale
      s.freshness.succeeded(at: now.monotonic)
      s.report.lastSuccess = taken.time.timeIntervalSince1970
      s.report.lastFile = taken.fileName
      s.report.lastRaftIndex = outcome.facts.index
      s.report.lastBytes = outcome.bytes
      s.report.lastDurationSeconds = outcome.duration.seconds
      s.report.consecutiveFailures = 0
      s.report.stale = false
      return wasStale
    }
    let mib = Double(outcome.bytes) / 1_048_576
    let rounded = (mib * 10).rounded() / 10
    context.logger.notice(
      "snapshot taken: \(outcome.path) (\(rounded) MiB, raft index \(outcome.facts.index)) in \(DurationParsing.humanize(outcome.duration)), verified\(wasStale ? "; backups are fresh again" : "")",
      metadata: [
        "message_id": "\(MessageID.snapshotTaken.rawValue)", "snapshot.file": "\(outcome.path)", "snapshot.bytes": "\(outcome.bytes)",
        "snapshot.raft_index": "\(outcome.facts.index)", "snapshot.duration_ms": "\(outcome.duration.milliseconds)",
      ])
    let directory = context.config.directory
    for deletion in taken.retention.deletions {
      if let error = deletion.error {
        context.logger.warning("retention could not delete \(directory)/\(deletion.fileName): \(error)")
      } else {
        state.status.update { $0.report.retentionDeleted += 1 }
        context.logger.info(
          "retention deleted \(directory)/\(deletion.fileName): \(deletion.reason)",
          metadata: ["message_id": "\(MessageID.snapshotRetentionDeleted.rawValue)", "snapshot.file": "\(directory)/\(deletion.fileName)"])
      }
    }
    reportFuture(local: taken.retention.future, state.status)
    state.scheduler.succeeded(taken: taken.time, at: context.clock.now(), random: Double.random(in: 0...1))
  }

  private func failed(_ error: SnapshotError, _ state: inout State) async {
    let now = context.clock.now()
    let retry = state.scheduler.failed(at: now)
    state.status.update { s in
      s.report.consecutiveFailures = retry.consecutiveFailures
      s.report.failures[error.reason.rawValue, default: 0] += 1
      s.report.lastFailure = now.wall
      s.report.lastFailureReason = error.reason.rawValue
    }
    state.ledger.lastFailure = SnapshotLedger.Failure(time: now.wall, reason: error.reason.rawValue, message: error.message)
    await saveLedger(&state)
    let id: MessageID
    switch error.reason {
    case .verification: id = .snapshotVerificationFailed
    case .space: id = .snapshotLowSpace
    default: id = .snapshotFailed
    }
    context.logger.error(
      "snapshot failed (\(error.reason.rawValue)): \(error.message); next attempt in \(DurationParsing.humanize(retry.delay))",
      metadata: ["message_id": "\(id.rawValue)", "snapshot.reason": "\(error.reason.rawValue)"])
  }

  /// Durable (fsync), so off the cooperative pool; a failing disk is reported once per run of failures.
  private func saveLedger(_ state: inout State) async {
    let path = context.ledgerPath
    var saver = LedgerSaver(path: path, failing: state.ledgerProblem)
    if let error = await saver.save(state.ledger) {
      context.logger.warning("cannot record the snapshot state in \(path): \(error); after a restart the last snapshot is not known, and one is taken at once")
    }
    state.ledgerProblem = saver.failing
  }
}
