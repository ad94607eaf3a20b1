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
  private let continuation: AsyncStream<AlertMessage>.Continuation
  private let task: Task<Void, Never>
  private let sender: any NotifySender
  private let shared: Shared

  private final class Shared: Sendable {
    let stats: Mutex<NotifyTargetStats>
    /// Dropped since the last message taken from the queue (told in the next one).
    let droppedSinceTaken = Mutex(0)
    let logger: Logger
    init(name: String, logger: Logger) {
      stats = Mutex(NotifyTargetStats(name: name))
      self.logger = logger
    }
  }

  public init(
    name: String, sender: any NotifySender, capacity: Int, logger: Logger, clock: any DutyClock, backoff: DeliveryBackoff = .standard,
    describe: String
  ) {
    self.name = name
    self.sender = sender
    let shared = Shared(name: name, logger: logger)
    self.shared = shared
    let (stream, continuation) = AsyncStream.makeStream(of: AlertMessage.self, bufferingPolicy: .bufferingNewest(max(capacity, 1)))
    self.continuation = continuation
    task = Task {
      for await var message in stream {
        message.droppedBefore = shared.droppedSinceTaken.withLock { count in
          defer { count = 0 }
          return count
        }
        await Self.deliver(message, name: name, describe: describe, sender: sender, shared: shared, clock: clock, backoff: backoff)
      }
    }
  }

  /// Queues `message` and returns at once.
  public func enqueue(_ message: AlertMessage) {
    if case .dropped = continuation.yield(message) {
      let first = shared.droppedSinceTaken.withLock { count in
        count += 1
        return count == 1
      }
      shared.stats.withLock { $0.dropped += 1 }
      if first {
        shared.logger.warning(
          "notify \(name): its queue is full (the receiver is slow or down); the oldest message was dropped, and the next one delivered says how many were",
          metadata: ["message_id": "\(MessageID.notifyFailed.rawValue)", "notify.target": "\(name)"])
      }
    }
  }

  public var stats: NotifyTargetStats { shared.stats.withLock { $0 } }

  /// Stops taking messages, cancels the one in flight, and ends the sender.
  public func shutdown() {
    continuation.finish()
    task.cancel()
    sender.shutdown()
  }

  /// Waits until the queue is empty and the last message handled (tests, `notify test`).
  public func finish() async {
    continuation.finish()
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
      switch outcome {
      case .delivered(let detail):
        shared.stats.withLock {
          $0.delivered += 1
          $0.lastDelivered = clock.now().wall
        }
        shared.logger.info(
          "notify \(name): delivered \(what) to \(describe) (\(detail))\(failures > 0 ? " after \(failures) failed attempt\(failures == 1 ? "" : "s")" : "")",
          metadata: ["notify.target": "\(name)", "notify.event": "\(message.event.rawValue)"])
        return
      case .failed(let reason, let retry):
        failures += 1
        let spent = started.duration(to: clock.now().monotonic)
        guard retry, let delay = backoff.delay(afterFailures: failures, spent: spent) else {
          shared.stats.withLock {
            $0.failed += 1
            $0.lastFailure = clock.now().wall
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
