// SPDX-License-Identifier: Apache-2.0
import Logging
import Synchronization

/// When to try a failed delivery again: 5 s, 15 s, 30 s, 1 m, 2 m, then every 5 m, for up to
/// `giveUpAfter` (10 min by default). A receiver that is down for a restart gets the message a
/// little late; one that is gone for good costs a journal entry, not a queue that never moves.
public struct DeliveryBackoff: Sendable, Equatable {
  public var delays: [Duration]
  public var giveUpAfter: Duration

  public static let standard = DeliveryBackoff(
    delays: [.seconds(5), .seconds(15), .seconds(30), .seconds(60), .seconds(120), .seconds(300)], giveUpAfter: .seconds(600))

  public init(delays: [Duration], giveUpAfter: Duration) {
    self.delays = delays
    self.giveUpAfter = giveUpAfter
  }

  /// The wait before attempt `failures + 1`, or nil to give up (`spent` is the time since the
  /// first attempt began).
  public func delay(afterFailures failures: Int, spent: Duration) -> Duration? {
    guard failures >= 1, let last = delays.last else { return nil }
    let delay = failures <= delays.count ? delays[failures - 1] : last
    return spent + delay <= giveUpAfter ? delay : nil
  }
}

/// Counts per target, for the metrics and `vaultkeeper status`.
public struct NotifyTargetStats: Sendable, Equatable, Codable {
  public var name: String
  public var delivered: Int = 0
  /// Messages given up on after their retries, or refused for good.
  public var failed: Int = 0
  /// Messages dropped because the queue was full.
  public var dropped: Int = 0
  public var lastDelivered: Double?
  public var lastFailure: Double?

  public init(name: String) { self.name = name }

  enum CodingKeys: String, CodingKey {
    case name, delivered, failed, dropped
    case lastDelivered = "last_delivered"
    case lastFailure = "last_failure"
  }
}

/// One target's queue and delivery loop. `enqueue` never waits: messages go into a bounded
/// queue (the oldest dropped and counted when it is full) that one task works through, one
/// message at a time, with retries. The sender does its blocking work off the cooperative pool,
/// so a receiver that hangs holds up this target's queue and nothing else: not a health check,
/// not an unseal, not a watchdog ping, not another target.
public final class NotifyOutbox: Sendable {
  public let name: String
  private let task: Task<Void, Never>
  private let sender: any NotifySender
  private let shared: Shared

  private struct Queue {
    var waiting: [AlertMessage] = []
    /// The message being delivered (retries included), until it is delivered or given up.
    var inFlight: AlertMessage?
    /// Dropped since the last message taken from the queue (told in the next one).
    var droppedSinceTaken = 0
    var closed = false
    /// Set when a reload replaced this outbox: the attempt in flight is finished, and if it
    /// fails its message goes here (the successor) instead of being retried.
    var successor: (@Sendable (AlertMessage) -> Void)?
    var stats: NotifyTargetStats
  }

  private final class Shared: Sendable {
    let queue: Mutex<Queue>
    let wakeup: AsyncStream<Void>.Continuation
    let logger: Logger
    let capacity: Int
    init(name: String, logger: Logger, capacity: Int, wakeup: AsyncStream<Void>.Continuation) {
      queue = Mutex(Queue(stats: NotifyTargetStats(name: name)))
      self.logger = logger
      self.capacity = max(capacity, 1)
      self.wakeup = wakeup
    }
  }

  /// `stats` and `pending` carry over what an outbox this one replaces had counted and had not
  /// delivered (a reload that changed how the target delivers).
  public init(
    name: String, sender: any NotifySender, capacity: Int, logger: Logger, clock: any DutyClock, backoff: DeliveryBackoff = .standard,
    describe: String, stats: NotifyTargetStats? = nil, pending: [AlertMessage] = []
  ) {
    self.name = name
    self.sender = sender
    // A doorbell, not a queue: one pending ring is enough to send the loop looking.
    let (rings, wakeup) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    let shared = Shared(name: name, logger: logger, capacity: capacity, wakeup: wakeup)
    shared.queue.withLock { q in
      if let stats { q.stats = stats }
      q.waiting = Array(pending.suffix(shared.capacity))
      // A smaller queue than before: the oldest that do not fit are dropped, and said so.
      let dropped = pending.count - q.waiting.count
      q.stats.dropped += dropped
      q.droppedSinceTaken += dropped
    }
    self.shared = shared
    task = Task {
      var iterator = rings.makeAsyncIterator()
      while true {
        let next = shared.queue.withLock { q -> AlertMessage? in
          guard !q.waiting.isEmpty else { return nil }
          var message = q.waiting.removeFirst()
          message.droppedBefore = q.droppedSinceTaken
          q.droppedSinceTaken = 0
          q.inFlight = message
          return message
        }
        if let next {
          await Self.deliver(next, name: name, describe: describe, sender: sender, shared: shared, clock: clock, backoff: backoff)
          if Task.isCancelled { return }
          shared.queue.withLock { $0.inFlight = nil }
          continue
        }
        if shared.queue.withLock({ $0.closed }) { break }
        guard await iterator.next() != nil else { break }
      }
      // Retired by a reload (or finished): the sender's thread is let go, off the pool.
      if !Task.isCancelled, shared.queue.withLock({ $0.successor != nil }) { await OffPool.run { sender.shutdown() } }
    }
  }

  /// Queues `message` and returns at once; false when this outbox was shut down (replaced by a
  /// reload meanwhile: the caller hands the message to the new one).
  @discardableResult
  public func enqueue(_ message: AlertMessage) -> Bool {
    let firstDrop = shared.queue.withLock { q -> Bool? in
      guard !q.closed else { return nil }
      var first = false
      if q.waiting.count >= shared.capacity {
        q.waiting.removeFirst()
        q.droppedSinceTaken += 1
        q.stats.dropped += 1
        first = q.droppedSinceTaken == 1
      }
      q.waiting.append(message)
      return first
    }
    guard let firstDrop else { return false }
    shared.wakeup.yield()
    if firstDrop {
      shared.logger.warning(
        "notify \(name): its queue is full (the receiver is slow or down); the oldest message was dropped, and the next one delivered says how many were",
        metadata: ["message_id": "\(MessageID.notifyFailed.rawValue)", "notify.target": "\(name)"])
    }
    return true
  }

  public var stats: NotifyTargetStats { shared.queue.withLock { $0.stats } }

  /// Stops at once (the daemon's stop): cancels the delivery in flight; what waits is dropped
  /// (the journal has the events). Returns what was not delivered, the one in flight first.
  @discardableResult
  public func shutdown() -> [AlertMessage] {
    let left = shared.queue.withLock { q -> [AlertMessage] in
      q.closed = true
      defer { (q.waiting, q.inFlight) = ([], nil) }
      return (q.inFlight.map { [$0] } ?? []) + q.waiting
    }
    shared.wakeup.finish()
    task.cancel()
    return left
  }

  /// Hands over to a successor (a reload changed how this target delivers): returns the
  /// waiting messages for it at once; the attempt in flight, if any, is let finish (cancelling
  /// it could deliver it twice: the receiver may already have it), and if it fails its message
  /// goes to `successor` rather than being retried here. The sender is let go after that.
  public func retire(handingOverTo successor: @escaping @Sendable (AlertMessage) -> Void) -> [AlertMessage] {
    let waiting = shared.queue.withLock { q -> [AlertMessage] in
      q.closed = true
      q.successor = successor
      defer { q.waiting = [] }
      return q.waiting
    }
    shared.wakeup.finish()
    return waiting
  }

  /// Ends the sender's own resources (a transport thread). Blocking: off the pool.
  public func closeSender() {
    sender.shutdown()
  }

  /// Waits until the queue is empty and the last message handled (tests).
  public func finish() async {
    shared.queue.withLock { $0.closed = true }
    shared.wakeup.finish()
    await task.value
  }

  private static func deliver(
    _ message: AlertMessage, name: String, describe: String, sender: any NotifySender, shared: Shared, clock: any DutyClock,
    backoff: DeliveryBackoff
  ) async {
    let started = clock.now().monotonic
    var failures = 0
    let what = "\(message.status.rawValue) \(message.key)"
    while !Task.isCancelled {
      let outcome = await sender.send(message)
      // Stopped meanwhile: no verdict (the stop drops what is left).
      if Task.isCancelled { return }
      // Replaced meanwhile: a failed attempt is the successor's to retry.
      if case .failed = outcome, let successor = shared.queue.withLock({ $0.successor }) {
        successor(message)
        return
      }
      switch outcome {
      case .delivered(let detail):
        shared.queue.withLock {
          $0.stats.delivered += 1
          $0.stats.lastDelivered = clock.now().wall
        }
        shared.logger.info(
          "notify \(name): delivered \(what) to \(describe) (\(detail))\(failures > 0 ? " after \(failures) failed attempt\(failures == 1 ? "" : "s")" : "")",
          metadata: ["notify.target": "\(name)", "notify.event": "\(message.event.rawValue)"])
        return
      case .failed(let reason, let retry):
        failures += 1
        let spent = started.duration(to: clock.now().monotonic)
        guard retry, let delay = backoff.delay(afterFailures: failures, spent: spent) else {
          shared.queue.withLock {
            $0.stats.failed += 1
            $0.stats.lastFailure = clock.now().wall
          }
          let why = retry ? "gave up after \(failures) attempts in \(DurationParsing.humanize(spent))" : "not retried"
          shared.logger.error(
            "notify \(name): could not deliver \(what) to \(describe): \(reason) (\(why)); the journal has the event itself",
            metadata: [
              "message_id": "\(MessageID.notifyFailed.rawValue)", "notify.target": "\(name)", "notify.event": "\(message.event.rawValue)",
            ])
          return
        }
        shared.logger.warning(
          "notify \(name): delivering \(what) to \(describe) failed: \(reason); trying again in \(DurationParsing.format(delay))",
          metadata: ["notify.target": "\(name)", "notify.event": "\(message.event.rawValue)"])
        do {
          try await clock.sleep(for: delay)
        } catch {
          return
        }
      }
    }
  }
}
