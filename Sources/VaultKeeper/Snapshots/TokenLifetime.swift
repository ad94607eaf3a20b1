/// When the snapshot duty's Vault token should be used as it is, renewed, or replaced by a new
/// login. Pure, so every edge is table-tested; `TokenKeeper` acts on it.
///
/// - A token without a TTL (a static token, or one that never expires) is always used.
/// - Up to two thirds of its TTL a token is used as it is.
/// - After that a renewable token is renewed (`auth/token/renew-self`), a non-renewable one is
///   replaced by a fresh login; an expired one is always replaced.
/// - A renewal that does not extend the lifetime (Vault capped it at the token's max TTL) makes
///   the token non-renewable: renewing it again cannot help, the next step is a login.
public struct TokenLifetime: Sendable, Equatable {
  public enum Action: Sendable, Equatable { case use, renew, login }

  public var issued: ContinuousClock.Instant
  /// Zero: the token does not expire (or we were not told).
  public var ttl: Duration
  public var renewable: Bool

  public init(issued: ContinuousClock.Instant, ttl: Duration, renewable: Bool) {
    self.issued = issued
    self.ttl = ttl
    self.renewable = renewable
  }

  public func action(at now: ContinuousClock.Instant) -> Action {
    guard ttl > .zero else { return .use }
    let age = issued.duration(to: now)
    if age >= ttl { return .login }
    if age < ttl * 2 / 3 { return .use }
    return renewable ? .renew : .login
  }

  /// When `action` stops saying `.use` (nil: never).
  public var refreshDue: ContinuousClock.Instant? {
    ttl > .zero ? issued.advanced(by: ttl * 2 / 3) : nil
  }

  /// The lifetime after Vault renewed the token at `now` for `newTTL`.
  public func renewed(at now: ContinuousClock.Instant, newTTL: Duration, renewable stillRenewable: Bool) -> TokenLifetime {
    let remaining = ttl - issued.duration(to: now)
    // Capped by max_ttl: the renewal gave (almost) nothing beyond what was left.
    let extended = newTTL > remaining + .seconds(1)
    return TokenLifetime(issued: now, ttl: newTTL, renewable: stillRenewable && extended)
  }
}
