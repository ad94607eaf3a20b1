// SPDX-License-Identifier: Apache-2.0
import Logging
import ServiceLifecycle

/// The scheduled restore drill of `vaultkeeper run` (issue #12): on the active node, whose
/// daemon takes the snapshots, it drills the newest snapshot when `DrillSchedule` says so,
/// under the `SnapshotWorkLock` (never beside a snapshot, an upload or another drill), records
/// the result in the drill ledger, journals it, and reports it to the `StatusBoard`.
///
/// New snapshots are learnt from the snapshot duty's report on the board (its last good file),
/// so this duty needs nothing from the snapshot duty but the board and the lock.
public final class DrillDuty: Sendable {
  public struct Context: Sendable {
    public var config: SnapshotDrillConfig
    /// `[snapshot] directory`: where the snapshot duty's files are.
    public var snapshotDirectory: String
    /// The local node (`[vault]`): its role decides whether this daemon drills.
    public var node: NodeConfig
    public var board: StatusBoard
    public var heartbeats: Heartbeats
    public var logger: Logger
    public var lock: SnapshotWorkLock
    public var runner: any DrillRunner
    public var ledgerPath: String
    /// Read for every decision and waited on between looks (tests: virtual time).
    public var clock: any DutyClock = SystemNodeClock()

    public init(config: SnapshotDrillConfig, snapshotDirectory: String, node: NodeConfig, board: StatusBoard, heartbeats: Heartbeats,
      logger: Logger, lock: SnapshotWorkLock, runner: any DrillRunner, ledgerPath: String)
    {
      self.config = config
      self.snapshotDirectory = snapshotDirectory
      self.node = node
      self.board = board
      self.heartbeats = heartbeats
      self.logger = logger
      self.lock = lock
      self.runner = runner
      self.ledgerPath = ledgerPath
    }
  }

  static let heartbeat = "drill"
  /// How often the role and the snapshot duty's last file are looked at while nothing is due.
  static let recheck: Duration = .seconds(5)
  /// Beyond the drill's own timeout: killing its server, reaping it, removing the directory.
  static let cleanupMargin: Duration = .seconds(60)

  public let context: Context

  public init(context: Context) {
    self.context = context
  }

  struct State {
    var schedule: DrillSchedule
    var report: DrillDutyReport
    var ledgerProblem = false
  }

  public func run() async {
    var state = await start()
    defer { context.heartbeats.retire(Self.heartbeat) }
    await context.board.waitForFirstResults()
    while !Task.isCancelled {
      let now = context.clock.now()
      let active = SnapshotPlan.role(localState: await context.board.state(of: context.node.name)) == .take
      if let snapshot = await context.board.snapshot().snapshot, let file = snapshot.lastFile, let time = snapshot.lastSuccess {
        state.schedule.snapshotCommitted(.init(file: file, time: time))
      }
      let decision = state.schedule.decide(now: now.wall, active: active)
      if case .drill(let mark) = decision {
        await drill(mark, &state)
        continue
      }
      var nap = Self.recheck
      if case .wait(let until?) = decision {
        // Clamped as a Double first: a ledger edited by hand may hold any time at all.
        let seconds = min(max(until - now.wall, 0), Self.recheck.seconds)
        nap = .milliseconds(Int64(seconds * 1000) + 1)
      }
      state.report.phase = decision == .standby ? .standby : .idle
      state.report.nextDue = decision == .standby ? nil : state.schedule.earliest(now: now.wall)
      state.report.stale = decision != .standby && state.report.isStale(now: now.wall)
      await context.board.post(drill: state.report)
      context.heartbeats.promise(Self.heartbeat, within: nap + .seconds(30))
      try? await context.clock.sleep(for: nap)
    }
  }

  private func start() async -> State {
    let path = context.ledgerPath
    let now = context.clock.now().wall
    let loaded = await OffPool.run { DrillLedger.load(path: path) }
    var ledger = loaded ?? DrillLedger(trackingSince: now)
    // A start dated in the future (a clock that was ahead) must not put off the stale alert.
    if ledger.trackingSince > now { ledger.trackingSince = now }
    var schedule = DrillSchedule(interval: context.config.interval, ledger: ledger)
    var report = DrillDutyReport(phase: .idle, trackingSince: ledger.trackingSince, staleAfterSeconds: context.config.staleAfter.seconds)
    if let previous = await context.board.snapshot().drill {
      // A reload (the board still shows the last generation's drill): the counters stay.
      report.failures = previous.failures
    }
    // A reload or a restart is how an operator installs fixed shares (a restart for an
    // encrypted credential: systemd decrypts it only when the unit starts), so a failed drill
    // is retried at once, on the snapshot it failed on, to prove the fix.
    schedule.retryNow()
    report.apply(ledger)
    var state = State(schedule: schedule, report: report)
    // Record when tracking began at once, so a restart does not restart the stale clock.
    if loaded == nil { await saveLedger(&state) }
    return state
  }

  private func drill(_ mark: DrillSchedule.SnapshotMark, _ state: inout State) async {
    let path = "\(context.snapshotDirectory)/\(mark.file)"
    state.report.phase = .running
    await context.board.post(drill: state.report)
    // Waiting for a snapshot or an upload to finish is no work of ours: no promise meanwhile
    // (theirs stand). Once the lock is ours, the drill is bounded by its timeout.
    context.heartbeats.retire(Self.heartbeat)
    let heartbeats = context.heartbeats
    let budget = context.config.timeout + Self.cleanupMargin
    let runner = context.runner
    let clock = context.clock
    let ran = await context.lock.exclusive { () async -> (Result<DrillReport, DrillFailure>, Duration) in
      heartbeats.promise(Self.heartbeat, within: budget)
      let started = clock.now().monotonic
      let outcome = await runner.drill(path: path)
      return (outcome, started.duration(to: clock.now().monotonic))
    }
    guard let (outcome, elapsed) = ran else { return }  // cancelled while waiting for the lock
    if case .failure(let failure) = outcome, failure.reason == .cancelled || Task.isCancelled {
      // A stop or reload is no verdict on the snapshot: nothing is recorded.
      context.logger.notice("restore drill of \(path) interrupted: vaultkeeper is stopping or reloading (its throwaway server and directory are removed)")
      return
    }
    if case .failure(let failure) = outcome, case .busy(let detail) = failure.reason {
      // A drill run by hand holds the workspace: no verdict either. Look again after a pause.
      context.logger.notice("restore drill of \(path) postponed: \(detail); it runs once that one has ended")
      state.report.phase = .idle
      await context.board.post(drill: state.report)
      context.heartbeats.promise(Self.heartbeat, within: Self.recheck + .seconds(30))
      try? await context.clock.sleep(for: Self.recheck)
      return
    }
    let finished = context.clock.now()
    let failure: DrillFailure?
    let duration: Duration
    switch outcome {
    case .success(let report):
      failure = nil
      duration = report.duration
    case .failure(let failed):
      failure = failed
      duration = elapsed
    }
    state.schedule.drillFinished(mark, at: finished.wall, duration: duration, failure: failure)
    await saveLedger(&state)
    state.report.apply(state.schedule.ledger)
    if let failure { state.report.failures[failure.stage.rawValue, default: 0] += 1 }
    state.report.phase = .idle
    state.report.nextDue = state.schedule.earliest(now: finished.wall)
    state.report.stale = state.report.isStale(now: finished.wall)
    DrillJournal.log(DrillJournal.entry(path: path, outcome: outcome), to: context.logger)
    await context.board.post(drill: state.report)
  }

  /// Durable (fsync), so off the cooperative pool; a failing disk is reported once per run of failures.
  private func saveLedger(_ state: inout State) async {
    let path = context.ledgerPath
    var saver = LedgerSaver(path: path, failing: state.ledgerProblem)
    if let error = await saver.save(state.schedule.ledger) {
      context.logger.warning("cannot record the restore drill state in \(path): \(error); after a restart the last drill is not known, and one runs after the next snapshot")
    }
    state.ledgerProblem = saver.failing
  }
}

extension DrillDuty {
  /// The daemon's drill duty for one generation; nil when `[snapshot.drill]` is absent or
  /// disabled. `lock` is the snapshot duty's work lock.
  public static func forGeneration(
    snapshot: SnapshotConfig, node: NodeConfig, keys: KeyShares?, board: StatusBoard, heartbeats: Heartbeats, logger: Logger,
    lock: SnapshotWorkLock, environment: [String: String], unitWatcher: (any UnitWatcher)?, makeTransport: @escaping @Sendable (NodeConfig) -> any HTTPTransport,
    makeDecompressor: @escaping @Sendable () throws(SnapshotVerificationError) -> any StreamDecompressor
  ) -> DrillDuty? {
    guard snapshot.enabled, let drill = snapshot.drill, drill.enabled else { return nil }
    let snapshotLedger = SnapshotLedger.path(config: snapshot, environment: environment)
    let runner = ServerDrillRunner(
      config: drill, auth: snapshot.auth, keys: keys, stateDirectory: DrillLedger.directory(of: snapshotLedger), environment: environment,
      serverUnit: node.unit, unitWatcher: unitWatcher, makeTransport: makeTransport, makeDecompressor: makeDecompressor)
    let context = Context(
      config: drill, snapshotDirectory: snapshot.directory, node: node, board: board, heartbeats: heartbeats, logger: logger, lock: lock,
      runner: runner, ledgerPath: DrillLedger.path(snapshotLedgerPath: snapshotLedger))
    return DrillDuty(context: context)
  }
}

/// Run by the daemon as one of a generation's duties (`NamedDuty("drill", …, onStop: .cancelAtOnce)`):
/// a stop cancels a running drill, whose server and directory are removed before `run` returns.
extension DrillDuty: Service {}
