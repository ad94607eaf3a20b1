// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Whether backups are stale, judged on a timer (every second, whatever a transfer is doing)
/// rather than when a snapshot finishes. Pure: the caller passes the instants.
///
/// Staleness is counted on the monotonic clock from `reference`: the last good snapshot this
/// process saw, or at start the ledger's record of one (never a file name, and never a record
/// dated in the future), or when the duty began waiting for its first. A wall clock that jumps
/// (back after being ahead, or forward) neither hides staleness nor invents it.
public struct SnapshotFreshness: Sendable, Equatable {
  public var staleAfter: Duration
  /// A stale-backups entry is repeated this often while backups stay stale.
  public var reminder: Duration
  /// Where staleness is counted from.
  public private(set) var reference: ContinuousClock.Instant
  /// When the last stale entry was announced (nil: not stale, or not announced yet).
  public private(set) var announcedAt: ContinuousClock.Instant?

  public init(staleAfter: Duration, reference: ContinuousClock.Instant, reminder: Duration = .seconds(86400)) {
    self.staleAfter = staleAfter
    self.reference = reference
    self.reminder = reminder
  }

  /// The monotonic instant that corresponds to the wall-clock time `wall`, seen at `now`
  /// (wall) = `nowInstant` (monotonic). A `wall` later than `now` maps to `nowInstant`.
  public static func instant(of wall: Date, now: Date, nowInstant: ContinuousClock.Instant) -> ContinuousClock.Instant {
    // Clamped to a century: a damaged ledger's absurd time must not overflow the conversion
    // (that would trap at every start); any age that long is stale all the same.
    let raw = now.timeIntervalSince(wall)
    let age = raw.isFinite ? min(max(raw, 0), Self.longestAge) : Self.longestAge
    return nowInstant.advanced(by: .milliseconds(-Int64((age * 1000).rounded())))
  }

  static let longestAge: Double = 100 * 365.25 * 86400

  public enum Verdict: Sendable, Equatable {
    case fresh
    /// `announce`: log the stale-backups entry now (first time, or the daily reminder).
    case stale(announce: Bool)
  }

  /// - Parameter judged: false on a healthy standby, whose staleness is not its concern (the
  ///   active node's vaultkeeper judges it); the verdict is then fresh.
  public mutating func judge(now: ContinuousClock.Instant, judged: Bool = true) -> Verdict {
    guard judged, reference.duration(to: now) > staleAfter else {
      announcedAt = nil
      return .fresh
    }
    if let said = announcedAt, said.duration(to: now) < reminder { return .stale(announce: false) }
    announcedAt = now
    return .stale(announce: true)
  }

  /// A good snapshot at `instant`: fresh again, and a later staleness is announced anew.
  public mutating func succeeded(at instant: ContinuousClock.Instant) {
    if instant > reference { reference = instant }
    announcedAt = nil
  }

  /// How old the reference is at `now`.
  public func age(at now: ContinuousClock.Instant) -> Duration {
    max(reference.duration(to: now), .zero)
  }
}
