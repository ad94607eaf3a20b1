// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import ServiceLifecycle
import Synchronization

/// The certificate duty of `vaultkeeper run` (`[certificate]`): when certbot (or anyone)
/// renews Vault's certificate, validate the new files, reload Vault, and prove on a fresh TLS
/// connection that Vault serves the new certificate; besides, watch both certificates' expiry.
///
/// This is the I/O half: `CertificateWatcher` (inotify, debounce, byte-identical gate) and a
/// `check_interval` timer say when to look; `CertificateInspector` validates the files; a
/// `VaultReloader` (systemd, signal, command) reloads; a `ServedCertificateSource` shows what
/// Vault serves. Every decision (what follows a change, when to reload, how long to keep
/// probing, what to log and how often) is `CertificateDecider`'s, fed what the loop saw.
///
/// On graceful shutdown the input in hand is finished (each step is bounded), then the duty ends.
public final class CertificateDuty: Service, Sendable {
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

  /// Validates the files as they are at the given time.
  typealias Inspect = @Sendable (CertificateConfig, Date) async -> CertificateVerdict

  static let heartbeat = "certificate"

  public let context: Context
  let clock: any DutyClock
  let inspect: Inspect
  /// Advanced only by the task running `run()` (or a test's `handle`); the Mutex makes the
  /// class Sendable and lets tests read the report.
  private let decider: Mutex<CertificateDecider>

  public convenience init(context: Context) {
    self.init(context: context, clock: SystemNodeClock(), inspect: { config, now in await CertificateInspector.inspectFiles(config, now: now) })
  }

  init(context: Context, clock: any DutyClock, inspect: @escaping Inspect) {
    self.context = context
    self.clock = clock
    self.inspect = inspect
    let settings = CertificateDecider.Settings(config: context.config, node: context.node.name, reloader: context.reloader.summary)
    decider = Mutex(CertificateDecider(settings: settings))
  }

  /// The report as it stands (tests).
  var report: CertificateReport { decider.withLock { $0.report } }

  public func run() async {
    defer { context.heartbeats.retire(Self.heartbeat) }
    let config = context.config
    let (inputs, feed) = AsyncStream.makeStream(of: CertificateDecider.Input.self)
    guard let events = startWatching(feed) else { return }
    let clock = clock
    await withTaskGroup(of: Void.self) { group in
      group.addTask {
        for await event in events { feed.yield(.watch(event)) }
        feed.finish()
      }
      group.addTask {
        while (try? await clock.sleep(for: config.checkInterval)) != nil { feed.yield(.tick) }
      }
      // Graceful shutdown ends the wait for the next input, never the input in hand.
      for await input in inputs.cancelOnGracefulShutdown() {
        if Task.isCancelled { break }
        await handle(input)
      }
      group.cancelAll()
    }
  }

  /// The watcher's events, with inotify if it can be had, else with the re-check timer alone;
  /// nil when the files cannot be followed at all.
  private func startWatching(_ feed: AsyncStream<CertificateDecider.Input>.Continuation) -> AsyncStream<CertificateWatchEvent>? {
    let config = context.config
    let files = CertificateFileSet(certificate: config.certFile, key: config.keyFile, ca: config.caFile)
    var watcher = CertificateWatcher(files: files, recheckEvery: config.checkInterval)
    // Called on the watch thread: an input like the others, so it is said in order.
    watcher.onInotifyFailure = { reason in feed.yield(.inotifyFailed(reason)) }
    do {
      let events = try watcher.events()
      decider.withLock { $0.watching(.inotify) }
      return events
    } catch {
      decider.withLock { $0.watching(.timer) }
      context.logger.warning("\(error); re-checking the certificate files every \(DurationParsing.format(config.checkInterval)) instead")
      var polling = watcher
      polling.useInotify = false
      guard let fallback = try? polling.events() else {
        context.logger.error("cannot watch the certificate files at all: certificate renewals are not followed")
        return nil
      }
      return fallback
    }
  }

  /// Handles one input to the end: performs each action the decider names and feeds the result
  /// back, then posts the report. Returns early (nothing posted) when the task is cancelled.
  func handle(_ input: CertificateDecider.Input) async {
    // Each step is bounded (reload timeout, probes, the verify window): promise accordingly.
    let config = context.config
    context.heartbeats.promise(Self.heartbeat, within: config.reloadTimeout + config.verifyWindow + .seconds(60))
    var step = decider.withLock { [now = clock.now()] in $0.received(input, at: now) }
    while true {
      write(step.journal)
      switch step.action {
      case .done:
        await context.board.post(certificate: report)
        context.heartbeats.retire(Self.heartbeat)
        return
      case .validate:
        let verdict = await inspect(config, Date(timeIntervalSince1970: clock.now().wall))
        if Task.isCancelled { return }
        step = decider.withLock { [now = clock.now()] in $0.inspected(verdict, at: now) }
      case .reload:
        let outcome = await context.reloader.reload()
        if Task.isCancelled { return }
        step = decider.withLock { [now = clock.now()] in $0.reloaded(outcome, at: now) }
      case .probeServed(let wait):
        if wait > .zero {
          do { try await clock.sleep(for: wait) } catch { return }
        }
        let served = await context.served.servedCertificate()
        if Task.isCancelled { return }
        step = decider.withLock { [now = clock.now()] in $0.servedRead(served, at: now) }
      }
    }
  }

  private func write(_ journal: [JournalEntry]) {
    for entry in journal {
      var metadata: Logger.Metadata = [:]
      if let id = entry.id { metadata["message_id"] = "\(id.rawValue)" }
      for (name, value) in entry.fields { metadata[name] = "\(value)" }
      context.logger.log(level: entry.level, "\(entry.message)", metadata: metadata)
    }
  }
}
