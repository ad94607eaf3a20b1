// SPDX-License-Identifier: Apache-2.0
/// A `ServiceManagerNotifier` that never blocks its caller: datagrams go to the real notifier
/// from a thread of its own.
///
/// `sd_notify` blocks while the notify socket's queue is full (a service manager that stopped
/// reading, a stuck `systemd-notify` stand-in). Sent inline, that held up the status board, and
/// with it every node loop that posts to it: health checks and unseals stopped for as long as
/// nobody read. Now only this thread waits. STATUS and WATCHDOG coalesce (only the latest
/// matters); READY, RELOADING and STOPPING keep their order and are never replaced.
public final class QueuedNotifier: ServiceManagerNotifier {
  private let outbox: CoalescingOutbox<[String]>
  private let wrapped: any ServiceManagerNotifier

  /// `capacity` bounds the datagrams waiting; a blocked socket drops the oldest beyond it.
  public init(_ wrapped: any ServiceManagerNotifier, capacity: Int = 32) {
    self.wrapped = wrapped
    self.outbox = CoalescingOutbox(capacity: capacity) { assignments in wrapped.send(assignments) }
  }

  public func send(_ assignments: [String]) {
    guard !assignments.isEmpty else { return }
    outbox.enqueue(assignments, coalescingKey: Self.coalescingKey(assignments))
  }

  public var watchdogTimeout: Duration? { wrapped.watchdogTimeout }

  /// Datagrams dropped because the queue stayed full.
  public var droppedCount: Int { outbox.droppedCount }

  /// Waits, for at most `limit`, until every queued datagram has been handed to `sd_notify`.
  public func drain(within limit: Duration) async -> Bool { await outbox.drain(within: limit) }

  /// A datagram made only of STATUS, or only of WATCHDOG=1, supersedes a pending one of its
  /// kind; anything else (READY=1 with its STATUS, RELOADING=1, STOPPING=1) is kept as sent.
  static func coalescingKey(_ assignments: [String]) -> String? {
    if assignments.allSatisfy({ $0.hasPrefix("STATUS=") }) { return "STATUS" }
    if assignments == ["WATCHDOG=1"] { return "WATCHDOG" }
    return nil
  }
}
