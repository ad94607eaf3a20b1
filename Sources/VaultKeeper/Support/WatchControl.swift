// SPDX-License-Identifier: Apache-2.0
import Synchronization

/// The `Sendable` part of a watch thread (unit watch, certificate watch): lets the stream's
/// termination handler (any thread) tell the thread to stop, and lets tests see that it did.
public final class WatchControl: Sendable {
  private let stopRequested = Atomic<Bool>(false)
  private let finished = Atomic<Bool>(false)

  public init() {}

  public func requestStop() { stopRequested.store(true, ordering: .releasing) }
  public var isStopRequested: Bool { stopRequested.load(ordering: .acquiring) }

  public func markFinished() { finished.store(true, ordering: .releasing) }
  /// True once the thread has released what it owned and finished its stream.
  public var isFinished: Bool { finished.load(ordering: .acquiring) }
}
