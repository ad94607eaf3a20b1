// SPDX-License-Identifier: Apache-2.0
import Logging
import ServiceLifecycle
import Synchronization
import Testing

@testable import VaultKeeper

/// A Vault node whose health request never answers until the request is cancelled: the node
/// duty is then inside a pass and cannot end on graceful shutdown.
final class UnansweringVault: HTTPTransport, ObjectTransport {
  let asked: AsyncStream<Void>
  private let ask: AsyncStream<Void>.Continuation

  init() { (asked, ask) = AsyncStream.makeStream(of: Void.self) }

  func send(_ request: HTTPRequest, timeout: Duration) async throws(TransportError) -> HTTPResponse {
    ask.yield()
    let (never, _) = AsyncStream.makeStream(of: Void.self)
    for await _ in never {}  // ends when the task is cancelled
    throw TransportError(.cancelled, "cancelled")
  }

  func send(_ request: ObjectRequest) async throws(TransportError) -> HTTPResponse { throw TransportError(.local, "not used") }

  func download(_ request: HTTPRequest, limits: DownloadLimits, into body: StreamingBody) async throws(TransportError) -> HTTPResponse {
    throw TransportError(.local, "not used")
  }

  func upload(_ request: HTTPRequest, file: FileSlice, limits: DownloadLimits) async throws(TransportError) -> HTTPResponse {
    throw TransportError(.local, "not used")
  }

  func connectionClosedEvents() -> AsyncStream<Void> { AsyncStream { $0.finish() } }
  func shutdown() {}
}

final class RecordingNotifier: ServiceManagerNotifier {
  private let sent = Mutex<[[String]]>([])
  var all: [[String]] { sent.withLock { $0 } }
  func send(_ assignments: [String]) { sent.withLock { $0.append(assignments) } }
  var watchdogTimeout: Duration? { nil }
}

@Suite(.timeLimit(.minutes(1))) struct DaemonStopTests {
  /// SIGTERM while a node's health request hangs: the daemon stops its duties within the
  /// graceful bound (in virtual time), names the one it had to cancel, and ends.
  @Test func theDaemonEndsWithinTheBoundWhenADutyIgnoresGracefulShutdown() async throws {
    let vault = UnansweringVault()
    let notifier = RecordingNotifier()
    let log = RecordingLog()
    let clock = VirtualDutyClock(mode: .manual)
    let address: VaultAddress
    switch VaultAddress.parse("http://127.0.0.1:8200") {
    case .success(let parsed): address = parsed
    case .failure(let error): fatalError("test address: \(error)")
    }
    let node = NodeConfig(address: address)
    let config = Config(
      sourcePath: "/etc/vaultkeeper/vaultkeeper.toml", vault: node, peers: [], health: HealthConfig(),
      unseal: UnsealConfig(enabled: false, keySource: nil, foreignProgressGrace: .seconds(30), after: .restart, wrongKeyBackoff: .seconds(30)),
      metrics: MetricsConfig(textfileDirectory: nil), snapshot: nil)
    let environment = DaemonEnvironment(
      notifier: notifier, makeTransport: { _ in vault },
      makeDecompressor: { () throws(SnapshotVerificationError) in throw SnapshotVerificationError("not used") },
      makeObjectTransport: { _, _ in vault }, makeReloader: { _ in StubVaultTLS(serving: TestCertificates.facts(1, notAfter: .now)) },
      makeServedSource: { _ in StubVaultTLS(serving: TestCertificates.facts(1, notAfter: .now)) }, unitWatcher: nil, environment: [:],
      stateFile: nil)
    let daemon = Daemon(
      configPath: config.sourcePath, initial: Generation(config: config, keys: nil), environment: environment, logger: log.logger,
      bounds: .unit, clock: clock)
    let serviceGroup = ServiceGroup(configuration: .init(services: [daemon], logger: Logger(label: "test.lifecycle")))
    let running = Task { try await serviceGroup.run() }

    var asked = vault.asked.makeAsyncIterator()
    _ = await asked.next()  // the node duty is inside its first pass
    let start = clock.now()
    await serviceGroup.triggerGracefulShutdown()
    await clock.waitForSleepers(1)  // the graceful bound's timer
    clock.advance(by: StopBounds.unit.graceful)
    try await running.value

    #expect(clock.elapsed(since: start) == StopBounds.unit.graceful)
    let named = log.all.filter { $0.fields["duty"] != nil }
    #expect(named.map(\.message) == ["duty node http://127.0.0.1:8200 did not stop within 15s of the stop request: cancelling it"])
    #expect(notifier.all.contains(["STOPPING=1", "STATUS=stopping"]))
    #expect(!notifier.all.contains { $0.contains("READY=1") })
  }
}
