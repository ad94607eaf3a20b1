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
/// metrics, journal). The decisions are `SnapshotSchedule`, `SnapshotPlan`, `RetentionPolicy`,
/// `SnapshotFreshness`, `TransferDeadline` and `TokenLifetime`; this type only sequences them
/// with the I/O.
///
/// Three tasks, so that no transfer can hold up the others:
/// - the schedule: downloads, verifies and commits local snapshots, then local retention;
/// - the uploads (`SnapshotUploads`, with `[snapshot.s3]`): rung after each local snapshot,
///   they upload what the bucket lacks and apply remote retention; a slow or hanging peer
///   delays only them, never the next local snapshot;
/// - the freshness timer: judges staleness every second (`SnapshotFreshness`), so the stale
///   alert fires while a transfer hangs.
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

    public init(config: SnapshotConfig, node: NodeConfig, board: StatusBoard, heartbeats: Heartbeats, logger: Logger, environment: [String: String],
      makeTransport: @escaping @Sendable (NodeConfig) -> any HTTPTransport,
      makeDecompressor: @escaping @Sendable () throws(SnapshotVerificationError) -> any StreamDecompressor,
      makeObjectTransport: @escaping @Sendable (S3Config, S3Credentials) -> any ObjectTransport, ledgerPath: String)
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
    }
  }

  static let heartbeat = "snapshot"
  /// How often the role (active/standby) is looked at while nothing is due.
  static let recheck = Duration.seconds(5)
  /// How often a due snapshot that cannot be taken yet (sealed, standby) is looked at again.
  static let waitingRecheck = Duration.seconds(1)
  /// How often staleness is judged, whatever the schedule or a transfer is doing.
  static let freshnessTick = Duration.seconds(1)

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
    let uploads = context.config.s3.map { SnapshotUploads(context: context, s3: $0, status: status) }
    await withTaskGroup(of: Void.self) { group in
      group.addTask { await self.watchFreshness(status) }
      if let uploads { group.addTask { await uploads.run() } }
      await self.schedule(&state, uploads: uploads)
      group.cancelAll()
    }
  }

  struct State {
    var ledger: SnapshotLedger
    var tokens: TokenKeeper
    var due: Date
    var ledgerProblem = false
    let status: SnapshotDutyStatus
  }

  private func schedule(_ state: inout State, uploads: SnapshotUploads?) async {
    while !Task.isCancelled {
      let now = Date()
      let role = SnapshotPlan.role(localState: await context.board.state(of: context.node.name))
      if let refresh = await state.tokens.refreshDue, refresh <= .now {
        // A renewal, then perhaps a login: each bounded by the node's timeouts.
        context.heartbeats.promise(Self.heartbeat, within: (context.node.connectTimeout + context.node.timeout) * 2 + .seconds(30))
        await state.tokens.maintain()
      }
      if now >= state.due, case .take = role {
        if await takeSnapshot(&state) { uploads?.ring() }
        continue
      }
      var nap = Self.recheck
      let due = state.due
      state.status.update { s in
        s.phaseKnown = true
        switch role {
        case .take:
          s.report.phase = .idle
          s.report.waitingFor = nil
          s.report.nextDue = due.timeIntervalSince1970
        case .standby:
          s.report.phase = .standby
          s.report.waitingFor = nil
          s.report.nextDue = nil
        case .unavailable(let why):
          let overdue = now >= due
          s.report.phase = overdue ? .waiting : .idle
          s.report.waitingFor = overdue ? why : nil
          s.report.nextDue = due.timeIntervalSince1970
        }
      }
      switch role {
      case .take: break
      case .standby: nap = Self.waitingRecheck  // take over soon after leadership moves here
      case .unavailable: if now >= due { nap = Self.waitingRecheck }
      }
      await state.status.publish()
      let untilDue = state.due.timeIntervalSince(now)
      if untilDue > 0 { nap = min(nap, .milliseconds(Int64(untilDue * 1000) + 1)) }
      if let refresh = await state.tokens.refreshDue { nap = min(nap, max(ContinuousClock.now.duration(to: refresh), .milliseconds(1))) }
      context.heartbeats.promise(Self.heartbeat, within: nap + .seconds(30))
      try? await Task.sleep(for: nap)
    }
  }

  private func start() async -> State {
    let config = context.config
    let directory = config.directory
    let leftovers = await OffPool.run { SnapshotDirectory.removeLeftovers(directory) }
    if !leftovers.isEmpty {
      context.logger.notice("removed \(leftovers.count) unfinished snapshot file\(leftovers.count == 1 ? "" : "s") left by an interrupted run in \(directory)")
    }
    let path = context.ledgerPath
    let now = Date()
    let nowInstant = ContinuousClock.now
    let loaded = await OffPool.run { SnapshotLedger.load(path: path) }
    var ledger = loaded ?? SnapshotLedger(trackingSince: now.timeIntervalSince1970)
    // Staleness and the schedule go by the ledger only: a file name is no evidence of when a
    // snapshot was taken (a clock that was ahead, or anyone who may write the directory, can
    // put any time in it). A record dated in the future is not believed either.
    if ledger.recordsFutureSuccess(now: now), let recorded = ledger.lastSuccess {
      context.logger.warning(
        "the snapshot state in \(path) records a snapshot dated in the future (\(SnapshotName.stamp(Date(timeIntervalSince1970: recorded.time)))): was the clock ahead? It is not believed; a snapshot is due now",
        metadata: ["message_id": "\(MessageID.snapshotFutureDated.rawValue)", "snapshot.file": "\(recorded.file)"])
    }
    let trackingSince = ledger.believedTrackingSince(now: now)
    let trackingReset = trackingSince.timeIntervalSince1970 != ledger.trackingSince
    ledger.trackingSince = trackingSince.timeIntervalSince1970
    let lastSuccess = ledger.believedLastSuccess(now: now)

    var report = SnapshotReport(phase: .idle, staleAfterSeconds: config.staleAfter.seconds)
    if let previous = await context.board.snapshot().snapshot {  // counters survive a reload
      report.failures = previous.failures
      report.retentionDeleted = previous.retentionDeleted
      report.uploadFailures = previous.uploadFailures
      report.consecutiveFailures = previous.consecutiveFailures
      report.lastUpload = previous.lastUpload
    }
    report.lastSuccess = lastSuccess?.timeIntervalSince1970
    report.trackingSince = ledger.trackingSince
    if let recorded = ledger.lastSuccess, lastSuccess != nil {
      report.lastFile = recorded.file
      report.lastRaftIndex = recorded.raftIndex
      report.lastBytes = recorded.bytes
      report.lastDurationSeconds = recorded.durationSeconds
    }
    report.lastFailure = ledger.lastFailure?.time
    report.lastFailureReason = ledger.lastFailure?.reason
    let reference = SnapshotFreshness.instant(of: lastSuccess ?? trackingSince, now: now, nowInstant: nowInstant)
    let status = SnapshotDutyStatus(
      report: report, freshness: SnapshotFreshness(staleAfter: config.staleAfter, reference: reference), board: context.board)

    let logger = context.logger
    let tokens = TokenKeeper(
      auth: config.auth, node: context.node, environment: context.environment, makeTransport: context.makeTransport,
      onEvent: { event in
        switch event {
        case .loggedIn(let ttl): logger.debug("snapshot token obtained by AppRole login (TTL \(DurationParsing.format(ttl)))")
        case .renewed(let ttl): logger.debug("snapshot token renewed (TTL \(DurationParsing.format(ttl)))")
        case .renewalFailed(let why): logger.warning("could not renew the snapshot token (\(why)); logging in again")
        }
      })
    let due = config.schedule.nextDue(lastSuccess: lastSuccess, now: now, random: Double.random(in: 0...1))
    if due <= now.addingTimeInterval(config.schedule.randomizedDelay.seconds), lastSuccess != nil {
      logger.info("the last good snapshot is older than the schedule allows (downtime?): taking one now")
    }
    var state = State(ledger: ledger, tokens: tokens, due: due, status: status)
    // Record when waiting began at once: otherwise every restart or reload before the first
    // success would restart the staleness clock, and a never-active or sealed node would
    // never be reported stale.
    if loaded == nil || trackingReset { await saveLedger(&state) }
    return state
  }

  /// Snapshot files of any cluster whose names are dated in the future: a clock that was ahead
  /// when they were written. They count for nothing and are never deleted; say so once.
  private func reportFutureFiles(_ status: SnapshotDutyStatus) async {
    let directory = context.config.directory
    let now = Date()
    let future = await OffPool.run { SnapshotDirectory.list(directory).filter { RetentionPolicy.isFuture($0.name.time, now: now) }.map(\.name.fileName) }
    reportFuture(local: future, status)
  }

  /// Logs the future-dated local names not reported yet, and keeps the count for the metric.
  func reportFuture(local names: [String], _ status: SnapshotDutyStatus) {
    let directory = context.config.directory
    let fresh = status.update { s -> [String] in
      let new = names.filter { !s.futureLocal.contains($0) }
      s.futureLocal = Set(names)
      s.report.futureDated = s.futureLocal.count + s.futureRemote.count
      return new
    }
    for name in fresh {
      context.logger.warning(
        "\(directory)/\(name) is dated in the future (was the clock ahead?): it does not count as the newest snapshot, for retention or for staleness, and is never deleted; remove it by hand once you have checked it",
        metadata: ["message_id": "\(MessageID.snapshotFutureDated.rawValue)", "snapshot.file": "\(directory)/\(name)"])
    }
  }

  /// Judges staleness every second from the shared freshness state, whatever the schedule and
  /// the uploads are doing (a hung transfer cannot hold the alert back).
  private func watchFreshness(_ status: SnapshotDutyStatus) async {
    while !Task.isCancelled {
      let role = SnapshotPlan.role(localState: await context.board.state(of: context.node.name))
      var judged = true
      if case .standby = role { judged = false }  // the active node's vaultkeeper judges it
      let now = ContinuousClock.now
      let (verdict, report, age) = status.update { s -> (SnapshotFreshness.Verdict, SnapshotReport, Duration) in
        let verdict = s.freshness.judge(now: now, judged: judged)
        if case .stale = verdict { s.report.stale = true } else { s.report.stale = false }
        return (verdict, s.report, s.freshness.age(at: now))
      }
      if case .stale(announce: true) = verdict { announceStale(report, age: age) }
      await status.publish()
      try? await Task.sleep(for: Self.freshnessTick)
    }
  }

  private func announceStale(_ report: SnapshotReport, age: Duration) {
    let limit = DurationParsing.format(context.config.staleAfter)
    var metadata: Logger.Metadata = ["message_id": "\(MessageID.snapshotsStale.rawValue)", "snapshot.stale_after": "\(limit)"]
    let message: String
    if report.lastSuccess != nil {
      let shown = DurationParsing.humanize(age)
      metadata["snapshot.age"] = "\(shown)"
      message = "backups are stale: the last good snapshot is \(shown) old (stale_after \(limit))"
    } else {
      message = "backups are stale: no good snapshot for \(limit) since vaultkeeper started watching"
    }
    var detail = message
    if let reason = report.lastFailureReason, report.consecutiveFailures > 0 {
      detail += "; last attempt failed (\(reason))"
    } else if let waiting = report.waitingFor {
      detail += "; waiting: \(waiting)"
    } else if report.phase == .running {
      detail += "; a snapshot download is still running"
    }
    context.logger.error("\(detail)", metadata: metadata)
  }

  /// Returns whether a snapshot was committed.
  private func takeSnapshot(_ state: inout State) async -> Bool {
    let config = context.config
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
    var taker = SnapshotTaker(config: config, node: context.node, makeTransport: context.makeTransport, makeDecompressor: context.makeDecompressor)
    taker.peers = context.peers
    let cluster = await context.board.clusterName(of: context.node.name)
    let result: Result<SnapshotTaker.Outcome, SnapshotError>
    do {
      result = .success(try await taker.take(clusterName: cluster, tokens: state.tokens, progress: { _ in heartbeats.promise(Self.heartbeat, within: stall) }))
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
    case .success(let outcome):
      await succeeded(outcome, cluster: cluster, &state)
      committed = true
    case .failure(let error):
      await failed(error, &state)
      committed = false
    }
    await state.status.publish()
    return committed
  }

  private func succeeded(_ outcome: SnapshotTaker.Outcome, cluster: String?, _ state: inout State) async {
    let config = context.config
    let now = Date()
    let fileName = String(outcome.path.split(separator: "/").last ?? Substring(outcome.path))
    // The time in the file's name, so the ledger and the directory agree after a restart.
    let taken = SnapshotName(fileName: fileName)?.time ?? now
    state.ledger.lastSuccess = SnapshotLedger.Success(
      time: taken.timeIntervalSince1970, file: fileName, raftIndex: outcome.facts.index, bytes: outcome.bytes,
      durationSeconds: outcome.duration.seconds)
    await saveLedger(&state)
    let instant = ContinuousClock.now
    let wasStale = state.status.update { s -> Bool in
      let wasStale = s.report.stale
      s.freshness.succeeded(at: instant)
      s.report.lastSuccess = taken.timeIntervalSince1970
      s.report.lastFile = fileName
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

    // Only this cluster's files count; the one just written is kept whatever the policy says.
    let directory = config.directory
    let policy = config.retention
    let clusterName = cluster ?? "vault"
    let retention = await OffPool.run {
      SnapshotDirectory.applyRetention(policy, directory: directory, now: now, cluster: clusterName, justWritten: fileName)
    }
    for deletion in retention.deletions {
      if let error = deletion.error {
        context.logger.warning("retention could not delete \(directory)/\(deletion.fileName): \(error)")
      } else {
        state.status.update { $0.report.retentionDeleted += 1 }
        context.logger.info(
          "retention deleted \(directory)/\(deletion.fileName): \(deletion.reason)",
          metadata: ["message_id": "\(MessageID.snapshotRetentionDeleted.rawValue)", "snapshot.file": "\(directory)/\(deletion.fileName)"])
      }
    }
    reportFuture(local: retention.future, state.status)
    state.due = config.schedule.nextDue(lastSuccess: taken, now: Date(), random: Double.random(in: 0...1))
  }

  private func failed(_ error: SnapshotError, _ state: inout State) async {
    let now = Date()
    let failures = state.status.update { s -> Int in
      s.report.consecutiveFailures += 1
      s.report.failures[error.reason.rawValue, default: 0] += 1
      s.report.lastFailure = now.timeIntervalSince1970
      s.report.lastFailureReason = error.reason.rawValue
      return s.report.consecutiveFailures
    }
    state.ledger.lastFailure = SnapshotLedger.Failure(time: now.timeIntervalSince1970, reason: error.reason.rawValue, message: error.message)
    await saveLedger(&state)
    let delay = SnapshotPlan.retryDelay(failures: failures, cadence: context.config.schedule.cadence)
    state.due = now.addingTimeInterval(delay.seconds)
    let id: MessageID
    switch error.reason {
    case .verification: id = .snapshotVerificationFailed
    case .space: id = .snapshotLowSpace
    default: id = .snapshotFailed
    }
    context.logger.error(
      "snapshot failed (\(error.reason.rawValue)): \(error.message); next attempt in \(DurationParsing.humanize(delay))",
      metadata: ["message_id": "\(id.rawValue)", "snapshot.reason": "\(error.reason.rawValue)"])
  }

  /// Durable (fsync), so off the cooperative pool.
  private func saveLedger(_ state: inout State) async {
    let ledger = state.ledger
    let path = context.ledgerPath
    let saved: Result<Void, FileAccess.Failure> = await OffPool.run {
      do throws(FileAccess.Failure) { return .success(try ledger.save(path: path)) } catch { return .failure(error) }
    }
    switch saved {
    case .success:
      state.ledgerProblem = false
    case .failure(let error):
      if !state.ledgerProblem {
        context.logger.warning("cannot record the snapshot state in \(context.ledgerPath): \(error); after a restart the last snapshot is not known, and one is taken at once")
      }
      state.ledgerProblem = true
    }
  }
}
