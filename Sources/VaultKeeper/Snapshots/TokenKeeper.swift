// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Holds the snapshot duty's Vault token between snapshots: logs in with AppRole (or reads the
/// static token), renews it before it expires, and logs in again when renewal is impossible or
/// Vault says the token is no longer valid (`invalidate()`). The token lives in locked memory
/// and is never turned into a String. Credentials are read from their files on every login, so
/// a rotated secret ID is picked up without a reload.
public actor TokenKeeper {
  public enum Event: Sendable, Equatable {
    case loggedIn(ttl: Duration)
    case renewed(ttl: Duration)
    case renewalFailed(String)
  }

  private let auth: SnapshotConfig.Auth
  private let node: NodeConfig
  private let environment: [String: String]
  private let makeTransport: @Sendable (NodeConfig) -> any HTTPTransport
  private let onEvent: @Sendable (Event) -> Void
  /// Where the token's age is read (a manual clock in tests: renewal at ⅔ of the TTL in virtual time).
  private let clock: any NodeClock
  private var current: (token: SecretBytes, lifetime: TokenLifetime)?

  public init(auth: SnapshotConfig.Auth, node: NodeConfig, environment: [String: String],
    makeTransport: @escaping @Sendable (NodeConfig) -> any HTTPTransport, onEvent: @escaping @Sendable (Event) -> Void = { _ in },
    clock: any NodeClock = SystemNodeClock())
  {
    self.clock = clock
    self.auth = auth
    self.node = node
    self.environment = environment
    self.makeTransport = makeTransport
    self.onEvent = onEvent
  }

  /// A token that is valid now: the held one, renewed or replaced as `TokenLifetime` says.
  public func token() async throws(SnapshotError) -> SecretBytes {
    try await refresh(now: clock.now().monotonic)
    guard let current else { throw SnapshotError(.auth, "no Vault token") }
    return current.token
  }

  /// Renews (or replaces) the held token if it is due; does nothing while none is held. The
  /// duty calls this at `refreshDue` so the token outlives the gaps between snapshots.
  public func maintain() async {
    guard current != nil else { return }
    try? await refresh(now: clock.now().monotonic)
  }

  /// When the held token next needs attention (nil: no token held, or it never expires).
  public var refreshDue: ContinuousClock.Instant? { current?.lifetime.refreshDue }

  /// Vault refused the token (403): forget it, so the next `token()` logs in afresh.
  public func invalidate() { current = nil }

  /// Whether a fresh login could produce a different token (false for a static token file
  /// that was just read).
  public var canLogIn: Bool {
    if case .appRole = auth { return true }
    return false
  }

  private func refresh(now: ContinuousClock.Instant) async throws(SnapshotError) {
    if let held = current {
      switch held.lifetime.action(at: now) {
      case .use: return
      case .renew:
        let transport = makeTransport(node)
        defer { transport.shutdown() }
        do {
          let renewed = try await VaultClient(transport: transport, timeout: node.timeout).renewSelf(held.token)
          current = (held.token, held.lifetime.renewed(at: clock.now().monotonic, newTTL: renewed.ttl, renewable: renewed.renewable))
          onEvent(.renewed(ttl: renewed.ttl))
          return
        } catch {
          onEvent(.renewalFailed("\(error)"))
          current = nil  // fall through to a fresh login
        }
      case .login:
        current = nil
      }
    }
    let token = try await obtain()
    current = (token.token, TokenLifetime(issued: clock.now().monotonic, ttl: token.ttl, renewable: token.renewable))
    if case .appRole = auth { onEvent(.loggedIn(ttl: token.ttl)) }
  }

  private func obtain() async throws(SnapshotError) -> VaultToken {
    switch auth {
    case .token(let credential):
      return VaultToken(token: try CredentialReader.read(credential, what: "token", environment: environment), ttl: .zero, renewable: false)
    case .appRole(let roleCredential, let secretCredential, let mount):
      let roleID = try CredentialReader.read(roleCredential, what: "AppRole role ID", environment: environment)
      let secretID = try CredentialReader.read(secretCredential, what: "AppRole secret ID", environment: environment)
      let transport = makeTransport(node)
      defer { transport.shutdown() }
      do {
        return try await VaultClient(transport: transport, timeout: node.timeout).loginAppRole(mount: mount, roleID: roleID, secretID: secretID)
      } catch {
        throw SnapshotError(.auth, "AppRole login at auth/\(mount) failed: \(error)")
      }
    }
  }
}
