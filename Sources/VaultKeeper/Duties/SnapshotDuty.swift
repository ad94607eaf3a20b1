#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging

/// The scheduled snapshot duty of `vaultkeeper run`: takes the cluster's Raft snapshot when it
/// is due and this node is the active one, applies retention after each success, remembers the
/// last good snapshot in the state directory, and reports freshness (STATUS, state file,
/// metrics, journal). The decisions are `SnapshotSchedule`, `SnapshotPlan`, `RetentionPolicy`
/// and `TokenLifetime`; this type only sequences them with the I/O.
///
/// Transfers run on transports of their own (a thread and connection per attempt), so a
/// multi-gigabyte download never delays the node's health checks or the watchdog; the duty's
/// own heartbeat is renewed by download progress, so a stalled download (caught by the
/// low-speed limit within a minute) is the longest it can go quiet.
public final class SnapshotDuty: Sendable {
  public struct Context: Sendable {
    public var config: SnapshotConfig
    /// The local node (`[vault]`): the one whose leadership decides and that is asked.
    public var node: NodeConfig
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
  /// How often the role (active/standby) and staleness are looked at while nothing is due.
  static let recheck = Duration.seconds(5)
  /// How often a due snapshot that cannot be taken yet (sealed, standby) is looked at again.
  static let waitingRecheck = Duration.seconds(1)
  /// A stale-backups entry is repeated this often while backups stay stale.
  static let staleReminder: TimeInterval = 86400

  public let context: Context

  public init(context: Context) {
    self.context = context
  }

  public func run() async {
    var state = await start()
    defer { context.heartbeats.retire(Self.heartbeat) }
    // The role comes from the node's health: wait for the first answer before judging anything.
    await context.board.waitForFirstResults()
    while !Task.isCancelled {
      let now = Date()
      let role = SnapshotPlan.role(localState: await context.board.state(of: context.node.name))
      if let refresh = await state.tokens.refreshDue, refresh <= .now {
        // A renewal, then perhaps a login: each bounded by the node's timeouts.
        context.heartbeats.promise(Self.heartbeat, within: (context.node.connectTimeout + context.node.timeout) * 2 + .seconds(30))
        await state.tokens.maintain()
      }
      if now >= state.due, case .take = role {
        await takeSnapshot(&state)
        continue
      }
      var nap = Self.recheck
      switch role {
      case .take:
        state.report.phase = "idle"
        state.report.waitingFor = nil
        state.report.nextDue = state.due.timeIntervalSince1970
      case .standby:
        state.report.phase = "standby"
        state.report.waitingFor = nil
        state.report.nextDue = nil
        nap = Self.waitingRecheck  // take over soon after leadership moves here
      case .unavailable(let why):
        let overdue = now >= state.due
        state.report.phase = overdue ? "waiting" : "idle"
        state.report.waitingFor = overdue ? why : nil
        state.report.nextDue = state.due.timeIntervalSince1970
        if overdue { nap = Self.waitingRecheck }
      }
      judgeFreshness(&state, role: role, now: now)
      await context.board.post(snapshot: state.report)
      let untilDue = state.due.timeIntervalSince(now)
      if untilDue > 0 { nap = min(nap, .milliseconds(Int64(untilDue * 1000) + 1)) }
      if let refresh = await state.tokens.refreshDue { nap = min(nap, max(ContinuousClock.now.duration(to: refresh), .milliseconds(1))) }
      context.heartbeats.promise(Self.heartbeat, within: nap + .seconds(30))
      try? await Task.sleep(for: nap)
    }
  }

  struct State {
    var ledger: SnapshotLedger
    var report: SnapshotReport
    var tokens: TokenKeeper
    var due: Date
    var lastSuccess: Date?
    var staleSaidAt: Date?
    var ledgerProblem = false
  }

  private func start() async -> State {
    let config = context.config
    let directory = config.directory
    let (leftovers, newest) = await OffPool.run { (SnapshotDirectory.removeLeftovers(directory), SnapshotDirectory.list(directory).first) }
    if !leftovers.isEmpty {
      context.logger.notice("removed \(leftovers.count) unfinished snapshot file\(leftovers.count == 1 ? "" : "s") left by an interrupted run in \(directory)")
    }
    let path = context.ledgerPath
    let now = Date()
    let loaded = await OffPool.run { SnapshotLedger.load(path: path) }
    let ledger = loaded ?? SnapshotLedger(trackingSince: now.timeIntervalSince1970)
    let lastSuccess = ledger.lastSuccessTime(newestInDirectory: newest?.name.time)

    var report = SnapshotReport(phase: "idle", staleAfterSeconds: config.staleAfter.seconds)
    if let previous = await context.board.snapshot().snapshot {  // counters survive a reload
      report.failures = previous.failures
      report.retentionDeleted = previous.retentionDeleted
      report.uploadFailures = previous.uploadFailures
      report.consecutiveFailures = previous.consecutiveFailures
    }
    report.lastSuccess = lastSuccess?.timeIntervalSince1970
    report.trackingSince = ledger.trackingSince
    if let recorded = ledger.lastSuccess, recorded.time == lastSuccess?.timeIntervalSince1970 {
      report.lastFile = recorded.file
      report.lastRaftIndex = recorded.raftIndex
      report.lastBytes = recorded.bytes
      report.lastDurationSeconds = recorded.durationSeconds
    } else if let newest {
      report.lastFile = newest.name.fileName
      report.lastRaftIndex = newest.name.raftIndex
      report.lastBytes = newest.bytes
    }
    report.lastFailure = ledger.lastFailure?.time
    report.lastFailureReason = ledger.lastFailure?.reason

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
    var state = State(ledger: ledger, report: report, tokens: tokens, due: due, lastSuccess: lastSuccess)
    // Record when waiting began at once: otherwise every restart or reload before the first
    // success would restart the staleness clock, and a never-active or sealed node would
    // never be reported stale.
    if loaded == nil { await saveLedger(&state) }
    return state
  }

  /// Staleness is judged unless a healthy standby (the active node's vaultkeeper does it); a
  /// sealed or unreachable node does not stop the clock: that is exactly when backups stop.
  private func judgeFreshness(_ state: inout State, role: SnapshotPlan.Role, now: Date) {
    let stale: Bool
    if case .standby = role {
      stale = false
    } else {
      stale = SnapshotPlan.isStale(
        lastSuccess: state.lastSuccess, trackingSince: Date(timeIntervalSince1970: state.ledger.trackingSince),
        staleAfter: context.config.staleAfter, now: now)
    }
    state.report.stale = stale
    guard stale else {
      state.staleSaidAt = nil
      return
    }
    if let said = state.staleSaidAt, now.timeIntervalSince(said) < Self.staleReminder { return }
    state.staleSaidAt = now
    let limit = DurationParsing.format(context.config.staleAfter)
    var metadata: Logger.Metadata = ["message_id": "\(MessageID.snapshotsStale.rawValue)", "snapshot.stale_after": "\(limit)"]
    let message: String
    if let last = state.lastSuccess {
      let age = DurationParsing.humanize(.seconds(max(now.timeIntervalSince(last), 0)))
      metadata["snapshot.age"] = "\(age)"
      message = "backups are stale: the last good snapshot is \(age) old (stale_after \(limit))"
    } else {
      message = "backups are stale: no good snapshot for \(limit) since vaultkeeper started watching"
    }
    var detail = message
    if let reason = state.report.lastFailureReason, state.report.consecutiveFailures > 0 {
      detail += "; last attempt failed (\(reason))"
    } else if let waiting = state.report.waitingFor {
      detail += "; waiting: \(waiting)"
    }
    context.logger.error("\(detail)", metadata: metadata)
  }

  private func takeSnapshot(_ state: inout State) async {
    let config = context.config
    let heartbeats = context.heartbeats
    state.report.phase = "running"
    state.report.waitingFor = nil
    await context.board.post(snapshot: state.report)
    // Login and the first bytes are bounded by the node's timeouts; afterwards every piece of
    // progress renews the promise, and a stall is cut by the low-speed limit (60 s).
    let stall = DownloadLimits().lowSpeedWindow + .seconds(30)
    heartbeats.promise(Self.heartbeat, within: context.node.connectTimeout + context.node.timeout * 3 + stall)
    let taker = SnapshotTaker(config: config, node: context.node, makeTransport: context.makeTransport, makeDecompressor: context.makeDecompressor)
    let cluster = await context.board.clusterName(of: context.node.name)
    let result: Result<SnapshotTaker.Outcome, SnapshotError>
    do {
      result = .success(try await taker.take(clusterName: cluster, tokens: state.tokens, progress: { _ in heartbeats.promise(Self.heartbeat, within: stall) }))
    } catch {
      result = .failure(error)
    }
    if Task.isCancelled {
      // A download cut off leaves nothing behind; one already committed stays and is counted
      // by the next generation from its file name.
      context.logger.notice("snapshot interrupted: vaultkeeper is stopping or reloading (an unfinished download leaves no file behind)")
      return
    }
    switch result {
    case .success(let outcome): await succeeded(outcome, &state)
    case .failure(let error): await failed(error, &state)
    }
    await context.board.post(snapshot: state.report)
  }

  private func succeeded(_ outcome: SnapshotTaker.Outcome, _ state: inout State) async {
    let config = context.config
    let now = Date()
    let fileName = String(outcome.path.split(separator: "/").last ?? Substring(outcome.path))
    let wasStale = state.report.stale
    // The time in the file's name, so the ledger and the directory agree after a restart.
    let taken = SnapshotName(fileName: fileName)?.time ?? now
    state.lastSuccess = taken
    state.ledger.lastSuccess = SnapshotLedger.Success(
      time: taken.timeIntervalSince1970, file: fileName, raftIndex: outcome.facts.index, bytes: outcome.bytes,
      durationSeconds: outcome.duration.seconds)
    await saveLedger(&state)
    state.report.lastSuccess = taken.timeIntervalSince1970
    state.report.lastFile = fileName
    state.report.lastRaftIndex = outcome.facts.index
    state.report.lastBytes = outcome.bytes
    state.report.lastDurationSeconds = outcome.duration.seconds
    state.report.consecutiveFailures = 0
    state.report.stale = false
    state.staleSaidAt = nil
    let mib = Double(outcome.bytes) / 1_048_576
    let rounded = (mib * 10).rounded() / 10
    context.logger.notice(
      "snapshot taken: \(outcome.path) (\(rounded) MiB, raft index \(outcome.facts.index)) in \(DurationParsing.humanize(outcome.duration)), verified\(wasStale ? "; backups are fresh again" : "")",
      metadata: [
        "message_id": "\(MessageID.snapshotTaken.rawValue)", "snapshot.file": "\(outcome.path)", "snapshot.bytes": "\(outcome.bytes)",
        "snapshot.raft_index": "\(outcome.facts.index)", "snapshot.duration_ms": "\(outcome.duration.milliseconds)",
      ])

    let directory = config.directory
    let policy = config.retention
    let deletions = await OffPool.run { SnapshotDirectory.applyRetention(policy, directory: directory, now: now) }
    for deletion in deletions {
      if let error = deletion.error {
        context.logger.warning("retention could not delete \(directory)/\(deletion.fileName): \(error)")
      } else {
        state.report.retentionDeleted += 1
        context.logger.info(
          "retention deleted \(directory)/\(deletion.fileName): \(deletion.reason)",
          metadata: ["message_id": "\(MessageID.snapshotRetentionDeleted.rawValue)", "snapshot.file": "\(directory)/\(deletion.fileName)"])
      }
    }
    if let s3 = config.s3 { await ship(outcome.path, fileName: fileName, to: s3, &state) }
    state.due = config.schedule.nextDue(lastSuccess: taken, now: Date(), random: Double.random(in: 0...1))
  }

  /// Uploads the verified snapshot and applies retention in the bucket. A failure is reported
  /// but does not make the snapshot a failure: the local copy is good and stays.
  private func ship(_ path: String, fileName: String, to s3: S3Config, _ state: inout State) async {
    let uploader = SnapshotUploader(config: s3, environment: context.environment, makeTransport: context.makeObjectTransport)
    // An upload reports no progress, but cannot hang: a transfer below 1 KiB/s for 60 s is cut.
    let result: Result<UploadReceipt, SnapshotError> = await keepingHeartbeat {
      do throws(SnapshotError) { return .success(try await uploader.upload(path: path, fileName: fileName)) } catch { return .failure(error) }
    }
    switch result {
    case .success(let receipt):
      state.report.lastUpload = Date().timeIntervalSince1970
      context.logger.info(
        "snapshot uploaded to \(receipt.location) (\(receipt.bytes) bytes\(receipt.parts > 0 ? " in \(receipt.parts) parts" : ""), checked)",
        metadata: ["message_id": "\(MessageID.snapshotUploaded.rawValue)", "snapshot.object": "\(receipt.location)", "snapshot.file": "\(path)"])
    case .failure(let error):
      if Task.isCancelled { return }
      state.report.uploadFailures += 1
      state.report.failures[SnapshotError.Reason.upload.rawValue, default: 0] += 1
      context.logger.error(
        "snapshot upload failed: \(error.message) (the local snapshot \(path) is kept)",
        metadata: ["message_id": "\(MessageID.snapshotUploadFailed.rawValue)", "snapshot.file": "\(path)", "snapshot.reason": "\(error.reason.rawValue)"])
      return
    }
    let pruned: Result<[RemoteDeletion], SnapshotError> = await keepingHeartbeat {
      do throws(SnapshotError) { return .success(try await uploader.applyRetention(now: Date())) } catch { return .failure(error) }
    }
    switch pruned {
    case .success(let deletions):
      for deletion in deletions {
        state.report.retentionDeleted += 1
        context.logger.info(
          "retention deleted s3://\(s3.bucket)/\(deletion.key): \(deletion.reason)",
          metadata: ["message_id": "\(MessageID.snapshotRetentionDeleted.rawValue)", "snapshot.object": "s3://\(s3.bucket)/\(deletion.key)"])
      }
    case .failure(let error):
      if !Task.isCancelled { context.logger.warning("remote retention in s3://\(s3.bucket)/\(s3.prefix) failed: \(error.message)") }
    }
  }

  /// Runs `body` while promising the watchdog a beat every few seconds: for transfers that are
  /// bounded by their own low-speed limit but report no progress.
  private func keepingHeartbeat<T: Sendable>(_ body: @Sendable () async -> T) async -> T {
    let heartbeats = context.heartbeats
    return await withTaskGroup(of: Void.self) { group in
      group.addTask {
        while !Task.isCancelled {
          heartbeats.promise(Self.heartbeat, within: .seconds(30))
          try? await Task.sleep(for: .seconds(5))
        }
      }
      let value = await body()
      group.cancelAll()
      return value
    }
  }


  private func failed(_ error: SnapshotError, _ state: inout State) async {
    let now = Date()
    state.report.consecutiveFailures += 1
    state.report.failures[error.reason.rawValue, default: 0] += 1
    state.report.lastFailure = now.timeIntervalSince1970
    state.report.lastFailureReason = error.reason.rawValue
    state.ledger.lastFailure = SnapshotLedger.Failure(time: now.timeIntervalSince1970, reason: error.reason.rawValue, message: error.message)
    await saveLedger(&state)
    let delay = SnapshotPlan.retryDelay(failures: state.report.consecutiveFailures, cadence: context.config.schedule.cadence)
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
        context.logger.warning("cannot record the snapshot state in \(context.ledgerPath): \(error); after a restart the newest snapshot file's name is used instead")
      }
      state.ledgerProblem = true
    }
  }
}
