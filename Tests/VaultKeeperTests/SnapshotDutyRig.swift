// SPDX-License-Identifier: Apache-2.0
import Crypto
import Foundation
import Synchronization

@testable import VaultKeeper

/// A Raft snapshot archive as Vault streams it, without the gzip layer (the rig's decompressor
/// passes bytes through): `meta.json`, `state.bin`, `SHA256SUMS`, `SHA256SUMS.sealed`, the
/// end-of-archive marker.
enum TestArchive {
  static func make(index: UInt64, state: [UInt8] = Array("raft state".utf8)) -> [UInt8] {
    let meta = Array(#"{"ID":"2-\#(index)-1","Index":\#(index),"Term":2,"Size":\#(state.count)}"#.utf8)
    let sums = Array("\(hex(meta))  meta.json\n\(hex(state))  state.bin\n".utf8)
    var tar: [UInt8] = []
    for (name, content) in [("meta.json", meta), ("state.bin", state), ("SHA256SUMS", sums), ("SHA256SUMS.sealed", Array("sealed".utf8))] {
      tar += header(name: name, size: content.count) + content
      tar += [UInt8](repeating: 0, count: (512 - content.count % 512) % 512)
    }
    return tar + [UInt8](repeating: 0, count: 1024)
  }

  static func hex(_ bytes: [UInt8]) -> String {
    SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
  }

  static func header(name: String, size: Int) -> [UInt8] {
    var block = [UInt8](repeating: 0, count: 512)
    func put(_ text: String, at offset: Int) { for (i, byte) in text.utf8.enumerated() { block[offset + i] = byte } }
    put(name, at: 0)
    put("0000644", at: 100)
    put("0000000", at: 108)
    put("0000000", at: 116)
    put(String(format: "%011o", size), at: 124)
    put("00000000000", at: 136)
    block[156] = UInt8(ascii: "0")
    put("ustar", at: 257)
    put("00", at: 263)
    for i in 148..<156 { block[i] = 32 }
    let sum = block.reduce(0) { $0 + Int($1) }
    put(String(format: "%06o", sum), at: 148)
    block[154] = 0
    return block
  }
}

/// The archive arrives uncompressed: the verifier's gzip layer is replaced by this.
final class PassThroughDecompressor: StreamDecompressor {
  func decompress(_ input: UnsafeRawBufferPointer, into sink: (UnsafeRawBufferPointer) throws(SnapshotVerificationError) -> Void)
    throws(SnapshotVerificationError)
  { try sink(input) }
  func finish() throws(SnapshotVerificationError) {}
}

/// Opened by the test; a task waiting on it is released by `open()` or by its cancellation.
final class TestGate: Sendable {
  private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

  func open() {
    let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
      s.open = true
      defer { s.waiters = [] }
      return s.waiters
    }
    for waiter in waiters { waiter.resume() }
  }

  func wait() async {
    await withTaskCancellationHandler {
      await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        let now = state.withLock { s -> Bool in
          if s.open || Task.isCancelled { return true }
          s.waiters.append(continuation)
          return false
        }
        if now { continuation.resume() }
      }
    } onCancel: {
      open()
    }
  }
}

/// A Vault node in memory for the snapshot duty: AppRole login and renew-self, and the snapshot
/// download, which can succeed, fail or hang. Counts what it was asked.
final class SnapshotVault: HTTPTransport {
  enum Download: Sendable { case serve, fail(Int), hang }
  struct State: Sendable {
    var download = Download.serve
    var index: UInt64 = 100
    var ttlSeconds = 3600
    var logins = 0
    var renewals = 0
    var downloads = 0
  }
  let state = Mutex(State())
  let hanging = TestGate()
  /// Yields each time a download begins (tests wait on it instead of on the clock).
  let downloadStarted: AsyncStream<Void>
  private let started: AsyncStream<Void>.Continuation

  init() { (downloadStarted, started) = AsyncStream.makeStream() }

  func update(_ change: (inout State) -> Void) { state.withLock { change(&$0) } }
  var current: State { state.withLock { $0 } }

  func send(_ request: HTTPRequest, timeout: Duration) async throws(TransportError) -> HTTPResponse {
    let ttl = state.withLock { s -> Int in
      if request.path == "/v1/auth/token/renew-self" { s.renewals += 1 } else { s.logins += 1 }
      return s.ttlSeconds
    }
    guard request.path == "/v1/auth/approle/login" || request.path == "/v1/auth/token/renew-self" else {
      return FakeVault.json(404, #"{"errors":[]}"#)
    }
    return FakeVault.json(200, #"{"auth":{"client_token":"hvs.test-token","lease_duration":\#(ttl),"renewable":true}}"#)
  }

  func download(_ request: HTTPRequest, limits: DownloadLimits, into body: StreamingBody) async throws(TransportError) -> HTTPResponse {
    let (mode, index) = state.withLock { s -> (Download, UInt64) in
      s.downloads += 1
      s.index += 1
      return (s.download, s.index)
    }
    started.yield()
    switch mode {
    case .fail(let status):
      return FakeVault.json(status, #"{"errors":["snapshot refused by the test"]}"#)
    case .hang:
      await hanging.wait()
      throw TransportError(.cancelled, "transfer cancelled")
    case .serve:
      let archive = TestArchive.make(index: index)
      let refused = archive.withUnsafeBytes { body.receive($0) }
      if let refused { throw TransportError(.aborted, refused) }
      return HTTPResponse(status: 200, body: [], newConnection: false, duration: .milliseconds(1))
    }
  }

  func upload(_ request: HTTPRequest, file: FileSlice, limits: DownloadLimits) async throws(TransportError) -> HTTPResponse {
    throw TransportError(.local, "not served by the fake")
  }

  func connectionClosedEvents() -> AsyncStream<Void> { AsyncStream { $0.finish() } }
  func shutdown() {}
}

/// A bucket that is never reachable (the uploads tests need only the pass to end).
struct RefusingBucket: ObjectTransport {
  func send(_ request: ObjectRequest) async throws(TransportError) -> HTTPResponse {
    throw TransportError(.connect, "Couldn't connect to server (Connection refused)", serverAction: .refused)
  }
  func shutdown() {}
}

/// The snapshot duty wired to the in-memory Vault, a manual clock, a status board with one node,
/// a recording log and a temporary snapshot directory. Each `pass()` is one turn of the schedule
/// without the sleep (the clock moves by the wait instead).
struct SnapshotDutyRig {
  let vault = SnapshotVault()
  let clock: ManualNodeClock
  let log = RecordingLog()
  let heartbeats = Heartbeats()
  let workLock = SnapshotWorkLock()
  let board: StatusBoard
  let directory: String
  let node: NodeConfig
  let duty: SnapshotDuty

  static let interval = Duration.seconds(3600)
  static let staleAfter = Duration.seconds(3 * 3600)

  /// - Parameters:
  ///   - ledger: written as the state file before the duty starts (nil: none, a first start).
  ///   - wall: the wall clock's start (seconds since the epoch).
  ///   - s3: `[snapshot.s3]` (its credentials are never found here: every upload pass fails at once).
  init(ledger: SnapshotLedger? = nil, wall: Double = 1_800_000_000, s3: S3Config? = nil) throws {
    clock = ManualNodeClock(NodeTime(monotonic: ContinuousClock.now, wall: wall))
    directory = FileManager.default.temporaryDirectory.appendingPathComponent("vk-duty-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
    for (name, text) in [("role-id", "role-1234"), ("secret-id", "secret-5678")] {
      let path = "\(directory)/\(name)"
      _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600])
    }
    let ledgerPath = "\(directory)/state/snapshot-state.json"
    try FileManager.default.createDirectory(atPath: "\(directory)/state", withIntermediateDirectories: false)
    if let ledger { try ledger.save(path: ledgerPath) }
    let address: VaultAddress
    switch VaultAddress.parse("http://127.0.0.1:8200") {
    case .success(let parsed): address = parsed
    case .failure(let error): throw error
    }
    node = NodeConfig(address: address)
    var config = SnapshotConfig(
      enabled: true, directory: "\(directory)/snaps",
      auth: .appRole(roleID: .file("\(directory)/role-id"), secretID: .file("\(directory)/secret-id"), mount: "approle"),
      schedule: SnapshotSchedule(interval: Self.interval, dailyAt: nil, randomizedDelay: .zero), retention: RetentionPolicy(keepLast: 3),
      minFreeBytes: 0, staleAfter: Self.staleAfter, maxDuration: nil, stateFile: ledgerPath)
    config.s3 = s3
    try FileManager.default.createDirectory(atPath: config.directory, withIntermediateDirectories: false)
    board = StatusBoard(configPath: "/dev/null", notifier: SilentNotifier(), stateFile: nil, metricsDirectory: nil, logger: log.logger)
    let vault = vault
    duty = SnapshotDuty(
      context: SnapshotDuty.Context(
        config: config, node: node, board: board, heartbeats: heartbeats, logger: log.logger, environment: [:],
        makeTransport: { _ in vault }, makeDecompressor: { PassThroughDecompressor() },
        makeObjectTransport: { _, _ in RefusingBucket() }, ledgerPath: ledgerPath, workLock: workLock, clock: clock))
  }

  func removeDirectory() { try? FileManager.default.removeItem(atPath: directory) }

  /// The node's state as its health check would report it.
  func node(_ state: NodeState) async {
    await board.configure(addresses: [node.name], configPath: "/dev/null", metricsDirectory: nil)
    var report = NodeReport(address: node.name, state: state, since: clock.now().wall, lastCheck: clock.now().wall)
    report.clusterName = "c1"
    report.clusterID = "cluster-id-1"
    await board.post(report)
  }

  var snapshots: [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: "\(directory)/snaps")) ?? []).filter { $0.hasSuffix(".snap") }.sorted()
  }

  /// One turn; after a wait the clock moves by it.
  @discardableResult
  func pass(_ state: inout SnapshotDuty.State) async -> SnapshotDuty.Pass {
    let result = await duty.pass(&state, uploads: nil)
    if case .waited(let wait) = result { clock.advance(by: wait.delay) }
    return result
  }

  /// Turns until a snapshot is attempted, or `limit` of virtual time has passed.
  func passUntilAttempt(_ state: inout SnapshotDuty.State, limit: Duration) async -> SnapshotDuty.Pass? {
    let end = clock.now().monotonic.advanced(by: limit)
    while clock.now().monotonic <= end {
      let result = await pass(&state)
      if case .attempted = result { return result }
    }
    return nil
  }

  /// The report as the duty shares it (what STATUS, the state file and metrics show).
  func report(_ state: SnapshotDuty.State) -> SnapshotReport { state.status.report }
}
