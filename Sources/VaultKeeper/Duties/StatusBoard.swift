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

/// The one place that knows every node's state. Duties post `NodeReport`s here; the board
/// renders STATUS (sent only when it changes), the state file for `vaultkeeper status`, and the
/// metrics textfile. Keeping it in one place means an event is never reported twice or
/// differently.
///
/// The board itself only keeps the report in memory and renders STATUS; sending it and writing
/// the files happen on threads of their own (a `QueuedNotifier` and a `ReportFileWriter`), so
/// a notify socket nobody reads or a stuck disk never holds up a node loop that posts here.
public actor StatusBoard {
  private var report: DaemonReport
  private let notifier: any ServiceManagerNotifier
  private let stateFile: String?
  private var metricsFile: String?
  private let fileWriter: ReportFileWriter
  private var lastStatus = ""
  private var lastWrite = 0.0
  private var lastWrittenShape: [ReportShape] = []
  private var lastWrittenSnapshot: SnapshotReport?
  private var lastWrittenCertificate: CertificateReport?
  private var lastWrittenDrill: DrillDutyReport?
  private var lastRender = 0.0
  private var expected: Set<String> = []
  private var readyWaiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
  private var nextWaiter: UInt64 = 0
  /// What each node's duty must remember across a reload (keyed by address).
  private var memories: [String: NodeMemory] = [:]
  /// Told every report, to notify `[[notify]]` targets of problems (never waits for them).
  private let alerts: AlertDispatcher?

  public init(
    configPath: String, notifier: any ServiceManagerNotifier, stateFile: String?, metricsDirectory: String?, logger: Logger,
    alerts: AlertDispatcher? = nil
  ) {
    self.alerts = alerts
    let now = Date().timeIntervalSince1970
    self.report = DaemonReport(pid: getpid(), startedAt: now, updatedAt: now, configPath: configPath, nodes: [])
    self.notifier = notifier
    self.stateFile = stateFile
    self.metricsFile = metricsDirectory.map { "\($0)/vaultkeeper.prom" }
    self.fileWriter = ReportFileWriter(logger: logger)
  }

  /// Sets the nodes for a (new) configuration, keeping reports of nodes that stay.
  public func configure(addresses: [String], configPath: String, metricsDirectory: String?) {
    metricsFile = metricsDirectory.map { "\($0)/vaultkeeper.prom" }
    let old = Dictionary(report.nodes.map { ($0.address, $0) }, uniquingKeysWith: { a, _ in a })
    report.configPath = configPath
    report.nodes = addresses.map { old[$0] ?? NodeReport(address: $0, state: .unknown, since: 0, lastCheck: 0) }
    expected = Set(addresses.filter { old[$0] == nil || old[$0]?.lastCheck == 0 })
    memories = memories.filter { addresses.contains($0.key) }
  }

  public func memory(for address: String) -> NodeMemory? { memories[address] }

  /// Posts a node's report and what its duty must remember, in one hop onto the board.
  public func post(_ node: NodeReport, memory: NodeMemory) {
    memories[node.address] = memory
    post(node)
  }

  public func post(_ node: NodeReport) {
    guard let index = report.nodes.firstIndex(where: { $0.address == node.address }) else { return }
    report.nodes[index] = node
    expected.remove(node.address)
    if expected.isEmpty {
      for waiter in readyWaiters.values { waiter.resume() }
      readyWaiters.removeAll()
    }
    publish()
  }

  /// Returns once every configured node has reported at least once.
  /// Returns once every configured node has reported at least once, or when the calling task
  /// is cancelled (a SIGTERM before READY must not wait for a node that never answers).
  public func waitForFirstResults() async {
    if expected.isEmpty || Task.isCancelled { return }
    nextWaiter += 1
    let id = nextWaiter
    await withTaskCancellationHandler {
      await withCheckedContinuation { continuation in
        if Task.isCancelled { continuation.resume() } else { readyWaiters[id] = continuation }
      }
    } onCancel: {
      Task { await self.releaseWaiter(id) }
    }
  }

  private func releaseWaiter(_ id: UInt64) {
    readyWaiters.removeValue(forKey: id)?.resume()
  }

  public func snapshot() -> DaemonReport { report }

  /// The snapshot duty's report (nil removes it, when a reload disables `[snapshot]`).
  public func post(snapshot: SnapshotReport?) {
    report.snapshot = snapshot
    publish()
  }

  /// The certificate duty's report (nil removes it).
  public func post(certificate: CertificateReport?) {
    report.certificate = certificate
    publish()
  }

  /// The restore drill duty's report (nil removes it, when a reload disables the drill).
  public func post(drill: DrillDutyReport?) {
    report.drill = drill
    publish()
  }

  /// The last reported state of the node at `address` (`unknown` before its first check).
  public func state(of address: String) -> NodeState {
    report.nodes.first { $0.address == address }?.state ?? .unknown
  }

  public func clusterName(of address: String) -> String? {
    report.nodes.first { $0.address == address }?.clusterName
  }

  public func statusLine() -> String {
    StatusLine.render(report, now: Date().timeIntervalSince1970)
  }

  private func publish() {
    let now = Date().timeIntervalSince1970
    report.updatedAt = now
    alerts?.observe(report)
    // What an operator sees changes only with these fields (and, for "unsealed 3m ago", with
    // time): re-render STATUS when they change or once a second, rewrite the files when they
    // change or every 5 s. A fast poll must not turn into a render-and-write loop.
    let shape = report.nodes.map { ReportShape($0) }
    let changed = shape != lastWrittenShape || report.snapshot != lastWrittenSnapshot || report.certificate != lastWrittenCertificate
      || report.drill != lastWrittenDrill
    if changed || now - lastRender >= 1 {
      lastRender = now
      let status = StatusLine.render(report, now: now)
      if status != lastStatus {
        lastStatus = status
        notifier.send(["STATUS=\(status)"])
      }
    }
    guard changed || now - lastWrite >= 5 else { return }
    lastWrittenShape = shape
    lastWrittenSnapshot = report.snapshot
    lastWrittenCertificate = report.certificate
    lastWrittenDrill = report.drill
    lastWrite = now
    writeFiles()
  }

  /// Queues the state file and metrics for writing (also called at shutdown).
  public func writeFiles() {
    var current = report
    current.notifyDatagramsDropped = (notifier as? QueuedNotifier)?.droppedCount
    current.notifications = alerts.map(\.stats).flatMap { $0.isEmpty ? nil : $0 }
    fileWriter.write(ReportFiles(report: current, stateFile: stateFile, metricsFile: metricsFile))
  }

  /// Writes the latest report, waiting for at most `limit` (at shutdown: the last state file
  /// should reach the disk, but a stuck disk must not hold the stop).
  public func flushFiles(within limit: Duration) async -> Bool {
    writeFiles()
    return await fileWriter.drain(within: limit)
  }
}

/// Per-node knowledge that must survive a configuration reload: forgetting that an operator
/// sealed a node would make a reload unseal it.
public struct NodeMemory: Sendable {
  public var judge: SealJudge
  public var previous: NodeState?
  public var hold: HoldReason?
  public var report: NodeReport
  public var wrongKeyUntil: ContinuousClock.Instant?
  public var wrongKeyCount: Int
}

/// The parts of a node report that change what an operator sees (not timestamps or latency).
struct ReportShape: Equatable {
  var address: String
  var state: NodeState
  var hold: HoldReason?
  var version: String?
  var unsealAttempts: [String: Int]
  var lastUnsealTime: Double?

  init(_ node: NodeReport) {
    address = node.address
    state = node.state
    hold = node.hold
    version = node.version
    unsealAttempts = node.unsealAttempts
    lastUnsealTime = node.lastUnsealTime
  }
}
