// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One reading of the clocks a node's decisions need: the monotonic instant for every duration
/// (outages, backoffs, unseal times) and the wall time for what is written out (`since`,
/// `last_check`, `last_unseal`). The decisions are handed these; they never read a clock, so
/// tests run them in virtual time.
public struct NodeTime: Sendable, Equatable {
  public var monotonic: ContinuousClock.Instant
  /// Seconds since the Unix epoch.
  public var wall: Double

  public init(monotonic: ContinuousClock.Instant, wall: Double) {
    self.monotonic = monotonic
    self.wall = wall
  }

  /// The same reading moved on by `duration` on both clocks.
  public func advanced(by duration: Duration) -> NodeTime {
    let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    return NodeTime(monotonic: monotonic.advanced(by: duration), wall: wall + seconds)
  }
}

/// Where the node loop reads the time. Only the loop holds one; the decider gets readings.
public protocol NodeClock: Sendable {
  func now() -> NodeTime
}

/// The real clocks.
public struct SystemNodeClock: NodeClock {
  public init() {}
  public func now() -> NodeTime { NodeTime(monotonic: .now, wall: Date().timeIntervalSince1970) }
}
