// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import Logging
import ServiceLifecycle
import Synchronization
import UnixSignals

/// What the daemon needs from the outside world, injected by the executable (and by tests).
public struct DaemonEnvironment: Sendable {
  public var notifier: any ServiceManagerNotifier
  public var makeTransport: @Sendable (NodeConfig) -> any HTTPTransport
  /// gunzip for verifying snapshots while they stream (zlib, in the Compression adapter).
  public var makeDecompressor: @Sendable () throws(SnapshotVerificationError) -> any StreamDecompressor
  /// The signed-HTTP transport for `[snapshot.s3]` uploads.
  public var makeObjectTransport: @Sendable (S3Config, S3Credentials) -> any ObjectTransport
  /// How Vault is reloaded for a renewed certificate (systemd, signal, command).
  public var makeReloader: @Sendable (CertificateConfig) -> any VaultReloader
  /// What Vault serves, on a fresh TLS connection each time.
  public var makeServedSource: @Sendable (NodeConfig) -> any ServedCertificateSource
  public var unitWatcher: (any UnitWatcher)?
  public var environment: [String: String]
  /// Where `vaultkeeper status` finds us (`$RUNTIME_DIRECTORY/state.json`).
  public var stateFile: String?
  /// Delivers `[[notify]]` messages (a libcurl webhook or a command); nil: none are sent.
  public var makeNotifySender: AlertDispatcher.MakeSender?

  public init(notifier: any ServiceManagerNotifier, makeTransport: @escaping @Sendable (NodeConfig) -> any HTTPTransport,
    makeDecompressor: @escaping @Sendable () throws(SnapshotVerificationError) -> any StreamDecompressor,
    makeObjectTransport: @escaping @Sendable (S3Config, S3Credentials) -> any ObjectTransport,
    makeReloader: @escaping @Sendable (CertificateConfig) -> any VaultReloader,
    makeServedSource: @escaping @Sendable (NodeConfig) -> any ServedCertificateSource,
    unitWatcher: (any UnitWatcher)?, environment: [String: String], stateFile: String?, makeNotifySender: AlertDispatcher.MakeSender? = nil)
  {
    self.makeNotifySender = makeNotifySender
    self.notifier = notifier
    self.makeTransport = makeTransport
    self.makeDecompressor = makeDecompressor
    self.makeObjectTransport = makeObjectTransport
    self.makeReloader = makeReloader
    self.makeServedSource = makeServedSource
    self.unitWatcher = unitWatcher
    self.environment = environment
    self.stateFile = stateFile
  }
}

/// A loaded configuration with its key shares: what one "generation" of duties runs on.
public struct Generation: Sendable {
  public var config: Config
  public var keys: KeyShares?

  public init(config: Config, keys: KeyShares?) {
    self.config = config
    self.keys = keys
  }

  /// Loads config and keys; the same path serves start-up and SIGHUP.
  public static func load(path: String, environment: [String: String]) throws -> Generation {
    let config = try ConfigLoader().load(path: path)
    var keys: KeyShares?
    if config.unseal.enabled, let source = config.unseal.keySource {
      keys = try KeyShareLoader.load(source: source, environment: environment)
    }
    return Generation(config: config, keys: keys)
  }
}

/// The `vaultkeeper run` service: runs a generation of duties (one `NodeDuty` per node, the
/// snapshot and certificate duties when enabled), reloads on SIGHUP, pings the watchdog while
/// duties make progress, speaks sd_notify throughout, and stops within `StopBounds`.
public final class Daemon: Service, Sendable {
  let configPath: String
  let initial: Generation
  let env: DaemonEnvironment
  let logger: Logger
  let board: StatusBoard
  let heartbeats = Heartbeats()
  let reloadBell = Doorbell()
  /// Keeps a restore drill away from snapshot work in this daemon, across reloads: snapshots
  /// and upload passes hold it shared (beside each other), a drill exclusive.
  let workLock = SnapshotWorkLock()
  let bounds: StopBounds
  /// What the stop bounds are measured on (tests: virtual time).
  let clock: any DutyClock

  /// Every datagram to systemd goes through this queue: a notify socket nobody reads blocks
  /// only the queue's own thread, never a duty.
  let notifier: QueuedNotifier
  /// `[[notify]]`: fed by the board with every report it publishes.
  let alerts: AlertDispatcher?

  public convenience init(configPath: String, initial: Generation, environment: DaemonEnvironment, logger: Logger) {
    self.init(configPath: configPath, initial: initial, environment: environment, logger: logger, bounds: .unit, clock: SystemNodeClock())
  }

  init(configPath: String, initial: Generation, environment: DaemonEnvironment, logger: Logger, bounds: StopBounds, clock: any DutyClock) {
    self.configPath = configPath
    self.initial = initial
    var env = environment
    let notifier = QueuedNotifier(environment.notifier)
    env.notifier = notifier
    self.notifier = notifier
    self.env = env
    self.logger = logger
    self.bounds = bounds
    self.clock = clock
    let notifyState = NotifyStateFile.path(environment: environment.environment).map(NotifyStateFile.init(path:))
    let alerts = environment.makeNotifySender.map { AlertDispatcher(logger: logger, clock: clock, stateFile: notifyState, makeSender: $0) }
    self.alerts = alerts
    self.board = StatusBoard(
      configPath: configPath, notifier: notifier, stateFile: environment.stateFile,
      metricsDirectory: initial.config.metrics.textfileDirectory, logger: logger, alerts: alerts)
  }

  public func run() async throws {
    announceKeys(initial)
    await alerts?.configure(initial.config.notify, unsealEnabled: Self.unsealing(initial))
    let marker = UncleanStopMarker.path(environment: env.environment).map(UncleanStopMarker.init(path:))
    if let marker { await noteUncleanStop(marker) }
    await withGracefulShutdownHandler {
      // The generations end on graceful shutdown (their duties stopped within the bounds) or
      // cancellation; the helpers (signals, watchdog) may end early (no watchdog configured),
      // so wait for the generations specifically.
      await withTaskGroup(of: Bool.self) { group in
        group.addTask { await self.forwardReloadSignals(); return false }
        group.addTask { await self.runWatchdog(); return false }
        group.addTask { await self.runGenerations(); return true }
        while let generationsEnded = await group.next(), !generationsEnded {}
        group.cancelAll()
      }
    } onGracefulShutdown: {
      self.env.notifier.send(["STOPPING=1", "STATUS=stopping"])
      self.logger.notice("stopping on request", metadata: ["message_id": "\(MessageID.stopping.rawValue)"])
    }
    // The last state (stopping) on disk and STOPPING=1 delivered, each within its bound: a
    // stuck disk or socket must not hold the stop past the unit's TimeoutStopSec.
    _ = await board.flushFiles(within: bounds.stateFile)
    _ = await notifier.drain(within: bounds.notify)
    // What the targets were told and not yet resolved, on disk for the next start (bounded).
    _ = await alerts?.flushState(within: bounds.notify / 2)
    // A clean stop from here on, whatever the notification targets take to let go.
    if let marker { await OffPool.run { marker.end() } }
    await alerts?.shutdown()
  }

  /// Whether vaultkeeper unseals with this generation: without keys a sealed node is a problem.
  static func unsealing(_ generation: Generation) -> Bool {
    generation.config.unseal.enabled && generation.keys != nil
  }

  /// Journals (and notifies) that the previous run did not stop cleanly, and marks this one.
  private func noteUncleanStop(_ marker: UncleanStopMarker) async {
    let pid = getpid()
    let (previous, error) = await OffPool.run { marker.begin(pid: pid) }
    if let error {
      logger.warning("cannot write \(marker.path) (\(error)): the next start cannot tell whether this run stopped cleanly")
    }
    guard let previous else { return }
    let summary = "vaultkeeper started after an unclean stop: the previous run (\(previous.text)) crashed, was killed, or the machine went down"
    logger.warning("\(summary)", metadata: ["message_id": "\(MessageID.uncleanStop.rawValue)", "previous.pid": "\(previous.text)"])
    alerts?.announce(.info(.crashed, severity: .warning, summary: summary, time: clock.now().wall))
  }

  private func forwardReloadSignals() async {
    let signals = await UnixSignalsSequence(trapping: .sighup)
    for await _ in signals { reloadBell.ring() }
  }

  /// How a generation ended.
  enum GenerationEnd: Sendable {
    /// SIGHUP brought a configuration that loads.
    case replaced(Generation)
    /// Graceful shutdown (SIGTERM, SIGINT).
    case stopping
    case cancelled
  }

  private func runGenerations() async {
    var generation = initial
    var first = true
    while true {
      let (duties, transports) = await duties(for: generation)
      let group = DutyGroup(duties: duties, logger: logger, clock: clock)
      group.start()
      let end = await waitForEnd(of: generation, announceReady: first)
      switch end {
      case .replaced: await group.stop(.cancel, bounds: bounds)
      case .stopping: await group.stop(.graceful, bounds: bounds)
      // Our own task is cancelled: no bound can be waited for any more.
      case .cancelled: group.cancel()
      }
      // Aborts what a duty left behind may still be doing with them; frees their threads. Each
      // shutdown may wait up to 3 s for its thread: off the cooperative pool, all at once, so
      // the stop stays inside TimeoutStopSec however many nodes are stuck.
      await withTaskGroup(of: Void.self) { group in
        for transport in transports { group.addTask { await OffPool.run { transport.shutdown() } } }
      }
      guard case .replaced(let next) = end else { return }
      first = false
      generation = next
      // RELOADING=1 and READY=1 delivered before the entry that says the reload is done, so
      // systemd's view and the journal agree on the order (bounded: a blocked socket must not
      // hold the new generation).
      _ = await notifier.drain(within: bounds.notify)
      let nodes = next.config.nodes.count
      logger.notice(
        "configuration reloaded from \(configPath): \(nodes) node\(nodes == 1 ? "" : "s")",
        metadata: ["message_id": "\(MessageID.configReloaded.rawValue)"])
      announceKeys(next)
    }
  }

  /// Start-up facts about the configuration and keys an operator should hear once.
  private func announceKeys(_ generation: Generation) {
    let health = generation.config.health
    if health.interval < .seconds(1) || health.fastInterval < .milliseconds(50) {
      logger.warning("health.interval \(DurationParsing.format(health.interval)) / fast_interval \(DurationParsing.format(health.fastInterval)) are test-grade values: every node is polled that often")
    }
    if let snapshot = generation.config.snapshot, snapshot.enabled, snapshot.schedule.cadence < .seconds(60) {
      logger.warning("snapshot.interval \(DurationParsing.format(snapshot.schedule.cadence)) is a test-grade value: a snapshot is taken that often")
    }
    guard let keys = generation.keys else { return }
    if keys.containedRootToken, DaemonNotes.first("roottoken:\(keys.origin)") {
      logger.warning("\(keys.origin) also contains a root token; vaultkeeper ignores it, but it should not be stored next to the unseal keys (revoke it or keep it offline)")
    }
    if let threshold = keys.declaredThreshold, keys.count < threshold {
      logger.critical(
        "\(keys.origin) holds \(keys.count) unseal key share\(keys.count == 1 ? "" : "s") but the threshold is \(threshold): vaultkeeper cannot unseal on its own",
        metadata: ["message_id": "\(MessageID.tooFewShares.rawValue)"])
    }
    if let first = keys.shares.first, !first.isLocked {
      logger.warning("could not lock key memory (mlock); raise LimitMEMLOCK= for the unit. Keys are still excluded from core dumps and wiped after use")
    }
  }

  /// The duties of one generation, each by the name its stop is logged under, and the node
  /// transports to shut down after them. A new duty is one more block here.
  private func duties(for generation: Generation) async -> ([NamedDuty], [any HTTPTransport]) {
    let config = generation.config
    await alerts?.configure(config.notify, unsealEnabled: Self.unsealing(generation))
    await board.configure(addresses: config.nodes.map(\.name), configPath: configPath, metricsDirectory: config.metrics.textfileDirectory)
    var duties: [NamedDuty] = []
    var transports: [any HTTPTransport] = []
    for node in config.nodes {
      let transport = env.makeTransport(node)
      transports.append(transport)
      let unitView = UnitView()
      let context = NodeSupervisor.Context(
        node: node, health: config.health, unseal: config.unseal, keys: generation.keys,
        client: VaultClient(transport: transport, timeout: node.timeout), board: board, heartbeats: heartbeats, doorbell: Doorbell(),
        unitView: unitView, logger: logger)
      let supervisor = NodeSupervisor(context: context, memory: await board.memory(for: node.name))
      duties.append(
        NamedDuty("node \(node.name)", NodeDuty(supervisor: supervisor, transport: transport, unitView: unitView, unitWatcher: env.unitWatcher, logger: logger)))
    }
    if let snapshot = config.snapshot, snapshot.enabled {
      var context = SnapshotDuty.Context(
        config: snapshot, node: config.vault, board: board, heartbeats: heartbeats, logger: logger, environment: env.environment,
        makeTransport: env.makeTransport, makeDecompressor: env.makeDecompressor, makeObjectTransport: env.makeObjectTransport,
        ledgerPath: SnapshotLedger.path(config: snapshot, environment: env.environment), workLock: workLock)
      context.peers = config.peers
      // No graceful stop of its own yet: cancelled when the stop begins, as before.
      duties.append(NamedDuty("snapshot", SnapshotDuty(context: context), onStop: .cancelAtOnce))
      // The restore drill (issue #12): after the snapshots, under the same work lock.
      if let drill = DrillDuty.forGeneration(
        snapshot: snapshot, node: config.vault, keys: generation.keys, board: board, heartbeats: heartbeats, logger: logger, lock: workLock,
        environment: env.environment, unitWatcher: env.unitWatcher, makeTransport: env.makeTransport, makeDecompressor: env.makeDecompressor)
      {
        duties.append(NamedDuty("drill", drill, onStop: .cancelAtOnce))
      } else {
        await board.post(drill: nil)
      }
    } else {
      await board.post(snapshot: nil)
      await board.post(drill: nil)
    }
    if let certificate = config.certificate, certificate.enabled {
      let context = CertificateDuty.Context(
        config: certificate, node: config.vault, board: board, heartbeats: heartbeats, logger: logger,
        reloader: env.makeReloader(certificate), served: env.makeServedSource(config.vault))
      duties.append(NamedDuty("certificate", CertificateDuty(context: context)))
    } else {
      await board.post(certificate: nil)
    }
    return (duties, transports)
  }

  /// Waits while a generation runs: for SIGHUP with a configuration that loads, for graceful
  /// shutdown, or for cancellation. Announces READY=1 on the first generation.
  private func waitForEnd(of generation: Generation, announceReady: Bool) async -> GenerationEnd {
    let nodes = generation.config.nodes.map(\.name)
    return await withTaskGroup(of: GenerationEnd?.self) { group in
      if announceReady {
        group.addTask {
          await self.board.waitForFirstResults()
          guard !Task.isCancelled else { return nil }  // stopping before the first results: no READY
          let status = await self.board.statusLine()
          // Log first, so our "ready" entry precedes systemd's "Started" in the journal.
          self.logger.info(
            "vaultkeeper \(VaultKeeperVersion.string) ready: watching \(nodes.joined(separator: ", "))",
            metadata: ["message_id": "\(MessageID.started.rawValue)"])
          self.env.notifier.send(["READY=1", "STATUS=\(status)"])
          return nil
        }
      }
      group.addTask { await self.waitForReload().map { .replaced($0) } ?? .cancelled }
      group.addTask {
        do {
          try await gracefulShutdown()
          return .stopping
        } catch {
          return .cancelled
        }
      }
      var end = GenerationEnd.cancelled
      while let result = await group.next() {
        if let result {
          end = result
          break
        }
      }
      group.cancelAll()
      return end
    }
  }

  /// Waits for SIGHUP and a configuration that loads; a bad one is logged and rejected while
  /// the running generation carries on untouched.
  private func waitForReload() async -> Generation? {
    while !Task.isCancelled {
      guard await reloadBell.wait(for: .seconds(3600)) else { continue }
      if Task.isCancelled { return nil }
      env.notifier.send(["RELOADING=1", "MONOTONIC_USEC=\(Self.monotonicMicroseconds())", "STATUS=reloading configuration"])
      do {
        let next = try Generation.load(path: configPath, environment: env.environment)
        env.notifier.send(["READY=1"])
        return next
      } catch {
        logger.error(
          "configuration rejected, keeping the running one: \(error)",
          metadata: ["message_id": "\(MessageID.configRejected.rawValue)"])
        env.notifier.send(["READY=1", "STATUS=\(await board.statusLine())"])
      }
    }
    return nil
  }

  /// CLOCK_MONOTONIC in microseconds, for `MONOTONIC_USEC=` (systemd 253+ matches reloads by it).
  static func monotonicMicroseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
  }

  /// Pings systemd's watchdog every half interval, but only while no duty is overdue.
  private func runWatchdog() async {
    guard let timeout = env.notifier.watchdogTimeout else { return }
    var complained = false
    while !Task.isCancelled {
      let overdue = heartbeats.overdue()
      if overdue.isEmpty {
        env.notifier.send(["WATCHDOG=1"])
        complained = false
      } else if !complained {
        complained = true
        logger.error("duty stuck (\(overdue.joined(separator: ", "))): withholding the watchdog ping so systemd restarts vaultkeeper")
      }
      try? await Task.sleep(for: timeout / 2)
    }
  }
}

/// The snapshot duty runs under ServiceLifecycle like every duty (`NamedDuty`).
extension SnapshotDuty: Service {}

/// Process-wide "say it once" memory for notes such as "no system bus".
enum DaemonNotes {
  private static let said = Mutex<Set<String>>([])
  static func once(_ key: String, _ body: () -> Void) {
    if first(key) { body() }
  }

  /// True the first time `key` is asked about in this process.
  static func first(_ key: String) -> Bool {
    said.withLock { $0.insert(key).inserted }
  }
}
