// SPDX-License-Identifier: Apache-2.0
import Logging
import Synchronization

@testable import VaultKeeper

/// A clock the test moves by hand: the node's decisions run in virtual time.
final class ManualNodeClock: NodeClock {
  private let current: Mutex<NodeTime>
  init(_ start: NodeTime = NodeTime(monotonic: ContinuousClock.now, wall: 1_800_000_000)) { current = Mutex(start) }
  func now() -> NodeTime { current.withLock { $0 } }
  func advance(by duration: Duration) { current.withLock { $0 = $0.advanced(by: duration) } }
}

/// Keeps every journal line the code under test writes, with its fields.
final class RecordingLog: Sendable {
  struct Line: Sendable, Equatable {
    var level: Logger.Level
    var message: String
    var fields: [String: String]
    var id: String? { fields["message_id"] }
  }
  private let lines = Mutex<[Line]>([])
  var all: [Line] { lines.withLock { $0 } }
  func with(_ id: MessageID) -> [Line] { all.filter { $0.id == id.rawValue } }
  func append(_ line: Line) { lines.withLock { $0.append(line) } }
  func clear() { lines.withLock { $0.removeAll() } }

  var logger: Logger {
    let sink = self
    var logger = Logger(label: "test") { _ in Handler(sink: sink) }
    logger.logLevel = .trace
    return logger
  }

  struct Handler: LogHandler {
    let sink: RecordingLog
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
      get { metadata[key] }
      set { metadata[key] = newValue }
    }
    func log(event: LogEvent) {
      let merged = metadata.merging(event.metadata ?? [:]) { _, new in new }
      sink.append(Line(level: event.level, message: event.message.description, fields: merged.mapValues { "\($0)" }))
    }
  }
}

/// The share texts the fake Vault was initialised with; `wrongShares` belong to another cluster.
enum TestShares {
  static let right = ["share-one-AAAA", "share-two-BBBB", "share-three-CCCC"]
  static let wrong = ["other-one-XXXX", "other-two-YYYY", "other-three-ZZZZ"]

  static func keys(_ texts: [String] = right, origin: String = "/etc/vaultkeeper/unseal-keys.json") -> KeyShares {
    KeyShares(shares: texts.map { SecretBytes(utf8: $0) }, format: .plainLines, declaredThreshold: nil, containedRootToken: false, origin: origin)
  }
}

/// A Vault node in memory, answering the requests `VaultClient` makes: health, seal-status and
/// unseal (shares and reset). The test stops, restarts and seals it, and counts what it got.
final class FakeVault: HTTPTransport {
  struct State: Sendable {
    var listening = true
    var initialized = true
    var sealed = true
    var threshold = 3
    var progress = 0
    var nonce = ""
    var taken: [String] = []
    var attemptCounter = 0
    var type = "shamir"
    /// Answer unseal requests with this HTTP status (a failing proxy) instead of Vault's.
    var unsealFailure: Int?
    /// The error text a failing unseal carries (to check redaction).
    var unsealFailureText = "upstream failed"
    /// Shares received in total, and how many restarts happened.
    var received = 0
    var restarts = 0
  }

  let state = Mutex(State())

  func update(_ change: (inout State) -> Void) { state.withLock { change(&$0) } }
  var current: State { state.withLock { $0 } }

  /// A restart: the process is new, so it comes back sealed with no progress.
  func restart() {
    update { s in
      s.sealed = true
      s.progress = 0
      s.nonce = ""
      s.taken = []
      s.restarts += 1
      s.listening = true
    }
  }

  /// `vault operator seal` while the process keeps running.
  func sealDeliberately() { update { $0.sealed = true; $0.progress = 0; $0.nonce = ""; $0.taken = [] } }

  func send(_ request: HTTPRequest, timeout: Duration) async throws(TransportError) -> HTTPResponse {
    let reply = state.withLock { s -> Result<HTTPResponse, TransportError> in
      guard s.listening else {
        return .failure(TransportError(.connect, "Couldn't connect to server (Connection refused)", serverAction: .refused))
      }
      if request.path.hasPrefix("/v1/sys/health") {
        if !s.initialized { return .success(Self.json(501, #"{"initialized":false,"sealed":true,"standby":false}"#)) }
        if s.sealed { return .success(Self.json(503, #"{"initialized":true,"sealed":true,"standby":false,"version":"2.7.0"}"#)) }
        return .success(Self.json(200, #"{"initialized":true,"sealed":false,"standby":false,"version":"2.7.0","cluster_name":"c1"}"#))
      }
      if request.path == "/v1/sys/seal-status" { return .success(Self.json(200, Self.sealStatus(s))) }
      if request.path == "/v1/sys/unseal" {
        if let failure = s.unsealFailure { return .success(Self.json(failure, #"{"errors":["\#(s.unsealFailureText)"]}"#)) }
        let body = request.body.map { $0.withUnsafeBytes { String(decoding: $0, as: UTF8.self) } } ?? ""
        if body.contains("\"reset\"") {
          s.progress = 0
          s.nonce = ""
          s.taken = []
          return .success(Self.json(200, Self.sealStatus(s)))
        }
        guard let share = body.split(separator: "\"").dropFirst(3).first.map(String.init) else { return .success(Self.json(400, "{}")) }
        s.received += 1
        guard s.sealed else { return .success(Self.json(200, Self.sealStatus(s))) }
        if s.taken.contains(share) { return .success(Self.json(200, Self.sealStatus(s))) }
        if s.nonce.isEmpty {
          s.attemptCounter += 1
          s.nonce = "nonce-\(s.attemptCounter)"
        }
        s.taken.append(share)
        s.progress += 1
        if s.progress >= s.threshold {
          let right = Set(s.taken).isSubset(of: Set(TestShares.right))
          s.progress = 0
          s.nonce = ""
          s.taken = []
          if !right { return .success(Self.json(400, #"{"errors":["cipher: message authentication failed"]}"#)) }
          s.sealed = false
        }
        return .success(Self.json(200, Self.sealStatus(s)))
      }
      return .success(Self.json(404, #"{"errors":[]}"#))
    }
    return try reply.get()
  }

  static func sealStatus(_ s: State) -> String {
    #"{"type":"\#(s.type)","initialized":\#(s.initialized),"sealed":\#(s.sealed),"t":\#(s.threshold),"n":5,"progress":\#(s.progress),"nonce":"\#(s.nonce)","version":"2.7.0"}"#
  }

  static func json(_ status: Int, _ body: String) -> HTTPResponse {
    HTTPResponse(status: status, body: Array(body.utf8), newConnection: false, duration: .milliseconds(1))
  }

  func download(_ request: HTTPRequest, limits: DownloadLimits, into body: StreamingBody) async throws(TransportError) -> HTTPResponse {
    throw TransportError(.local, "not served by the fake")
  }

  func upload(_ request: HTTPRequest, file: FileSlice, limits: DownloadLimits) async throws(TransportError) -> HTTPResponse {
    throw TransportError(.local, "not served by the fake")
  }

  func connectionClosedEvents() -> AsyncStream<Void> { AsyncStream { $0.finish() } }
  func shutdown() {}
}

struct SilentNotifier: ServiceManagerNotifier {
  func send(_ assignments: [String]) {}
  var watchdogTimeout: Duration? { nil }
}

/// A node supervisor wired to a fake Vault, a manual clock and a recording log.
struct NodeRig {
  let vault = FakeVault()
  let clock = ManualNodeClock()
  let log = RecordingLog()
  let unitView = UnitView()
  let supervisor: NodeSupervisor

  static let health = HealthConfig()

  init(
    keys: KeyShares? = TestShares.keys(), after: UnsealConfig.After = .restart, foreignProgressGrace: Duration = .seconds(30),
    wrongKeyBackoff: Duration = .seconds(30), memory: NodeMemory? = nil
  ) {
    let unseal = UnsealConfig(
      enabled: true, keySource: .file("/etc/vaultkeeper/unseal-keys.json"), foreignProgressGrace: foreignProgressGrace, after: after,
      wrongKeyBackoff: wrongKeyBackoff)
    let address: VaultAddress
    switch VaultAddress.parse("http://127.0.0.1:8200") {
    case .success(let parsed): address = parsed
    case .failure(let error): fatalError("test address: \(error)")
    }
    let context = NodeSupervisor.Context(
      node: NodeConfig(address: address), health: Self.health, unseal: unseal, keys: keys,
      client: VaultClient(transport: vault, timeout: .seconds(5)),
      board: StatusBoard(configPath: "/dev/null", notifier: SilentNotifier(), stateFile: nil, metricsDirectory: nil, logger: log.logger),
      heartbeats: Heartbeats(), doorbell: Doorbell(), unitView: unitView, logger: log.logger)
    supervisor = NodeSupervisor(context: context, memory: memory, clock: clock)
  }

  /// One pass of the loop; the clock then moves by the delay the loop would sleep.
  /// Returns the report posted (nil after an unseal, which looks again at once).
  @discardableResult
  func pass(jitter: Double = 0.5) async -> (report: NodeReport, memory: NodeMemory, delay: Duration)? {
    guard let end = await supervisor.cycle(jitter: jitter) else { return nil }
    guard case .report(let report, let memory, let delay) = end else { return nil }
    clock.advance(by: delay)
    return (report, memory, delay)
  }

  /// Passes until the node is reported in `state` (at most `limit` passes).
  @discardableResult
  func passUntil(_ state: NodeState, limit: Int = 20) async -> NodeReport? {
    for _ in 0..<limit {
      if let result = await pass(), result.report.state == state { return result.report }
    }
    return nil
  }
}
