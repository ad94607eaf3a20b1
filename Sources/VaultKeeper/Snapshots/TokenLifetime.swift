// SPDX-License-Identifier: Apache-2.0
/// When the snapshot duty's Vault token should be used as it is, renewed, or replaced by a new
/// login. Pure, so every edge is table-tested; `TokenKeeper` acts on it.
///
/// - A token without a TTL (a static token, or one that never expires) is always used.
/// - Up to two thirds of its TTL a token is used as it is.
/// - After that a renewable token is renewed (`auth/token/renew-self`), a non-renewable one is
///   replaced by a fresh login; an expired one is always replaced.
/// - A renewal that grants less than the login did (`fullTTL`, the role's `token_ttl`) was capped
///   by the token's max TTL: renewing again cannot help (OpenBao answers "past the max TTL, cannot
///   renew"), so the token is no longer renewable and the next step is a login. Vault counts the
///   max TTL from a creation time in whole seconds and rounds the capped TTL, so a capped token
///   may end up to a second before `issued + ttl`: it is replaced a second early.
public struct TokenLifetime: Sendable, Equatable {
  public enum Action: Sendable, Equatable { case use, renew, login }

  public var issued: ContinuousClock.Instant
  /// Zero: the token does not expire (or we were not told).
  public var ttl: Duration
  public var renewable: Bool
  /// The TTL the login granted; a renewal granting less was capped by the max TTL.
  public var fullTTL: Duration

  public init(issued: ContinuousClock.Instant, ttl: Duration, renewable: Bool, fullTTL: Duration? = nil) {
    self.issued = issued
    self.ttl = ttl
    self.renewable = renewable
    self.fullTTL = fullTTL ?? ttl
  }

  /// Whether the max TTL cut this token's TTL short.
  public var capped: Bool { ttl < fullTTL }

  /// How long after `issued` the token stops being used as it is.
  private var refreshAfter: Duration {
    let twoThirds = ttl * 2 / 3
    guard capped else { return twoThirds }
    return max(min(twoThirds, ttl - .seconds(1)), .zero)
  }

  public func action(at now: ContinuousClock.Instant) -> Action {
    guard ttl > .zero else { return .use }
    let age = issued.duration(to: now)
    if age >= ttl { return .login }
    if age < refreshAfter { return .use }
    return renewable ? .renew : .login
  }

  /// When `action` stops saying `.use` (nil: never).
  public var refreshDue: ContinuousClock.Instant? {
    ttl > .zero ? issued.advanced(by: refreshAfter) : nil
  }

  /// The lifetime after Vault renewed the token at `now` for `newTTL`.
  public func renewed(at now: ContinuousClock.Instant, newTTL: Duration, renewable stillRenewable: Bool) -> TokenLifetime {
    TokenLifetime(issued: now, ttl: newTTL, renewable: stillRenewable && newTTL >= fullTTL, fullTTL: fullTTL)
  }
}
