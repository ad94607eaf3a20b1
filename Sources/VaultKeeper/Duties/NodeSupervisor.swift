// SPDX-License-Identifier: Apache-2.0
import Logging
import ServiceLifecycle
import Synchronization

/// Watches one Vault node and unseals it: the health duty and the unseal duty for that node,
/// in one loop so the two never race each other over the same node.
///
/// This is the I/O half: it reads the clock, asks Vault, writes the journal, posts to the board
/// and sleeps on the doorbell. Every decision (failure accounting, the reconnect window, whether
/// and why to unseal, backoff and holds, what to log once) is `NodeDecider`'s, fed what the loop
/// saw.
public final class NodeSupervisor: Sendable {
  public struct Context: Sendable {
    public var node: NodeConfig
    public var health: HealthConfig
    public var unseal: UnsealConfig
    public var keys: KeyShares?
    public var client: VaultClient
    public var board: StatusBoard
    public var heartbeats: Heartbeats
    public var doorbell: Doorbell
    public var unitView: UnitView
    public var logger: Logger

    public init(node: NodeConfig, health: HealthConfig, unseal: UnsealConfig, keys: KeyShares?, client: VaultClient, board: StatusBoard,
      heartbeats: Heartbeats, doorbell: Doorbell, unitView: UnitView, logger: Logger)
    {
      self.node = node
      self.health = health
      self.unseal = unseal
      self.keys = keys
      self.client = client
      self.board = board
      self.heartbeats = heartbeats
      self.doorbell = doorbell
      self.unitView = unitView
      self.logger = logger
    }
  }

  let context: Context
  let clock: any NodeClock
  /// The node's decisions: advanced by `run()`'s task (or `checkOnce`), and given restart
  /// evidence by the hooks other tasks call (`connectionLost()`, `unitMainPIDChanged()`); the
  /// Mutex keeps each of those updates whole.
  private let decider: Mutex<NodeDecider>

  /// `memory`: what this node's previous duty left on the board (a reload), nil at start-up.
  public convenience init(context: Context, memory: NodeMemory?) {
    self.init(context: context, memory: memory, clock: SystemNodeClock())
  }

  init(context: Context, memory: NodeMemory?, clock: any NodeClock) {
    self.context = context
    self.clock = clock
    let settings = NodeDecider.Settings(node: context.node.name, health: context.health, unseal: context.unseal, keys: context.keys)
    decider = Mutex(NodeDecider(settings: settings, memory: memory, now: clock.now()))
  }

  private var heartbeatName: String { "node \(context.node.name)" }
  private static let slack = Duration.seconds(5)

  /// Loops until cancelled or, under ServiceLifecycle, until graceful shutdown: then the pass
  /// in hand finishes (an unseal is not left half-submitted) and the idle wait ends at once.
  public func run() async {
    let heartbeatName = heartbeatName
    defer { context.heartbeats.retire(heartbeatName) }
    await withGracefulShutdownHandler {
      while !Task.isCancelled, !Task.isShuttingDownGracefully {
        context.heartbeats.promise(heartbeatName, within: context.node.timeout * 2 + Self.slack)
        guard let end = await cycle(jitter: Double.random(in: 0...1)) else { break }
        guard case .report(let report, let memory, let delay) = end else { continue }
        await context.board.post(report, memory: memory)
        if Task.isShuttingDownGracefully { break }
        context.heartbeats.promise(heartbeatName, within: delay + Self.slack)
        await context.doorbell.wait(for: delay)
      }
    } onGracefulShutdown: { [doorbell = context.doorbell] in
      doorbell.ring()
    }
  }

  /// One pass: look at the node, deal with a seal, say what to report and how long to wait.
  /// Nil when the task was cancelled during the health request.
  func cycle(jitter: Double) async -> NodeDecider.CycleEnd? {
    let observation = await context.client.health()
    if Task.isCancelled { return nil }
    let pid = context.unitView.mainPID
    let answer = decider.withLock { [now = clock.now()] in $0.healthAnswered(observation, at: now) }
    write(answer.journal)
    if answer.checkShareCount {
      let status = try? await context.client.sealStatus()
      write(decider.withLock { $0.shareCountRead(status) })
    }
    if observation.state == .sealed {
      context.heartbeats.promise(heartbeatName, within: context.node.timeout * Double(max(context.keys?.count ?? 0, 1) * 2 + 4) + Self.slack)
    }
    let outcome: UnsealOutcome
    switch decider.withLock({ [now = clock.now()] in $0.judgeSeal(observation, mainPID: pid, at: now) }) {
    case .notSealed:
      outcome = .undecided
    case .waitOnOperator(let journal):
      write(journal)
      outcome = .waitingOnOperator
    case .unseal(let request):
      outcome = await performUnseal(request)
    }
    return decider.withLock { [now = clock.now()] in $0.cycleEnded(observation, mainPID: pid, outcome: outcome, at: now, jitter: jitter) }
  }

  /// One look and, when `unseal` is set and the node is sealed, one unseal regardless of how it
  /// got sealed (the operator's override for a deliberate seal). Used by `vaultkeeper unseal`.
  public func checkOnce(unseal: Bool) async -> (before: HealthObservation, after: HealthObservation, unsealed: Bool) {
    let first = await context.client.health()
    guard unseal, first.state == .sealed, context.keys != nil else { return (first, first, false) }
    let outcome = await performUnseal(NodeDecider.UnsealRequest(reason: "requested by `vaultkeeper unseal`", evidence: nil, mainPID: 0))
    return (first, await context.client.health(), outcome == .unsealed)
  }

  /// The server closed our kept-alive connection (a Vault restart does that): evidence for the
  /// seal judgement, and a reason to look now.
  public func connectionLost() {
    decider.withLock { $0.notice(.connectionClosed) }
    context.doorbell.ring()
  }

  /// systemd reports another main PID for the Vault unit: evidence of a new process, look now.
  public func unitMainPIDChanged() {
    decider.withLock { $0.notice(.newMainPID) }
    context.doorbell.ring()
  }

  /// Performs the unseal sequence the decider steps through: seal status, then shares (or a
  /// reset) one request at a time, each answer fed back.
  private func performUnseal(_ request: NodeDecider.UnsealRequest) async -> UnsealOutcome {
    guard let keys = context.keys else { return .waitingOnOperator }
    decider.withLock { [now = clock.now()] in $0.unsealStarted(request, at: now) }
    let status: Result<SealStatus, VaultError>
    do throws(VaultError) { status = .success(try await context.client.sealStatus()) } catch { status = .failure(error) }
    var step = decider.withLock { $0.sealStatusRead(status) }
    while true {
      write(step.journal)
      switch step.command {
      case .finished(let outcome):
        return outcome
      case .proceed:
        if Task.isCancelled { return decider.withLock { $0.unsealAbandoned() } }
        step = decider.withLock { [now = clock.now()] in $0.nextUnsealStep(at: now) }
      case .reset:
        let answer: Result<SealStatus, VaultError>
        do throws(VaultError) { answer = .success(try await context.client.resetUnseal()) } catch { answer = .failure(error) }
        step = decider.withLock { $0.resetAnswered(answer) }
      case .submit(let index):
        let answer: Result<UnsealAnswer, VaultError>
        do throws(VaultError) { answer = .success(try await context.client.submit(share: keys.shares[index])) } catch { answer = .failure(error) }
        step = decider.withLock { [now = clock.now()] in $0.shareAnswered(answer, at: now) }
      }
    }
  }

  private func write(_ journal: [JournalEntry]) {
    for entry in journal {
      var metadata: Logger.Metadata = ["vault.addr": "\(context.node.name)"]
      if let id = entry.id { metadata["message_id"] = "\(id.rawValue)" }
      for (name, value) in entry.fields { metadata[name] = "\(value)" }
      context.logger.log(level: entry.level, "\(entry.message)", metadata: metadata)
    }
  }
}
