// SPDX-License-Identifier: Apache-2.0
import Logging
import Synchronization

/// Turns the daemon's report into notifications for every `[[notify]]` target.
///
/// The status board hands it each report it publishes (`observe`). Reading the problems out of
/// it (`AlertConditions`) and passing them through each target's `AlertGate` is a little pure
/// work under a lock; delivery is the targets' outboxes' business, so `observe` never waits for
/// a receiver.
///
/// It outlives configuration reloads: a target that keeps its name keeps its gate, so a reload
/// neither repeats a reported problem nor forgets to resolve it. With a state file, restarts
/// do not either: what each target was told and not yet resolved is kept there.
public final class AlertDispatcher: Sendable {
  /// Makes the sender for a target (the daemon's: a libcurl webhook or a command).
  public typealias MakeSender = @Sendable (NotifyConfig) -> any NotifySender

  private struct Target {
    var config: NotifyConfig
    var gate: AlertGate
    var outbox: NotifyOutbox
  }

  private struct State {
    var conditions: AlertConditions
    var targets: [Target] = []
    /// What the state file held at start, until each target has taken its part (first configure).
    var restored: [String: [OpenProblem]]?
    /// The open problems last handed to the state file's writer.
    var saved: [String: [OpenProblem]] = [:]
  }

  private let state: Mutex<State>
  private let logger: Logger
  private let clock: any DutyClock
  private let makeSender: MakeSender
  private let backoff: DeliveryBackoff
  private let stateFile: NotifyStateFile?
  /// Writes the state file from a thread of its own (the latest wins).
  private let saver: CoalescingOutbox<[String: [OpenProblem]]>?

  public init(
    logger: Logger, clock: any DutyClock, backoff: DeliveryBackoff = .standard, stateFile: NotifyStateFile? = nil,
    makeSender: @escaping MakeSender
  ) {
    self.state = Mutex(State(conditions: AlertConditions(unsealEnabled: true)))
    self.logger = logger
    self.clock = clock
    self.backoff = backoff
    self.makeSender = makeSender
    self.stateFile = stateFile
    let failing = Mutex(false)
    saver = stateFile.map { file in
      CoalescingOutbox(capacity: 1) { open in
        do throws(FileAccess.Failure) {
          try file.save(open)
          failing.withLock { $0 = false }
        } catch {
          if failing.withLock({ was in defer { was = true }; return !was }) {
            logger.warning("cannot record the open notification problems in \(file.path): \(error); after a restart they are reported again and not resolved")
          }
        }
      }
    }
  }

  /// How a target is named in the journal: its name and where it goes, never a webhook's path
  /// (often its secret).
  public static func describe(_ config: NotifyConfig) -> String {
    switch config.target {
    case .webhook(let webhook): "\(webhook.url.display)"
    case .command(let argv): argv.first ?? "the command"
    }
  }

  /// Sets the targets of a (new) configuration. A target that keeps its name keeps its gate (what
  /// it reported stays reported), and its outbox unless where or how it delivers changed; then
  /// the new outbox takes over what waits and the counts, and the old one finishes the attempt
  /// in flight, handing the message over if that attempt fails.
  public func configure(_ entries: [NotifyConfig], unsealEnabled: Bool) async {
    // The first time: what the previous run had reported and not resolved (a file read: off the pool).
    if let stateFile, state.withLock({ $0.restored == nil }) {
      let loaded = await OffPool.run { stateFile.load() }
      state.withLock { if $0.restored == nil { $0.restored = loaded } }
    }
    let now = clock.now()
    let removed = state.withLock { s -> [NotifyOutbox] in
      s.conditions.unsealEnabled = unsealEnabled
      var old = Dictionary(s.targets.map { ($0.config.name, $0) }, uniquingKeysWith: { first, _ in first })
      var next: [Target] = []
      for entry in entries {
        guard var kept = old.removeValue(forKey: entry.name) else {
          next.append(Target(config: entry, gate: AlertGate(policy: entry.policy), outbox: makeOutbox(entry)))
          continue
        }
        kept.gate.policy = entry.policy
        if kept.config.target != entry.target || kept.config.timeout != entry.timeout || kept.config.queueSize != entry.queueSize {
          let name = entry.name
          let pending = kept.outbox.retire(handingOverTo: { [weak self] message in self?.handOver(message, to: name) })
          kept.outbox = makeOutbox(entry, stats: kept.outbox.stats, pending: pending)
        }
        kept.config = entry
        next.append(kept)
      }
      s.targets = next
      if let restored = s.restored, !restored.isEmpty {
        for index in s.targets.indices {
          s.targets[index].gate.restore(restored[s.targets[index].config.name] ?? [], now: now)
        }
        s.restored = [:]
      }
      recordOpenProblems(&s)
      // Targets no longer configured: stopped; what they still had is not sent.
      for gone in old.values { gone.outbox.shutdown() }
      return old.values.map(\.outbox)
    }
    await Self.closeSenders(removed)
  }

  private func makeOutbox(_ entry: NotifyConfig, stats: NotifyTargetStats? = nil, pending: [AlertMessage] = []) -> NotifyOutbox {
    NotifyOutbox(
      name: entry.name, sender: makeSender(entry), capacity: entry.queueSize, logger: logger, clock: clock, backoff: backoff,
      describe: Self.describe(entry), stats: stats, pending: pending)
  }

  /// A webhook sender's transport may take seconds to let its thread go: off the pool, all at once.
  private static func closeSenders(_ outboxes: [NotifyOutbox]) async {
    await withTaskGroup(of: Void.self) { group in
      for outbox in outboxes { group.addTask { await OffPool.run { outbox.closeSender() } } }
    }
  }

  /// Looks at a report (the board calls this on each publish) and queues what it is worth.
  public func observe(_ report: DaemonReport) {
    let now = clock.now()
    // Decided under the lock, queued after it: a queue that overflows logs, and nothing that
    // may block (the journal socket) runs while the lock is held.
    let queued = state.withLock { s -> [(NotifyOutbox, AlertMessage)] in
      guard !s.targets.isEmpty else { return [] }
      let look = s.conditions.look(at: report, now: now.wall)
      var queued: [(NotifyOutbox, AlertMessage)] = []
      for index in s.targets.indices {
        for message in s.targets[index].gate.pass(look, now: now) { queued.append((s.targets[index].outbox, message)) }
      }
      // What is open changes only with a problem or a resolution sent.
      if queued.contains(where: { $0.1.status == .problem || $0.1.status == .resolved }) { recordOpenProblems(&s) }
      return queued
    }
    deliver(queued)
  }

  /// Hands what is open now to the state file's writer, when it changed.
  private func recordOpenProblems(_ s: inout State) {
    guard let saver else { return }
    var open: [String: [OpenProblem]] = [:]
    for target in s.targets {
      let problems = target.gate.reportedProblems
      if !problems.isEmpty { open[target.config.name] = problems }
    }
    guard open != s.saved else { return }
    s.saved = open
    saver.enqueue(open, coalescingKey: "open")
  }

  /// Waits until the state file holds what is open (at the stop, and in tests), at most `limit`.
  public func flushState(within limit: Duration) async -> Bool {
    await saver?.drain(within: limit) ?? true
  }

  /// A message a retired outbox could not deliver, for its successor (the target of the same
  /// name, if it is still configured).
  private func handOver(_ message: AlertMessage, to name: String) {
    let successor = state.withLock { s in s.targets.first { $0.config.name == name }?.outbox }
    successor?.enqueue(message)
  }

  /// Queues each message; one that meets an outbox a reload has just replaced goes to its
  /// successor (the target of the same name), if the target is still configured.
  private func deliver(_ queued: [(NotifyOutbox, AlertMessage)]) {
    for (outbox, message) in queued where !outbox.enqueue(message) { handOver(message, to: outbox.name) }
  }

  /// Sends a single event (`crashed`) to every target subscribed to it.
  public func announce(_ message: AlertMessage) {
    let outboxes = state.withLock { s in s.targets.filter { $0.config.policy.events.contains(message.event) }.map(\.outbox) }
    deliver(outboxes.map { ($0, message) })
  }

  public var stats: [NotifyTargetStats] { state.withLock { $0.targets.map(\.outbox.stats) } }

  /// Stops every outbox (at the daemon's stop): what is queued is not sent; the journal has it.
  public func shutdown() async {
    let outboxes = state.withLock { s -> [NotifyOutbox] in
      defer { s.targets = [] }
      return s.targets.map(\.outbox)
    }
    for outbox in outboxes { outbox.shutdown() }
    await Self.closeSenders(outboxes)
  }
}
