// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What one look at a node found. The raw value is the name used in STATUS, the state file,
/// journal fields and metric labels; nowhere else is a state a string.
public enum NodeState: String, Sendable, Equatable, Hashable, CaseIterable, Codable {
  /// Not looked at yet (before the first health check of this node).
  case unknown
  case active
  case standby
  case performanceStandby = "perf-standby"
  case drSecondary = "dr-secondary"
  /// A standby that lost contact with the active node (474, Vault 1.19+).
  case standbyUnhealthy = "standby-unhealthy"
  case sealed
  case uninitialized
  /// Removed from the Raft cluster (530, Vault 1.19+).
  case removed
  /// No HTTP answer: refused, timed out, TLS failed.
  case unreachable
  /// An answer that is not Vault's: unexpected status or garbage body.
  case protocolError = "protocol-error"

  /// The name used in STATUS, the state file, journal fields and metric labels.
  public var name: String { rawValue }

  /// A state file written by another version may name a state this one does not know: it
  /// reads as `unknown` rather than making the whole file unreadable.
  public init(from decoder: any Decoder) throws {
    self = NodeState(rawValue: try decoder.singleValueContainer().decode(String.self)) ?? .unknown
  }

  /// The node answered its last health check with a Vault status (`vaultkeeper_vault_up`).
  /// Not before its first check: nobody has seen it up yet.
  public var answered: Bool {
    switch self {
    case .unknown, .unreachable, .protocolError: false
    default: true
    }
  }

  /// Serving (or ready to serve) requests: the states an operator calls "ok".
  public var isHealthy: Bool {
    switch self {
    case .active, .standby, .performanceStandby, .drSecondary: true
    default: false
    }
  }

  /// States that are a failure to get a proper answer, subject to backoff.
  public var isFailure: Bool { self == .unreachable || self == .protocolError }

  /// The HTTP code Vault uses for the state with the query we send.
  public var healthCode: Int? {
    switch self {
    case .active: 200
    case .standby: 429
    case .drSecondary: 472
    case .performanceStandby: 473
    case .standbyUnhealthy: 474
    case .uninitialized: 501
    case .sealed: 503
    case .removed: 530
    case .unknown, .unreachable, .protocolError: nil
    }
  }
}

/// One health observation with what came with it.
public struct HealthObservation: Sendable, Equatable {
  public var state: NodeState
  public var version: String?
  public var clusterName: String?
  public var clusterID: String?
  public var latency: Duration
  /// The answer came over a new connection (not a kept-alive one).
  public var newConnection: Bool
  /// Why the node is unreachable or what was wrong with the answer.
  public var problem: String?
  /// For an unreachable node: whether the server refused or closed the connection (a sign that
  /// its process went away), nil when it did neither (a timeout, a TLS failure).
  public var serverAction: TransportError.ServerAction?

  public init(state: NodeState, version: String? = nil, clusterName: String? = nil, clusterID: String? = nil,
    latency: Duration = .zero, newConnection: Bool = false, problem: String? = nil, serverAction: TransportError.ServerAction? = nil)
  {
    self.state = state
    self.version = version
    self.clusterName = clusterName
    self.clusterID = clusterID
    self.latency = latency
    self.newConnection = newConnection
    self.problem = problem
    self.serverAction = serverAction
  }
}

/// Pure classification of a `/v1/sys/health` answer.
public enum HealthClassifier {
  /// Every `*code` parameter set explicitly, so each state has its own status code whatever the
  /// server's defaults, and `standbyok`/`perfstandbyok` are left false so standbys stay distinct.
  /// Versions before 1.19 ignore `haunhealthycode`/`removedcode`.
  public static let query =
    "/v1/sys/health?activecode=200&standbycode=429&drsecondarycode=472&performancestandbycode=473"
    + "&haunhealthycode=474&uninitcode=501&sealedcode=503&removedcode=530"

  public static func classify(status: Int, body: [UInt8], latency: Duration, newConnection: Bool) -> HealthObservation {
    func failure(_ problem: String) -> HealthObservation {
      HealthObservation(state: .protocolError, latency: latency, newConnection: newConnection, problem: problem)
    }
    let state: NodeState
    switch status {
    case 200: state = .active
    case 429: state = .standby
    case 472: state = .drSecondary
    case 473: state = .performanceStandby
    case 474: state = .standbyUnhealthy
    case 501: state = .uninitialized
    case 503: state = .sealed
    case 530: state = .removed
    default:
      return failure("unexpected HTTP status \(status) from /v1/sys/health\(errorSuffix(body))")
    }
    guard let health = HealthBodyReader.read(body) else {
      return failure("HTTP \(status) with a body that is not Vault health JSON")
    }
    // The code and the body must tell the same story; a proxy or another service answering on
    // the port is the usual reason they don't.
    let consistent: Bool
    switch state {
    case .sealed: consistent = health.sealed && health.initialized
    case .uninitialized: consistent = !health.initialized
    case .active: consistent = !health.sealed && health.initialized && !health.standby
    default: consistent = !health.sealed && health.initialized
    }
    guard consistent else {
      return failure("HTTP \(status) but the body says initialized=\(health.initialized) sealed=\(health.sealed)")
    }
    return HealthObservation(
      state: state, version: health.version, clusterName: health.clusterName, clusterID: health.clusterID,
      latency: latency, newConnection: newConnection)
  }

  public static func unreachable(_ error: TransportError, latency: Duration) -> HealthObservation {
    HealthObservation(state: .unreachable, latency: latency, newConnection: true, problem: error.description, serverAction: error.serverAction)
  }

  private static func errorSuffix(_ body: [UInt8]) -> String {
    guard let decoded = try? JSONDecoder().decode(ErrorBody.self, from: Data(body)), let errors = decoded.errors, !errors.isEmpty
    else { return "" }
    return ": " + errors.joined(separator: "; ").prefix(200)
  }
}
