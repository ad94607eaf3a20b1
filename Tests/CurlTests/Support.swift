// SPDX-License-Identifier: Apache-2.0
import Foundation
import Glibc
import Synchronization
import Testing
import VaultKeeper

import Curl

// Test support: the repository layout, a per-process scratch directory, the test PKI, the
// Vault simulator as a child process, a tiny HTTP client for its control channel, and helpers
// for building transports and checking their failures.

struct TestFailure: Error, CustomStringConvertible {
  var description: String
  init(_ description: String) { self.description = description }
}

/// The repository root, found from this file's location (Tests/CurlTests/Support.swift).
let repositoryRoot: String = URL(fileURLWithPath: #filePath)
  .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

let simulatorDirectory = repositoryRoot + "/Tests/Simulator"

/// One scratch directory per test process, removed at exit. Directly under /tmp so unix socket
/// paths inside it stay well below the 108-byte limit.
let scratchRoot: String = {
  var template = Array("/tmp/vk-curl-tests.XXXXXX".utf8CString)
  guard let made = mkdtemp(&template) else { fatalError("mkdtemp failed: errno \(errno)") }
  atexit { try? FileManager.default.removeItem(atPath: scratchRoot) }
  return String(cString: made)
}()

private let scratchCounter = Mutex(0)

/// A fresh, empty directory under the scratch root.
func makeScratchDirectory(_ prefix: String) throws -> String {
  let number = scratchCounter.withLock { value -> Int in
    value += 1
    return value
  }
  let path = "\(scratchRoot)/\(prefix)-\(number)"
  try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  return path
}

// MARK: - Child processes

/// A child process started with `posix_spawnp`.
///
/// - Its signal mask is cleared and its dispositions reset (the test runner's threads may block
///   SIGTERM, and a spawned child would inherit that); we still stop it with SIGKILL.
/// - Its stdin is a pipe whose write end only this process holds (close-on-exec, so no other
///   child inherits it). The simulator launcher exits when that pipe reports EOF, so a crashed
///   or killed test runner leaves no simulator behind.
final class ChildProcess: @unchecked Sendable {
  let pid: pid_t
  private let lifeline: Int32
  private let state = Mutex<(exited: Bool, status: Int32, killed: Bool)>((false, 0, false))

  init(_ arguments: [String], stderrPath: String) throws {
    var fds: [Int32] = [-1, -1]
    // A socket pair rather than pipe(): it can be created close-on-exec atomically.
    guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
      throw TestFailure("socketpair failed: errno \(errno)")
    }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, fds[0], 0)
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 2, stderrPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)

    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var noSignals = sigset_t()
    sigemptyset(&noSignals)
    var allSignals = sigset_t()
    sigfillset(&allSignals)
    posix_spawnattr_setsigmask(&attributes, &noSignals)
    posix_spawnattr_setsigdefault(&attributes, &allSignals)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

    let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
    defer { for pointer in argv { free(pointer) } }
    var pid: pid_t = 0
    let result = posix_spawnp(&pid, arguments[0], &actions, &attributes, argv, environ)
    close(fds[0])
    guard result == 0 else {
      close(fds[1])
      throw TestFailure("cannot start \(arguments[0]): error \(result)")
    }
    self.pid = pid
    self.lifeline = fds[1]
  }

  /// The exit status if the process has ended (reaps it), else nil.
  func exitStatus() -> Int32? {
    state.withLock { state -> Int32? in
      if state.exited { return state.status }
      var status: Int32 = 0
      let reaped = waitpid(pid, &status, WNOHANG)
      if reaped == pid || (reaped < 0 && errno == ECHILD) {
        state.exited = true
        state.status = status
        return status
      }
      return nil
    }
  }

  /// Waits (without blocking a thread) until the process ends.
  func waitForExit(within limit: Duration) async throws -> Int32 {
    let deadline = ContinuousClock.now + limit
    while true {
      if let status = exitStatus() { return status }
      guard ContinuousClock.now < deadline else { throw TestFailure("process \(pid) did not exit within \(limit)") }
      try await Task.sleep(for: .milliseconds(20))
    }
  }

  /// SIGKILL, reap, close the lifeline. Idempotent.
  func kill() {
    let firstCall = state.withLock { state -> Bool in
      defer { state.killed = true }
      guard !state.exited else { return !state.killed }
      _ = Glibc.kill(pid, SIGKILL)
      var status: Int32 = 0
      while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
      state.exited = true
      state.status = status
      return !state.killed
    }
    if firstCall { close(lifeline) }
  }
}

// MARK: - Test PKI

/// The files written by `testca.py` (see its docstring).
struct TestPKI: Sendable {
  let directory: String
  func path(_ name: String) -> String { "\(directory)/\(name).pem" }
  var ca: String { path("ca") }
  var impostorCA: String { path("impostor-ca") }
  var clientCert: String { path("client") }
  var clientKey: String { path("client-key") }
}

/// The PKI is generated once per test process, on first use.
private let pkiTask = Task<TestPKI, any Error> {
  let directory = try makeScratchDirectory("pki")
  let child = try ChildProcess(
    ["python3", "\(simulatorDirectory)/testca.py", directory], stderrPath: directory + "/testca.log")
  defer { child.kill() }
  let status = try await child.waitForExit(within: .seconds(30))
  guard status == 0 else {
    let log = (try? String(contentsOfFile: directory + "/testca.log", encoding: .utf8)) ?? ""
    throw TestFailure("testca.py failed with status \(status): \(log)")
  }
  return TestPKI(directory: directory)
}

func testPKI() async throws -> TestPKI { try await pkiTask.value }

// MARK: - The simulator

struct SimulatorOptions: Sendable {
  /// Certificate (stem in the PKI, e.g. "server", "impostor") for the TCP listener; nil: plain HTTP.
  var certificate: String? = "server"
  /// `--client-ca` (mTLS) with the test CA.
  var requireClientCertificate = false
  /// `--listen`; nil for no TCP listener.
  var listen: String? = "127.0.0.1:0"
  /// Also serve plain HTTP on a unix socket in the simulator's directory.
  var unixSocket = false
  /// Initialise with one share (threshold 1) so unseal requests have something to work on.
  var initialize = true
}

/// One `vault_sim.py` process and its control channel.
final class Simulator: Sendable {
  let directory: String
  let port: Int?
  let controlPort: Int
  let unixSocketPath: String?
  private let child: ChildProcess

  /// Starts the simulator through a launcher that runs `vault_sim.main(argv)` exactly like
  /// `python3 vault_sim.py ARGS` would, plus a thread that ends the process when stdin (our
  /// lifeline pipe) reaches EOF.
  static func start(_ options: SimulatorOptions = SimulatorOptions()) async throws -> Simulator {
    let directory = try makeScratchDirectory("sim")
    let portFile = directory + "/port"
    let controlPortFile = directory + "/control-port"
    var arguments = [
      "--control-port-file", controlPortFile, "--state-dir", directory + "/state",
      "--init-output", directory + "/init.json",
    ]
    if let listen = options.listen { arguments += ["--listen", listen, "--port-file", portFile] }
    if let certificate = options.certificate {
      let pki = try await testPKI()
      arguments += ["--tls-cert", pki.path(certificate), "--tls-key", pki.path(certificate + "-key")]
      if options.requireClientCertificate { arguments += ["--client-ca", pki.ca] }
    }
    var socketPath: String?
    if options.unixSocket {
      socketPath = directory + "/vault.sock"
      arguments += ["--unix-socket", socketPath!]
    }
    if options.initialize { arguments += ["--init-shares", "1", "--init-threshold", "1"] }

    let launcher = pythonWithLifeline("""
      sys.path.insert(0, sys.argv[1])
      import vault_sim
      sys.exit(vault_sim.main(sys.argv[2:]))
      """)
    let child = try ChildProcess(
      ["python3", "-c", launcher, simulatorDirectory] + arguments, stderrPath: directory + "/stderr.log")
    do {
      // The control port file is written after the Vault listeners are up (and the port file).
      let controlPort = try await waitForPortFile(controlPortFile, child: child, directory: directory)
      let port = options.listen == nil ? nil : try await waitForPortFile(portFile, child: child, directory: directory)
      return Simulator(directory: directory, port: port, controlPort: controlPort, unixSocketPath: socketPath, child: child)
    } catch {
      child.kill()
      throw error
    }
  }

  private init(directory: String, port: Int?, controlPort: Int, unixSocketPath: String?, child: ChildProcess) {
    self.directory = directory
    self.port = port
    self.controlPort = controlPort
    self.unixSocketPath = unixSocketPath
    self.child = child
  }

  private static func waitForPortFile(_ path: String, child: ChildProcess, directory: String) async throws -> Int {
    let deadline = ContinuousClock.now + .seconds(60)  // generous: a busy machine starts Python slowly
    while ContinuousClock.now < deadline {
      if let text = try? String(contentsOfFile: path, encoding: .utf8),
        let port = Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
      {
        return port
      }
      if let status = child.exitStatus() {
        let log = (try? String(contentsOfFile: directory + "/stderr.log", encoding: .utf8)) ?? ""
        throw TestFailure("vault_sim exited early (status \(status)): \(log)")
      }
      try await Task.sleep(for: .milliseconds(20))
    }
    throw TestFailure("vault_sim wrote no \(path) within 60 s")
  }

  /// `https://127.0.0.1:PORT` (or http:// without TLS).
  func url(scheme: String = "https", host: String = "127.0.0.1") -> String {
    let hostPart = host.contains(":") ? "[\(host)]" : host
    return "\(scheme)://\(hostPart):\(port ?? 0)"
  }

  func stop() {
    child.kill()
    try? FileManager.default.removeItem(atPath: directory)
  }

  /// The simulator's stderr log (for failure messages).
  var log: String { (try? String(contentsOfFile: directory + "/stderr.log", encoding: .utf8)) ?? "" }

  /// The `vault operator init` output written at start-up.
  func initOutput() throws -> [String: Any] {
    let data = try Data(contentsOf: URL(fileURLWithPath: directory + "/init.json"))
    return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
  }

  // ----- control channel

  @discardableResult
  func control(_ method: String, _ path: String, _ body: String? = nil) throws -> Any {
    let (status, text) = try plainHTTPExchange(port: controlPort, method: method, path: path, body: body ?? (method == "POST" ? "{}" : nil))
    guard status == 200 else { throw TestFailure("control \(method) \(path) -> \(status): \(text)") }
    return try JSONSerialization.jsonObject(with: Data(text.utf8))
  }

  func state() throws -> [String: Any] {
    try #require(try control("GET", "/state") as? [String: Any])
  }

  func requests() throws -> [[String: Any]] {
    try #require(try control("GET", "/requests") as? [[String: Any]])
  }

  /// Waits until the simulator has logged `count` requests (it logs each after answering it).
  func waitForRequests(_ count: Int, within limit: Duration = .seconds(60)) async throws -> [[String: Any]] {
    let deadline = ContinuousClock.now + limit
    while true {
      let seen = try requests()
      if seen.count >= count { return seen }
      guard ContinuousClock.now < deadline else { throw TestFailure("the simulator logged \(seen.count) of \(count) requests") }
      try await Task.sleep(for: .milliseconds(20))
    }
  }

  func fault(_ json: String) throws { try control("POST", "/fault", json) }
  func clearFaults() throws { try control("POST", "/fault/clear") }

  /// Polls the control state until `predicate` holds (the generous bound only turns a hang into
  /// a failure).
  func waitForState(within limit: Duration = .seconds(60), _ predicate: ([String: Any]) -> Bool) async throws {
    let deadline = ContinuousClock.now + limit
    while true {
      let state = try state()
      if predicate(state) { return }
      guard ContinuousClock.now < deadline else { throw TestFailure("simulator state never matched: \(state)") }
      try await Task.sleep(for: .milliseconds(20))
    }
  }
}

/// Waits until `count` requests wait in the transport's queue behind the transfer in progress
/// (the generous bound only turns a hang into a failure).
func waitForQueuedJobs(_ transport: CurlTransport, _ count: Int, within limit: Duration = .seconds(60)) async throws {
  let deadline = ContinuousClock.now + limit
  while transport.pendingJobCount < count {
    guard ContinuousClock.now < deadline else { throw TestFailure("\(transport.pendingJobCount) of \(count) requests queued") }
    try await Task.sleep(for: .milliseconds(5))
  }
}

/// Runs `body` with a started simulator and always kills it afterwards.
func withSimulator<T>(_ options: SimulatorOptions = SimulatorOptions(), _ body: (Simulator) async throws -> T) async throws -> T {
  let simulator = try await Simulator.start(options)
  defer { simulator.stop() }
  do {
    return try await body(simulator)
  } catch {
    Issue.record("simulator log:\n\(simulator.log.suffix(3000))")
    throw error
  }
}

/// One blocking HTTP/1.1 exchange over plain TCP to 127.0.0.1 (control channel only; it is
/// deliberately independent of the transport under test). Returns status and body text.
func plainHTTPExchange(port: Int, method: String, path: String, body: String?) throws -> (Int, String) {
  let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
  guard fd >= 0 else { throw TestFailure("socket: errno \(errno)") }
  defer { close(fd) }
  var timeout = timeval(tv_sec: 60, tv_usec: 0)  // a ceiling on a hang, not a speed requirement
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
  var address = sockaddr_in()
  address.sin_family = sa_family_t(AF_INET)
  address.sin_port = in_port_t(UInt16(port).bigEndian)
  address.sin_addr.s_addr = inet_addr("127.0.0.1")
  let connected = withUnsafePointer(to: &address) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
  }
  guard connected == 0 else { throw TestFailure("connect to control port \(port): errno \(errno)") }
  let payload = Array((body ?? "").utf8)
  var request = Array(
    "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nContent-Type: application/json\r\nContent-Length: \(payload.count)\r\nConnection: close\r\n\r\n".utf8)
  request += payload
  var sent = 0
  while sent < request.count {
    let n = request[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    guard n > 0 else { throw TestFailure("send to control port: errno \(errno)") }
    sent += n
  }
  var received: [UInt8] = []
  var buffer = [UInt8](repeating: 0, count: 65536)
  while true {
    let n = recv(fd, &buffer, buffer.count, 0)
    if n < 0 && errno == EINTR { continue }
    guard n >= 0 else { throw TestFailure("recv from control port: errno \(errno)") }
    if n == 0 { break }
    received += buffer[..<n]
    // Stop as soon as the whole body (by Content-Length) is in.
    let text = String(decoding: received, as: UTF8.self)
    if let split = text.range(of: "\r\n\r\n") {
      let head = text[..<split.lowerBound].lowercased()
      if let line = head.split(separator: "\r\n").first(where: { $0.hasPrefix("content-length:") }),
        let length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)),
        text.utf8.count - text[..<split.upperBound].utf8.count >= length
      {
        break
      }
    }
  }
  let text = String(decoding: received, as: UTF8.self)
  guard let split = text.range(of: "\r\n\r\n") else { throw TestFailure("bad control answer: \(text)") }
  let statusLine = text[..<split.lowerBound].split(separator: "\r\n").first ?? ""
  let parts = statusLine.split(separator: " ")
  guard parts.count >= 2, let status = Int(parts[1]) else { throw TestFailure("bad control status line: \(statusLine)") }
  return (status, String(text[split.upperBound...]))
}

/// A TCP port on 127.0.0.1 that nothing listens on (bound, never listened, then closed).
func unusedLoopbackPort() throws -> Int {
  let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
  guard fd >= 0 else { throw TestFailure("socket: errno \(errno)") }
  defer { close(fd) }
  var address = sockaddr_in()
  address.sin_family = sa_family_t(AF_INET)
  address.sin_port = 0
  address.sin_addr.s_addr = inet_addr("127.0.0.1")
  var length = socklen_t(MemoryLayout<sockaddr_in>.size)
  let ok = withUnsafeMutablePointer(to: &address) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
  }
  guard ok else { throw TestFailure("bind: errno \(errno)") }
  return Int(UInt16(bigEndian: address.sin_port))
}

// MARK: - Transport helpers

extension HTTPRequest {
  static let health = HTTPRequest(method: .get, path: "/v1/sys/health")
}

/// The timeout of a request that should succeed: only a ceiling on a hang, so generous (a full
/// parallel run on two cores can hold a TLS handshake up for seconds).
let requestCeiling = Duration.seconds(60)

func makeNode(
  _ address: String, caFile: String? = nil, serverName: String? = nil, clientCertFile: String? = nil,
  clientKeyFile: String? = nil, connectTimeout: Duration = requestCeiling
) throws -> NodeConfig {
  let parsed: VaultAddress
  switch VaultAddress.parse(address) {
  case .success(let value): parsed = value
  case .failure(let error): throw TestFailure("bad address \(address): \(error.reason)")
  }
  return NodeConfig(
    address: parsed, caFile: caFile, serverName: serverName, clientCertFile: clientCertFile, clientKeyFile: clientKeyFile,
    connectTimeout: connectTimeout)
}

/// Runs `body` with a transport for `node` and always shuts it down afterwards.
func withTransport<T>(
  _ node: NodeConfig, bodyLimit: Int = 1 << 20, _ body: (CurlTransport) async throws -> T
) async throws -> T {
  let transport = CurlTransport(settings: CurlTransport.Settings(node: node, bodyLimit: bodyLimit))
  defer { transport.shutdown() }
  return try await body(transport)
}

/// Sends a request that must fail; records an issue (and returns nil) when it succeeds.
func expectFailure(
  _ transport: CurlTransport, _ request: HTTPRequest = .health, timeout: Duration = requestCeiling,
  sourceLocation: SourceLocation = #_sourceLocation
) async -> TransportError? {
  do {
    let response = try await transport.send(request, timeout: timeout)
    Issue.record("expected a transport error, got HTTP \(response.status)", sourceLocation: sourceLocation)
    return nil
  } catch {
    return error
  }
}

func jsonObject(_ response: HTTPResponse) throws -> [String: Any] {
  let object = try JSONSerialization.jsonObject(with: Data(response.body))
  return try #require(object as? [String: Any], "body is not a JSON object: \(String(decoding: response.body, as: UTF8.self))")
}

/// Counts what a connection-closed stream yields, from a task of its own (cancelling an
/// AsyncStream's consumer ends the stream, so one consumer stays for the whole test).
final class EventCounter: Sendable {
  private final class Storage: Sendable {
    let state = Mutex<(count: Int, finished: Bool)>((0, false))
  }
  private let storage: Storage
  private let consumer: Task<Void, Never>

  init(_ stream: AsyncStream<Void>) {
    let storage = Storage()
    self.storage = storage
    consumer = Task {
      for await _ in stream { storage.state.withLock { $0.count += 1 } }
      storage.state.withLock { $0.finished = true }
    }
  }

  deinit { consumer.cancel() }

  var count: Int { storage.state.withLock { $0.count } }
  var finished: Bool { storage.state.withLock { $0.finished } }

  /// Waits until `predicate` holds or `limit` passes; returns whether it held. The default is
  /// generous: it only turns a hang into a failure.
  func wait(within limit: Duration = .seconds(60), until predicate: (EventCounter) -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + limit
    while !predicate(self) {
      guard ContinuousClock.now < deadline else { return false }
      try? await Task.sleep(for: .milliseconds(10))
    }
    return true
  }
}

final class Flag: Sendable {
  private let value = Mutex(false)
  func set() { value.withLock { $0 = true } }
  var isSet: Bool { value.withLock { $0 } }
}

// MARK: - A raw HTTP server that records requests byte for byte

/// Answers every HTTP/1.1 request with `200 {}` and keeps the raw bytes of each request
/// (head and body), for checks on what goes over the wire. One thread, one connection at a
/// time, keep-alive honoured. On request it also misbehaves on the idle kept-alive connection:
/// stray bytes (a resumed server answering stale requests), or its side shut (FIN).
final class RawHTTPServer: Sendable {
  let port: Int
  private let listener: Int32
  private let captured = Mutex<[String]>([])
  /// The connection being served (-1 between connections).
  private let connection = Mutex<Int32>(-1)
  private let done = Flag()

  init() throws {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw TestFailure("socket: errno \(errno)") }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        bind(fd, $0, length) == 0 && listen(fd, 4) == 0 && getsockname(fd, $0, &length) == 0
      }
    }
    guard ok else {
      close(fd)
      throw TestFailure("bind/listen: errno \(errno)")
    }
    listener = fd
    port = Int(UInt16(bigEndian: address.sin_port))
    let thread = Thread { [self] in serve() }
    thread.start()
  }

  /// Requests seen so far, as text (bodies here are ASCII).
  var requests: [String] { captured.withLock { $0 } }

  /// Waits until `count` requests were answered (the generous bound only turns a hang into a
  /// failure).
  func waitForRequests(_ count: Int, within limit: Duration = .seconds(60)) async -> [String] {
    let deadline = ContinuousClock.now + limit
    while requests.count < count && ContinuousClock.now < deadline {
      try? await Task.sleep(for: .milliseconds(10))
    }
    return requests
  }

  /// Writes `bytes` on the connection being served, outside any exchange; throws when there is
  /// none. Returns once they are sent (on loopback: in the client's receive queue).
  func sendOnIdleConnection(_ bytes: String) throws {
    let payload = Array(bytes.utf8)
    let sent = connection.withLock { fd -> Int in
      guard fd >= 0 else { return -1 }
      return payload.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }
    guard sent == payload.count else { throw TestFailure("no connection to send on (sent \(sent))") }
  }

  /// FIN on the connection being served, without reading what is pending (no reset).
  func closeConnection() {
    connection.withLock { fd in
      if fd >= 0 { shutdown(fd, Int32(SHUT_WR)) }
    }
  }

  /// Wakes the serving thread (blocked in accept or recv), which then closes the sockets and ends.
  func stop() {
    done.set()
    shutdown(listener, Int32(SHUT_RDWR))
    connection.withLock { fd in
      if fd >= 0 { shutdown(fd, Int32(SHUT_RDWR)) }
    }
  }

  private func serve() {
    defer { close(listener) }
    while !done.isSet {
      let accepted = accept(listener, nil, nil)
      if accepted < 0 {
        if errno == EINTR { continue }
        return
      }
      _ = fcntl(accepted, F_SETFD, FD_CLOEXEC)
      // No receive timeout: an idle kept-alive connection stays open until the client (or
      // `closeConnection`/`stop`) ends it, however long a test takes.
      connection.withLock { $0 = accepted }
      if done.isSet { shutdown(accepted, Int32(SHUT_RDWR)) }
      var pending: [UInt8] = []
      while let request = readRequest(accepted, &pending) {
        captured.withLock { $0.append(String(decoding: request, as: UTF8.self)) }
        let answer = Array("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}".utf8)
        guard answer.withUnsafeBytes({ send(accepted, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == answer.count
        else { break }
      }
      connection.withLock { $0 = -1 }
      close(accepted)
    }
  }

  /// One request (head + body by Content-Length or chunked), or nil at EOF.
  private func readRequest(_ fd: Int32, _ pending: inout [UInt8]) -> [UInt8]? {
    func find(_ needle: String, from start: Int) -> Int? {
      let needle = Array(needle.utf8)
      guard pending.count >= needle.count, start <= pending.count - needle.count else { return nil }
      return (start...(pending.count - needle.count)).first { pending[$0..<$0 + needle.count].elementsEqual(needle) }
    }
    func complete() -> Int? {
      guard let end = find("\r\n\r\n", from: 0) else { return nil }
      let headLength = end + 4
      let head = String(decoding: pending[..<end], as: UTF8.self).lowercased()
      if head.contains("transfer-encoding: chunked") {
        // The last chunk: "0\r\n\r\n" right after the head or after a chunk's CRLF.
        guard let last = find("\r\n0\r\n\r\n", from: end + 2) else { return nil }
        return last + 7
      }
      var length = 0
      if let line = head.split(separator: "\r\n").first(where: { $0.hasPrefix("content-length:") }) {
        length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) ?? 0
      }
      return pending.count >= headLength + length ? headLength + length : nil
    }
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
      if let size = complete() {
        let request = Array(pending[..<size])
        pending.removeFirst(size)
        return request
      }
      let n = recv(fd, &buffer, buffer.count, 0)
      if n < 0 && errno == EINTR { continue }
      guard n > 0 else { return nil }
      pending += buffer[..<n]
    }
  }
}

/// A Python program (`python3 -c`) that first starts a thread ending the process when our
/// lifeline, its stdin, closes: a test server never outlives the test process, even a crashed
/// one. `body` runs after it, with `os`, `sys` and `threading` imported.
func pythonWithLifeline(_ body: String) -> String {
  """
  import os, sys, threading
  def lifeline():
      try:
          while os.read(0, 4096):
              pass
      finally:
          os._exit(0)
  threading.Thread(target=lifeline, daemon=True).start()
  \(body)
  """
}
