// SPDX-License-Identifier: Apache-2.0
import CCurl
import Platform
import Dispatch
import Synchronization
import VaultKeeper

#if canImport(Glibc)
import Glibc
#endif

/// An `HTTPTransport` for one Vault node: one libcurl handle (one kept-alive connection) on a
/// thread of its own.
///
/// Why a thread: `curl_easy_perform` blocks, and Swift's cooperative pool has only as many
/// threads as cores (2 here). A slow node must never hold up another node's health check or the
/// watchdog ping, so every node gets its own thread, and callers just `await`.
///
/// While idle the thread also watches the kept-alive socket: when the server closes it (Vault
/// restarting does that), `connectionClosedEvents()` yields so the health duty looks at once
/// instead of an interval later.
public final class CurlTransport: HTTPTransport, @unchecked Sendable {
  public struct Settings: Sendable {
    public var address: VaultAddress
    public var caFile: String?
    public var serverName: String?
    public var clientCertFile: String?
    public var clientKeyFile: String?
    public var connectTimeout: Duration
    /// Largest response body accepted (API answers are small).
    public var bodyLimit: Int

    public init(node: NodeConfig, bodyLimit: Int = 1 << 20) {
      address = node.address
      caFile = node.caFile
      serverName = node.serverName
      clientCertFile = node.clientCertFile
      clientKeyFile = node.clientKeyFile
      connectTimeout = node.connectTimeout
      self.bodyLimit = bodyLimit
    }
  }

  /// What a job does: a Vault request on this node's settings, or a transfer fully described
  /// by its caller (the S3 adapter), which reuses this thread and queue but not the settings.
  private enum Work {
    case request(HTTPRequest, timeout: Duration, download: (limits: DownloadLimits, body: StreamingBody)?)
    case prepared(CurlEasy.Options)
  }

  private struct Job {
    var id: UInt64
    var work: Work
    var cancellation: CancellationFlag
    var complete: @Sendable (Result<HTTPResponse, TransportError>) -> Void
  }

  private struct Shared {
    var jobs: [Job] = []
    var nextID: UInt64 = 0
    /// The transfer in progress, so shutdown can abort it at once.
    var running: CancellationFlag?
    var stopped = false
    var closedContinuations: [UInt64: AsyncStream<Void>.Continuation] = [:]
  }

  private let settings: Settings
  /// The URL every Vault request starts with, and the CONNECT_TO entry that goes with it, worked
  /// out once: the settings never change for the life of the transport, and rebuilding them on
  /// every health check was a measurable part of its cost (docs/benchmarks.md).
  private let baseURL: String
  private let connectTo: String?
  private let shared = Mutex(Shared())
  /// A pipe that wakes the thread from `poll` when a job arrives or on shutdown.
  private let wakeRead: Int32
  private let wakeWrite: Int32
  /// Signalled when the thread has left its loop and released its curl handle. `shutdown()`
  /// waits for it, so a process that exits right after (one-shot commands) never races the
  /// handle's TLS teardown against libcrypto's exit-time cleanup.
  private let exited = DispatchSemaphore(value: 0)
  private let joined = Mutex(false)

  public init(settings: Settings, name: String = "vaultkeeper-curl") {
    self.settings = settings
    (self.baseURL, self.connectTo) = Self.endpoint(settings)
    var fds: [Int32] = [-1, -1]
    if pipe(&fds) == 0 {
      for fd in fds {
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        _ = fcntl(fd, F_SETFL, O_NONBLOCK)
      }
    } else {
      fds = [-1, -1]
    }
    self.wakeRead = fds[0]
    self.wakeWrite = fds[1]
    // The thread holds a strong reference until `shutdown()` ends its loop.
    let result = NamedThread.start(name: name) { [self] in
      self.run()
      self.exited.signal()
    }
    if result != 0 {
      // No thread means no transfers: fail every request clearly instead of hanging.
      shared.withLock { $0.stopped = true }
      exited.signal()
    }
  }

  deinit {
    if wakeRead >= 0 { close(wakeRead) }
    if wakeWrite >= 0 { close(wakeWrite) }
  }

  public func send(_ request: HTTPRequest, timeout: Duration) async throws(TransportError) -> HTTPResponse {
    try await enqueue(.request(request, timeout: timeout, download: nil))
  }

  public func download(_ request: HTTPRequest, limits: DownloadLimits, into body: StreamingBody) async throws(TransportError) -> HTTPResponse {
    try await enqueue(.request(request, timeout: limits.connectTimeout, download: (limits, body)))
  }

  public func upload(_ request: HTTPRequest, file: FileSlice, limits: DownloadLimits) async throws(TransportError) -> HTTPResponse {
    var options = options(for: request, timeout: limits.connectTimeout, download: nil)
    options.upload = file
    options.totalTimeout = limits.maxDuration
    options.lowSpeed = (limits.lowSpeedBytesPerSecond, limits.lowSpeedWindow)
    return try await enqueue(.prepared(options))
  }

  /// A TLS handshake on a new connection, returning the certificates the server presented
  /// (see `CurlServedCertificateSource`). No request is sent.
  func probeCertificates(_ probe: CurlEasy.CertificateProbe, timeout: Duration) async throws(TransportError) -> [String] {
    var options = options(for: HTTPRequest(method: .get, path: "/"), timeout: timeout, download: nil)
    options.probe = probe
    return try await enqueue(.prepared(options)).peerCertificates
  }

  /// Runs a transfer described in full by `options` on this transport's thread.
  func perform(_ options: CurlEasy.Options) async throws(TransportError) -> HTTPResponse {
    try await enqueue(.prepared(options))
  }

  private func enqueue(_ work: Work) async throws(TransportError) -> HTTPResponse {
    let cancellation = CancellationFlag()
    let jobID = Atomic<UInt64>(0)
    let result: Result<HTTPResponse, TransportError> = await withTaskCancellationHandler {
      await withCheckedContinuation { (continuation: CheckedContinuation<Result<HTTPResponse, TransportError>, Never>) in
        let accepted = shared.withLock { state -> Bool in
          guard !state.stopped else { return false }
          state.nextID += 1
          jobID.store(state.nextID, ordering: .relaxed)
          state.jobs.append(
            Job(id: state.nextID, work: work, cancellation: cancellation) {
              continuation.resume(returning: $0)
            })
          return true
        }
        if accepted { wake() } else { continuation.resume(returning: .failure(TransportError(.cancelled, "transport is shut down"))) }
      }
    } onCancel: {
      cancellation.cancel()
      // A job still waiting behind another transfer is answered now, not when the thread
      // gets to it.
      let id = jobID.load(ordering: .relaxed)
      let queued = shared.withLock { state -> Job? in
        guard let index = state.jobs.firstIndex(where: { $0.id == id }) else { return nil }
        return state.jobs.remove(at: index)
      }
      queued?.complete(.failure(TransportError(.cancelled, "transfer cancelled")))
    }
    return try result.get()
  }

  /// How many requests wait in the queue behind the transfer in progress (if any). For tests
  /// that need a request to be queued before they act on it.
  package var pendingJobCount: Int { shared.withLock { $0.jobs.count } }

  public func connectionClosedEvents() -> AsyncStream<Void> {
    let (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    let id = shared.withLock { state -> UInt64 in
      state.nextID += 1
      return state.nextID
    }
    shared.withLock { $0.closedContinuations[id] = continuation }
    continuation.onTermination = { [weak self] _ in
      _ = self?.shared.withLock { $0.closedContinuations.removeValue(forKey: id) }
    }
    return stream
  }

  public func shutdown() {
    let pending = shared.withLock { state -> [Job] in
      state.stopped = true
      state.running?.cancel()
      defer { state.jobs.removeAll() }
      return state.jobs
    }
    for job in pending { job.complete(.failure(TransportError(.cancelled, "transport is shut down"))) }
    wake()
    // Wait (once, boundedly) for the thread to finish: a running transfer notices the
    // cancellation in its progress callback within about a second.
    if joined.withLock({ j in defer { j = true }; return !j }) {
      _ = exited.wait(timeout: .now() + .seconds(3))
    }
  }

  /// POLLRDHUP (the peer shut down its writing side; Linux, hidden from Swift's Glibc module
  /// behind _GNU_SOURCE). POLLERR and POLLHUP (a reset) are reported without asking.
  private static let peerClosed: Int16 = 0x2000

  private func wake() {
    var one: UInt8 = 1
    _ = write(wakeWrite, &one, 1)
  }

  private func drainWake() {
    var buffer = [UInt8](repeating: 0, count: 64)
    while read(wakeRead, &buffer, buffer.count) > 0 {}
  }

  private func options(for job: Job) -> CurlEasy.Options {
    switch job.work {
    case .prepared(let options): return options
    case .request(let request, let timeout, let download): return options(for: request, timeout: timeout, download: download)
    }
  }

  /// The base URL and CONNECT_TO entry for `settings`.
  private static func endpoint(_ settings: Settings) -> (url: String, connectTo: String?) {
    let address = settings.address
    guard let serverName = settings.serverName, address.scheme == .https else { return (address.baseURL, nil) }
    // Verify (and send SNI for) the configured name while connecting to the configured
    // address: the URL carries the name, CONNECT_TO maps it to the real host and port.
    let host = address.host.contains(":") ? "[\(address.host)]" : address.host
    return ("https://\(serverName):\(address.port)", "\(serverName):\(address.port):\(host):\(address.port)")
  }

  private func options(for request: HTTPRequest, timeout: Duration, download: (limits: DownloadLimits, body: StreamingBody)?) -> CurlEasy.Options {
    let address = settings.address
    var options = CurlEasy.Options(
      url: baseURL + request.path, method: request.method, headers: request.headers, secretHeaders: request.secretHeaders,
      body: request.body,
      allowedProtocol: address.scheme == .https ? "https" : "http", unixSocketPath: address.socketPath, connectTo: connectTo,
      caFile: settings.caFile, clientCertFile: settings.clientCertFile, clientKeyFile: settings.clientKeyFile,
      connectTimeout: min(settings.connectTimeout, timeout), totalTimeout: timeout, bodyLimit: settings.bodyLimit)
    if let download {
      options.streaming = download.body
      options.totalTimeout = download.limits.maxDuration
      options.lowSpeed = (download.limits.lowSpeedBytesPerSecond, download.limits.lowSpeedWindow)
    }
    return options
  }

  /// The thread's loop: run queued jobs; between them, wait on the wake fd and the idle socket.
  private func run() {
    guard let easy = CurlEasy() else {
      failAll(TransportError(.local, "libcurl could not be initialised"))
      return
    }
    var watchedSocket: Int32? = nil
    while true {
      let next = shared.withLock { state -> (Job?, Bool) in
        if state.stopped { return (nil, true) }
        let job = state.jobs.isEmpty ? nil : state.jobs.removeFirst()
        state.running = job?.cancellation
        return (job, false)
      }
      if next.1 { break }
      if let job = next.0 {
        let result: Result<HTTPResponse, TransportError>
        let jobOptions = options(for: job)
        if job.cancellation.isCancelled {
          result = .failure(TransportError(.cancelled, "transfer cancelled"))
        } else {
          result = easy.perform(jobOptions, cancellation: job.cancellation)
        }
        // A probe's connect-only connection is not the kept-alive one the health duty cares about.
        watchedSocket = jobOptions.probe == nil ? easy.activeSocket : nil
        shared.withLock { $0.running = nil }
        job.complete(result)
        continue
      }
      // Idle: sleep until a job arrives or the kept-alive connection is closed by the server.
      var fds = [pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)]
      if let socket = watchedSocket { fds.append(pollfd(fd: socket, events: Self.peerClosed, revents: 0)) }
      let ready = poll(&fds, nfds_t(fds.count), 1000)
      if ready < 0 { continue }
      if fds[0].revents != 0 { drainWake() }
      if fds.count > 1, fds[1].revents != 0 {
        // The server shut its side (FIN) or reset the connection: it is closing it, as a Vault
        // restart does. Mere data is not a close: over HTTP/2 libcurl keeps the connection
        // after a request timed out, and a server that was frozen (SIGSTOP) answers those
        // requests late when it resumes; taking that for a close would let the seal judgement
        // take a frozen process for a restarted one. Stop watching (curl will notice and
        // reconnect) and tell the duty.
        let byTheNetwork = watchedSocket.map(Self.failedByTheNetwork) ?? false
        watchedSocket = nil
        if byTheNetwork { continue }
        let continuations = shared.withLock { Array($0.closedContinuations.values) }
        for continuation in continuations { continuation.yield() }
      }
    }
    failAll(TransportError(.cancelled, "transport is shut down"))
    let continuations = shared.withLock { state -> [AsyncStream<Void>.Continuation] in
      defer { state.closedContinuations.removeAll() }
      return Array(state.closedContinuations.values)
    }
    for continuation in continuations { continuation.finish() }
  }

  /// Whether the kernel failed the idle connection itself (keep-alive probes unanswered for
  /// minutes: ETIMEDOUT; an ICMP error: unreachable) rather than the server closing it. A long
  /// partition ends so; it is no evidence of a new Vault process, so it must not release a
  /// deliberate seal. The connection is still dropped by curl at the next request.
  private static func failedByTheNetwork(_ socket: Int32) -> Bool {
    var error: Int32 = 0
    var length = socklen_t(MemoryLayout<Int32>.size)
    guard getsockopt(socket, SOL_SOCKET, SO_ERROR, &error, &length) == 0 else { return false }
    return [ETIMEDOUT, EHOSTUNREACH, ENETUNREACH, EHOSTDOWN, ENETDOWN].contains(error)
  }

  private func failAll(_ error: TransportError) {
    let pending = shared.withLock { state -> [Job] in
      state.stopped = true
      defer { state.jobs.removeAll() }
      return state.jobs
    }
    for job in pending { job.complete(.failure(error)) }
  }
}
