// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The snapshot duty's schedule as a value: when to take the next snapshot, when to renew the
/// token, how long to wait and what to report meanwhile. Fed events with the time they happened
/// (`NodeTime`: monotonic for waits, wall for the schedule and names); it never reads a clock,
/// so tests run it in virtual time. The duty's loop only performs what it answers.
///
/// The rules themselves stay where they are: `SnapshotSchedule` (due times, one catch-up after
/// downtime), `SnapshotPlan` (who snapshots, retry back-off), `SnapshotLedger` (what a restart
/// may believe), `TokenLifetime` (the token's refresh time, handed in as `tokenRefreshDue`).
public struct SnapshotScheduler: Sendable, Equatable {
  public struct Settings: Sendable, Equatable {
    public var schedule: SnapshotSchedule
    /// How often the role (active/standby) is looked at while nothing is due.
    public var recheck: Duration = .seconds(5)
    /// How often a due snapshot that cannot be taken yet (sealed, standby) is looked at again.
    public var waitingRecheck: Duration = .seconds(1)

    public init(schedule: SnapshotSchedule) { self.schedule = schedule }
  }

  /// What the loop does next.
  public enum Action: Sendable, Equatable {
    /// The token's refresh time has come: renew it (or log in), then tick again.
    case renewToken
    /// Take the snapshot now (this node is active and it is due).
    case take
    /// Nothing to do: publish this and wait.
    case wait(Wait)
  }

  public struct Wait: Sendable, Equatable {
    public var delay: Duration
    public var phase: SnapshotPhase
    /// Why a due snapshot is not being taken (shown once it is overdue).
    public var waitingFor: String?
    /// The due time to show (seconds since the epoch); nil on a standby.
    public var nextDue: Double?
  }

  /// After a failed attempt: when the next one is, and how many failed in a row.
  public struct Retry: Sendable, Equatable {
    public var delay: Duration
    public var due: Date
    public var consecutiveFailures: Int
  }

  public let settings: Settings
  /// When the next snapshot is due (wall clock, as the schedule is written in it).
  public private(set) var due: Date
  /// Failed attempts since the last success (carried over a reload, for the back-off).
  public private(set) var consecutiveFailures: Int

  public init(settings: Settings, due: Date, consecutiveFailures: Int = 0) {
    self.settings = settings
    self.due = due
    self.consecutiveFailures = consecutiveFailures
  }

  /// One look at the situation.
  /// - Parameters:
  ///   - role: what the local node's state allows (`SnapshotPlan.role`).
  ///   - tokenRefreshDue: when the held token next needs renewing (nil: none held, or never).
  ///   - mayRenew: false right after a renewal in the same pass, so a renewal that did not move
  ///     the refresh time cannot loop; the wait is then kept short instead.
  public func tick(at now: NodeTime, role: SnapshotPlan.Role, tokenRefreshDue: ContinuousClock.Instant?, mayRenew: Bool = true) -> Action {
    if mayRenew, let refresh = tokenRefreshDue, refresh <= now.monotonic { return .renewToken }
    let wallNow = Date(timeIntervalSince1970: now.wall)
    let overdue = wallNow >= due
    var wait: Wait
    switch role {
    case .take:
      if overdue { return .take }
      wait = Wait(delay: settings.recheck, phase: .idle, waitingFor: nil, nextDue: due.timeIntervalSince1970)
    case .standby:
      // Look often: take over soon after leadership moves here.
      wait = Wait(delay: settings.waitingRecheck, phase: .standby, waitingFor: nil, nextDue: nil)
    case .unavailable(let why):
      wait = Wait(
        delay: overdue ? settings.waitingRecheck : settings.recheck, phase: overdue ? .waiting : .idle, waitingFor: overdue ? why : nil,
        nextDue: due.timeIntervalSince1970)
    }
    let untilDue = due.timeIntervalSince(wallNow)
    if untilDue > 0 { wait.delay = min(wait.delay, .milliseconds(Int64(untilDue * 1000) + 1)) }
    if let refresh = tokenRefreshDue { wait.delay = min(wait.delay, max(now.monotonic.duration(to: refresh), .milliseconds(1))) }
    return .wait(wait)
  }

  /// A snapshot was committed; `taken` is the time in its name (so the ledger and the directory
  /// agree after a restart). Returns the next due time, computed from it: never a burst.
  /// - Parameter random: 0...1, chooses the randomized delay.
  @discardableResult
  public mutating func succeeded(taken: Date, at now: NodeTime, random: Double) -> Date {
    consecutiveFailures = 0
    due = settings.schedule.nextDue(lastSuccess: taken, now: Date(timeIntervalSince1970: now.wall), random: random)
    return due
  }

  /// An attempt failed: retry after one minute doubling up to an hour, never beyond the cadence.
  public mutating func failed(at now: NodeTime) -> Retry {
    consecutiveFailures += 1
    let delay = SnapshotPlan.retryDelay(failures: consecutiveFailures, cadence: settings.schedule.cadence)
    due = Date(timeIntervalSince1970: now.wall).addingTimeInterval(delay.seconds)
    return Retry(delay: delay, due: due, consecutiveFailures: consecutiveFailures)
  }
}

extension SnapshotScheduler {
  /// What the duty starts from, decided from the ledger as loaded.
  public struct Start: Sendable, Equatable {
    public var scheduler: SnapshotScheduler
    /// The ledger to keep (its `trackingSince` made believable).
    public var ledger: SnapshotLedger
    /// The last good snapshot's time, if the ledger's record is believable.
    public var lastSuccess: Date?
    /// A record dated in the future: reported, not believed (a snapshot is due now).
    public var futureRecord: SnapshotLedger.Success?
    /// Write the ledger at once: there was none, or its `trackingSince` was in the future.
    /// Otherwise every restart before the first success would restart the staleness clock.
    public var saveLedger: Bool
    /// A snapshot was missed (downtime): one is taken now, once.
    public var catchUp: Bool
    /// Where staleness counts from, on the monotonic clock.
    public var freshnessReference: ContinuousClock.Instant
  }

  /// Staleness and the schedule go by the ledger only: a file name is no evidence of when a
  /// snapshot was taken (a clock that was ahead, or anyone who may write the directory, can put
  /// any time in it), and a record dated in the future is not believed either.
  public static func start(
    ledger loaded: SnapshotLedger?, settings: Settings, consecutiveFailures: Int = 0, at now: NodeTime, random: Double
  ) -> Start {
    let wallNow = Date(timeIntervalSince1970: now.wall)
    var ledger = loaded ?? SnapshotLedger(trackingSince: now.wall)
    let futureRecord = ledger.recordsFutureSuccess(now: wallNow) ? ledger.lastSuccess : nil
    let trackingSince = ledger.believedTrackingSince(now: wallNow)
    let trackingReset = trackingSince.timeIntervalSince1970 != ledger.trackingSince
    ledger.trackingSince = trackingSince.timeIntervalSince1970
    let lastSuccess = ledger.believedLastSuccess(now: wallNow)
    let due = settings.schedule.nextDue(lastSuccess: lastSuccess, now: wallNow, random: random)
    let catchUp = lastSuccess != nil && due <= wallNow.addingTimeInterval(settings.schedule.randomizedDelay.seconds)
    let reference = SnapshotFreshness.instant(of: lastSuccess ?? trackingSince, now: wallNow, nowInstant: now.monotonic)
    return Start(
      scheduler: SnapshotScheduler(settings: settings, due: due, consecutiveFailures: consecutiveFailures), ledger: ledger,
      lastSuccess: lastSuccess, futureRecord: futureRecord, saveLedger: loaded == nil || trackingReset, catchUp: catchUp,
      freshnessReference: reference)
  }
}
