// SPDX-License-Identifier: Apache-2.0
/// The validated configuration. Everything here has been checked by `ConfigLoader`: addresses
/// parse, files exist, durations are positive, combinations make sense.
public struct Config: Sendable, Equatable {
  /// The file this configuration came from (for messages).
  public var sourcePath: String
  /// The local Vault node (`[vault]`).
  public var vault: NodeConfig
  /// Further nodes of the same cluster (`[[peer]]`).
  public var peers: [NodeConfig]
  public var health: HealthConfig
  public var unseal: UnsealConfig
  public var metrics: MetricsConfig
  /// `[snapshot]`, when present.
  public var snapshot: SnapshotConfig?
  /// `[certificate]`, when present.
  public var certificate: CertificateConfig? = nil
  /// `[[notify]]`: webhooks and commands told about problems.
  public var notify: [NotifyConfig] = []

  /// All nodes, the local one first.
  public var nodes: [NodeConfig] { [vault] + peers }
}

public struct NodeConfig: Sendable, Equatable {
  public var address: VaultAddress
  public var caFile: String?
  public var serverName: String?
  public var clientCertFile: String?
  public var clientKeyFile: String?
  /// The systemd unit this node's Vault runs as, when it runs on this machine.
  public var unit: String?
  /// Total time allowed for one request.
  public var timeout: Duration
  /// Time allowed to establish the connection (TCP + TLS).
  public var connectTimeout: Duration

  /// A short name for messages and metric labels: the address as written.
  public var name: String { address.display }

  public init(address: VaultAddress, caFile: String? = nil, serverName: String? = nil, clientCertFile: String? = nil,
    clientKeyFile: String? = nil, unit: String? = nil, timeout: Duration = .seconds(5), connectTimeout: Duration = .seconds(2))
  {
    self.address = address
    self.caFile = caFile
    self.serverName = serverName
    self.clientCertFile = clientCertFile
    self.clientKeyFile = clientKeyFile
    self.unit = unit
    self.timeout = timeout
    self.connectTimeout = connectTimeout
  }
}

public struct HealthConfig: Sendable, Equatable {
  /// Poll interval while everything is fine.
  public var interval: Duration
  /// Poll interval while a node is sealed, unreachable or changing.
  public var fastInterval: Duration
  /// Upper bound of the backoff on repeated failures.
  public var maxBackoff: Duration
  /// Consecutive failures before "unreachable" is logged as an error (earlier ones are warnings).
  public var unreachableErrorAfter: Int

  public init(interval: Duration = .seconds(5), fastInterval: Duration = .milliseconds(250), maxBackoff: Duration = .seconds(30), unreachableErrorAfter: Int = 3) {
    self.interval = interval
    self.fastInterval = fastInterval
    self.maxBackoff = maxBackoff
    self.unreachableErrorAfter = unreachableErrorAfter
  }
}

public struct UnsealConfig: Sendable, Equatable {
  public enum After: String, Sendable, Equatable {
    /// Unseal at our start-up and after Vault restarted; respect a deliberate seal.
    case restart
    /// Unseal whenever a node is sealed, even right after an operator sealed it.
    case always
  }
  public enum KeySource: Sendable, Equatable {
    case file(String)
    /// A file in `$CREDENTIALS_DIRECTORY` (systemd `LoadCredential[Encrypted]=`).
    case credential(String)
  }
  public var enabled: Bool
  public var keySource: KeySource?
  public var foreignProgressGrace: Duration
  public var after: After
  /// First wait after shares combined to a wrong key; doubles up to 16×.
  public var wrongKeyBackoff: Duration
}

public struct MetricsConfig: Sendable, Equatable {
  public var textfileDirectory: String?
}

/// Where a Vault node listens.
public struct VaultAddress: Sendable, Equatable {
  public enum Scheme: String, Sendable { case https, http, unix }
  public var scheme: Scheme
  /// Host name or IP literal (without brackets) for http(s); empty for unix.
  public var host: String
  public var port: Int
  /// Socket path for unix.
  public var socketPath: String?
  /// The address as the operator wrote it.
  public var display: String

  /// The base URL libcurl should use. For unix sockets curl connects to the socket
  /// (`CURLOPT_UNIX_SOCKET_PATH`) and the URL only supplies the Host header.
  public var baseURL: String {
    switch scheme {
    case .unix: return "http://localhost"
    case .https, .http:
      let hostPart = host.contains(":") ? "[\(host)]" : host
      return "\(scheme.rawValue)://\(hostPart):\(port)"
    }
  }

  /// Whether traffic to this address stays on this machine. Plain http is accepted only then.
  public var isLocal: Bool {
    switch scheme {
    case .unix: return true
    case .http, .https: return VaultAddress.isLoopbackHost(host)
    }
  }

  static func isLoopbackHost(_ host: String) -> Bool {
    let lower = host.lowercased()
    if lower == "localhost" || lower == "::1" { return true }
    let parts = lower.split(separator: ".", omittingEmptySubsequences: false)
    if parts.count == 4, parts.allSatisfy({ UInt8($0) != nil }), parts.first == "127" { return true }
    return false
  }

  /// Parses `https://host:port`, `http://127.0.0.1:8200`, `unix:///run/vault/vault.sock`.
  /// Returns a reason on failure.
  public static func parse(_ text: String) -> Result<VaultAddress, AddressError> {
    if text.hasPrefix("unix://") {
      let path = String(text.dropFirst("unix://".count))
      guard path.hasPrefix("/"), path.count > 1 else {
        return .failure(AddressError(reason: "a unix address needs an absolute socket path, like unix:///run/vault/vault.sock"))
      }
      return .success(VaultAddress(scheme: .unix, host: "", port: 0, socketPath: path, display: text))
    }
    guard let schemeEnd = text.firstRange(of: "://") else {
      return .failure(AddressError(reason: "expected https://HOST[:PORT], http://HOST[:PORT] or unix:///PATH"))
    }
    guard let scheme = Scheme(rawValue: String(text[..<schemeEnd.lowerBound]).lowercased()), scheme != .unix else {
      return .failure(AddressError(reason: "unsupported scheme \"\(text[..<schemeEnd.lowerBound])\" (use https, http or unix)"))
    }
    var rest = Substring(text[schemeEnd.upperBound...])
    if rest.hasSuffix("/") { rest = rest.dropLast() }
    guard !rest.contains("/"), !rest.contains("?"), !rest.contains("@"), !rest.contains("#") else {
      return .failure(AddressError(reason: "the address must be scheme://host[:port] with no path, query or credentials"))
    }
    var host: String
    var portText: Substring?
    if rest.hasPrefix("[") {
      guard let close = rest.firstIndex(of: "]") else { return .failure(AddressError(reason: "unterminated [IPv6] host")) }
      host = String(rest[rest.index(after: rest.startIndex)..<close])
      let after = rest[rest.index(after: close)...]
      if after.hasPrefix(":") { portText = after.dropFirst() } else if !after.isEmpty {
        return .failure(AddressError(reason: "unexpected text after [IPv6] host"))
      }
    } else if let colon = rest.lastIndex(of: ":") {
      host = String(rest[..<colon])
      portText = rest[rest.index(after: colon)...]
    } else {
      host = String(rest)
    }
    guard !host.isEmpty, host.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == ":" }) else {
      return .failure(AddressError(reason: "missing or invalid host"))
    }
    var port = 8200  // Vault's default listener port, for https and http alike
    if let portText {
      guard let p = Int(portText), (1...65535).contains(p) else {
        return .failure(AddressError(reason: "port must be a number from 1 to 65535"))
      }
      port = p
    }
    host = host.lowercased()
    return .success(VaultAddress(scheme: scheme, host: host, port: port, socketPath: nil, display: text))
  }

  public struct AddressError: Error, Sendable, Equatable { public var reason: String }
}
