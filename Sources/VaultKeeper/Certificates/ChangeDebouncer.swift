// SPDX-License-Identifier: Apache-2.0
/// Decides when to look at the certificate files: once they have been quiet for a while after
/// a change, and on a slow timer in any case. Pure: the caller passes the time.
///
/// The quiet period is what makes cert and key be read together: certbot (and most tools)
/// write them one after the other, and reading between the two would pair a new certificate
/// with the old key. Every change restarts the quiet period, but a look is never put off
/// longer than `maxDelay` after the first change of a burst, so a directory that never calms
/// down (a log file next to the certificate) cannot postpone a renewal forever.
///
/// The slow re-check is the fallback for filesystems where inotify sees nothing (NFS, some
/// FUSE and overlay setups, a bind mount replaced underneath).
public struct ChangeDebouncer: Sendable, Equatable {
  public typealias Instant = ContinuousClock.Instant

  /// Why a look is due.
  public enum Reason: Sendable, Equatable {
    /// Changes were seen and then nothing for the quiet period (or `maxDelay` passed).
    case settled
    /// The slow timer: nothing was seen, the files are read anyway.
    case recheck
  }

  public let quietPeriod: Duration
  public let recheckEvery: Duration
  public let maxDelay: Duration
  private var firstChange: Instant?
  private var lastChange: Instant?
  private var nextRecheck: Instant

  /// - Parameters:
  ///   - quietPeriod: how long the files must be left alone before they are read.
  ///   - recheckEvery: the fallback timer's period.
  ///   - maxDelay: the longest a burst of changes can put a look off; defaults to four quiet
  ///     periods and is never shorter than one.
  ///   - now: the start; the first re-check is one period later.
  public init(quietPeriod: Duration, recheckEvery: Duration, maxDelay: Duration? = nil, now: Instant) {
    self.quietPeriod = quietPeriod
    self.recheckEvery = recheckEvery
    self.maxDelay = max(maxDelay ?? quietPeriod * 4, quietPeriod)
    self.nextRecheck = now + recheckEvery
  }

  /// Something changed in a watched directory at `now`.
  public mutating func changed(at now: Instant) {
    if firstChange == nil { firstChange = now }
    lastChange = now
  }

  /// True while changes wait for their quiet period.
  public var isPending: Bool { lastChange != nil }

  /// When `due(at:)` will next return a reason, if nothing else changes.
  public var nextDeadline: Instant {
    guard let firstChange, let lastChange else { return nextRecheck }
    return min(lastChange + quietPeriod, firstChange + maxDelay)
  }

  /// Whether to read the files at `now`; a non-nil answer starts a new cycle (the pending
  /// changes are taken and the re-check timer starts over, since a read just happened).
  public mutating func due(at now: Instant) -> Reason? {
    guard now >= nextDeadline else { return nil }
    let reason: Reason = isPending ? .settled : .recheck
    firstChange = nil
    lastChange = nil
    nextRecheck = now + recheckEvery
    return reason
  }
}
