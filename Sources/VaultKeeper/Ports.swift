// SPDX-License-Identifier: Apache-2.0
// The edges of the core. Everything that touches the outside world (HTTP over libcurl, the
// service manager, D-Bus) is reached through these small protocols, so the core imports no C and
// its decisions can be tested without I/O. Adapters live in the `Curl` and `Systemd` targets.

/// One HTTP exchange with a Vault node. Paths are relative to the node's address
/// (e.g. `/v1/sys/health?standbycode=299`).
public struct HTTPRequest: Sendable {
  public enum Method: String, Sendable { case get = "GET", put = "PUT", post = "POST", head = "HEAD", delete = "DELETE" }
  public var method: Method
  public var path: String
  public var headers: [(name: String, value: String)]
  /// Request body. Held in a `SecretBytes` because unseal requests carry key material: the
  /// transport copies it into curl and the buffer is wiped when the request is released.
  public var body: SecretBytes?
  /// Headers whose values are secrets (`X-Vault-Token`): kept out of Swift strings.
  public var secretHeaders: [(name: String, value: SecretBytes)]

  public init(method: Method, path: String, headers: [(name: String, value: String)] = [], body: SecretBytes? = nil,
    secretHeaders: [(name: String, value: SecretBytes)] = [])
  {
    self.method = method
    self.path = path
    self.headers = headers
    self.body = body
    self.secretHeaders = secretHeaders
  }
}

public struct HTTPResponse: Sendable {
  public var status: Int
  public var headers: [(name: String, value: String)]
  public var body: [UInt8]
  /// True when the exchange had to open a new connection (no kept-alive connection was reused).
  /// Informational only: libcurl also opens one after a timeout or an idle period, so it is no
  /// evidence of a Vault restart (see `SealJudge`).
  public var newConnection: Bool
  /// Wall time of the exchange as measured by the transport.
  public var duration: Duration
  /// PEM of each certificate the server presented, leaf first; only filled by certificate probes.
  public var peerCertificates: [String] = []

  public init(status: Int, headers: [(name: String, value: String)] = [], body: [UInt8], newConnection: Bool, duration: Duration) {
    self.status = status
    self.headers = headers
    self.body = body
    self.newConnection = newConnection
    self.duration = duration
  }

  public func header(_ name: String) -> String? {
    headers.first { $0.name.lowercased() == name.lowercased() }?.value
  }
}

/// Why a transfer failed before an HTTP status was received.
public struct TransportError: Error, Sendable, Equatable, CustomStringConvertible {
  public enum Kind: String, Sendable {
    /// Nothing listens, the host is unreachable or the name does not resolve.
    case connect
    /// The connect or total timeout elapsed.
    case timeout
    /// The TLS handshake failed: certificate not trusted, name mismatch, protocol error.
    case tls
    /// The peer closed the connection or sent something that is not HTTP.
    case protocolError
    /// The transfer was cancelled by us (shutdown, reload).
    case cancelled
    /// Local problems: bad CA file, out of memory, …
    case local
    /// The receiver of a streamed body stopped the transfer (verification failed, disk full).
    case aborted
  }
  /// What the server itself did to end the exchange, when the failure was its doing. Only these
  /// two say that a server process went away (its listener is gone, or it closed or reset our
  /// connection); a timeout, a TLS failure or a local problem says nothing about the process,
  /// so it is nil. The seal judgement counts only these as signs of a Vault restart.
  public enum ServerAction: String, Sendable, Equatable {
    /// The connection was refused (ECONNREFUSED): nothing listens on the port.
    case refused
    /// The server closed or reset the connection during the exchange.
    case closed
  }

  public var kind: Kind
  /// A human-readable reason; never contains request bodies or headers.
  public var message: String
  public var serverAction: ServerAction?

  public init(_ kind: Kind, _ message: String, serverAction: ServerAction? = nil) {
    self.kind = kind
    self.message = message
    self.serverAction = serverAction
  }

  public var description: String { "\(kind.rawValue): \(message)" }
}

/// Sends requests to one Vault node over one kept-alive connection.
public protocol HTTPTransport: Sendable {
  /// Performs the exchange. Blocking I/O happens on the transport's own thread, never on the
  /// caller's executor. Cancelling the calling task aborts the transfer.
  func send(_ request: HTTPRequest, timeout: Duration) async throws(TransportError) -> HTTPResponse

  /// Streams a (large) 2xx response body into `body` piece by piece on the transport's own
  /// thread, in constant memory; a non-2xx body is collected as usual (it is small JSON).
  /// The returned response has an empty body when it was streamed.
  func download(_ request: HTTPRequest, limits: DownloadLimits, into body: StreamingBody) async throws(TransportError) -> HTTPResponse

  /// Sends `file` as the body of a PUT (streamed from disk in constant memory, e.g. a snapshot
  /// restore); the (small) answer is collected as usual.
  func upload(_ request: HTTPRequest, file: FileSlice, limits: DownloadLimits) async throws(TransportError) -> HTTPResponse

  /// Yields once each time the server closes the kept-alive connection while we were idle
  /// (Vault restarting does that), so the health duty can look at once.
  func connectionClosedEvents() -> AsyncStream<Void>

  /// Stops the transport's thread and closes its connection.
  func shutdown()
}

/// The service manager's notification channel (sd_notify).
public protocol ServiceManagerNotifier: Sendable {
  /// Sends the given `KEY=VALUE` assignments as one datagram. A no-op outside systemd.
  func send(_ assignments: [String])
  /// The watchdog interval systemd expects pings within, or nil when no watchdog is armed for us.
  var watchdogTimeout: Duration? { get }
}

/// What systemd reports about a unit.
public struct UnitSnapshot: Sendable, Equatable {
  public var activeState: String
  public var subState: String
  public var mainPID: Int

  public init(activeState: String, subState: String, mainPID: Int) {
    self.activeState = activeState
    self.subState = subState
    self.mainPID = mainPID
  }
}

public struct UnitWatchUnavailable: Error, Sendable, CustomStringConvertible {
  public var reason: String
  public init(reason: String) { self.reason = reason }
  public var description: String { reason }
}

/// One of a service's start commands as systemd holds it: the program, and the argv it is
/// given (argv[0] included).
public struct UnitCommandLine: Sendable, Equatable {
  public var path: String
  public var arguments: [String]
  public init(path: String, arguments: [String]) {
    self.path = path
    self.arguments = arguments
  }
}

/// Follows a systemd unit's state over the system bus, and reads what the unit runs.
public protocol UnitWatcher: Sendable {
  /// Yields the unit's current state first, then every change. Throws `UnitWatchUnavailable`
  /// when there is no system bus to ask.
  func watch(unit: String) throws(UnitWatchUnavailable) -> AsyncStream<UnitSnapshot>
  /// The unit's `ExecStart` commands. Blocking (one D-Bus round trip): call it off the pool.
  func commandLines(unit: String) throws(UnitWatchUnavailable) -> [UnitCommandLine]
}

/// How long a streamed download may take. A snapshot can be gigabytes, so there is no total
/// timeout by default; instead a stalled transfer (below `lowSpeedBytesPerSecond` for
/// `lowSpeedWindow`) is aborted, like Vault's own clients recommend.
public struct DownloadLimits: Sendable, Equatable {
  public var connectTimeout: Duration
  public var maxDuration: Duration?
  public var lowSpeedBytesPerSecond: Int
  public var lowSpeedWindow: Duration

  public init(connectTimeout: Duration = .seconds(5), maxDuration: Duration? = nil, lowSpeedBytesPerSecond: Int = 1024, lowSpeedWindow: Duration = .seconds(60)) {
    self.connectTimeout = connectTimeout
    self.maxDuration = maxDuration
    self.lowSpeedBytesPerSecond = lowSpeedBytesPerSecond
    self.lowSpeedWindow = lowSpeedWindow
  }
}

/// The receiving end of a streamed body. `receive` runs on the transport's thread, one call at a
/// time, for one transfer only: that confinement is why non-Sendable state (a verifier, a file)
/// may sit behind it. Returning a reason stops the transfer (`TransportError.Kind.aborted`).
public final class StreamingBody: @unchecked Sendable {
  private let receiver: (UnsafeRawBufferPointer) -> String?

  public init(_ receiver: @escaping (UnsafeRawBufferPointer) -> String?) {
    self.receiver = receiver
  }

  public func receive(_ bytes: UnsafeRawBufferPointer) -> String? { receiver(bytes) }
}

