// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The snapshot duty's decisions that are not the schedule itself. Pure and table-tested.
public enum SnapshotPlan {
  public enum Role: Sendable, Equatable {
    /// This node is the active one: it takes the cluster's snapshot.
    case take
    /// A healthy standby: the active node's vaultkeeper takes the snapshot; staleness is not
    /// judged here (it would alert on every standby of a healthy cluster).
    case standby
    /// No snapshot is possible now (sealed, unreachable, …): wait, and let staleness show.
    case unavailable(String)
  }

  /// Only the active node snapshots: Vault's Raft leadership decides, so one vaultkeeper per
  /// node of an HA cluster yields one snapshot per interval for the cluster.
  public static func role(localState: NodeState) -> Role {
    switch localState {
    case .active: return .take
    case .standby, .performanceStandby, .drSecondary: return .standby
    case .unknown: return .unavailable("vault's state is not known yet")
    default: return .unavailable("vault is \(localState.name)")
    }
  }

  /// How long to wait after the `failures`-th failure in a row: one minute doubling up to an
  /// hour, but never longer than the schedule's own cadence (and shorter for test-grade
  /// intervals), so a transient failure costs at most one interval.
  public static func retryDelay(failures: Int, cadence: Duration) -> Duration {
    let base = min(Duration.seconds(60), cadence / 2)
    let cap = min(Duration.seconds(3600), cadence)
    var delay = base
    for _ in 1..<max(failures, 1) {
      delay = delay * 2
      if delay >= cap { return cap }
    }
    return min(delay, cap)
  }

  /// No good snapshot for longer than `staleAfter`, counting from the last good one, or from
  /// when the duty started waiting for its first one.
  public static func isStale(lastSuccess: Date?, trackingSince: Date, staleAfter: Duration, now: Date) -> Bool {
    now.timeIntervalSince(lastSuccess ?? trackingSince) > staleAfter.seconds
  }
}

extension SnapshotSchedule {
  /// The typical gap between two scheduled snapshots.
  public var cadence: Duration {
    switch (interval, dailyAt) {
    case (let interval?, nil): return interval
    case (let interval?, _?): return min(interval, .seconds(86400))
    default: return .seconds(86400)
    }
  }
}
