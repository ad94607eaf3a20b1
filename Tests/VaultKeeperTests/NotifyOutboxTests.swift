// SPDX-License-Identifier: Apache-2.0
import Foundation
import Logging
import Synchronization
import Testing

@testable import VaultKeeper

/// A sender that answers from a script of outcomes and records what it was given; `hang` makes
/// each attempt wait until released (a receiver that accepts and never answers).
final class ScriptedSender: NotifySender {
  private let state = Mutex<(outcomes: [DeliveryOutcome], sent: [AlertMessage], shutdown: Bool)>(([], [], false))
  private let gate = Mutex<[CheckedContinuation<Void, Never>]>([])
  let hang: Bool

  init(_ outcomes: [DeliveryOutcome] = [], hang: Bool = false) {
    state.withLock { $0.outcomes = outcomes }
    self.hang = hang
  }

  var sent: [AlertMessage] { state.withLock { $0.sent } }
  var wasShutDown: Bool { state.withLock { $0.shutdown } }

  /// Lets every hanging attempt finish (delivered).
  func release() {
    for waiter in gate.withLock({ w in defer { w = [] }; return w }) { waiter.resume() }
  }

  func send(_ message: AlertMessage) async -> DeliveryOutcome {
    state.withLock { $0.sent.append(message) }
    if hang { await withCheckedContinuation { continuation in gate.withLock { $0.append(continuation) } } }
    return state.withLock { s in s.outcomes.isEmpty ? .delivered("HTTP 200") : s.outcomes.removeFirst() }
  }

  func shutdown() { state.withLock { $0.shutdown = true } }
}

extension RecordingLog {
  /// Each line as `level: message [message_id]`, to compare with what the journal would say.
  var texts: [String] { all.map { "\($0.level): \($0.message)\($0.id.map { " [\($0)]" } ?? "")" } }
}

@Suite struct NotifyOutboxTests {
  static func message(_ key: String, status: AlertStatus = .problem) -> AlertMessage {
    AlertMessage(key: key, event: .unreachable, status: status, severity: .critical, summary: "vault \(key) is unreachable", since: 1, time: 2)
  }


  @Test func backoffTable() {
    let backoff = DeliveryBackoff.standard
    let delays = (1...8).map { backoff.delay(afterFailures: $0, spent: .zero) }
    #expect(delays == [.seconds(5), .seconds(15), .seconds(30), .seconds(60), .seconds(120), .seconds(300), .seconds(300), .seconds(300)])
    #expect(backoff.delay(afterFailures: 6, spent: .seconds(299)) == .seconds(300))
    #expect(backoff.delay(afterFailures: 6, spent: .seconds(301)) == nil, "the wait would pass 10 minutes")
    #expect(backoff.delay(afterFailures: 0, spent: .zero) == nil)
  }

  /// The receiver is down for three attempts and then takes the message: retried at 5, 15 and
  /// 30 s (virtual), delivered once, each failure in the journal.
  @Test func retriesWithBackoffUntilDelivered() async {
    let clock = VirtualDutyClock(mode: .jumping)
    let start = clock.now()
    let sender = ScriptedSender([
      .failed("connect: refused", retry: true), .failed("HTTP 503", retry: true), .failed("timeout: 10s", retry: true),
    ])
    let logs = RecordingLog()
    let outbox = NotifyOutbox(name: "hook", sender: sender, capacity: 10, logger: logs.logger, clock: clock, describe: "https://h/…")
    outbox.enqueue(Self.message("a"))
    await outbox.finish()
    #expect(sender.sent.map(\.key) == ["a", "a", "a", "a"])
    #expect(clock.elapsed(since: start) == .seconds(50))
    #expect(outbox.stats.delivered == 1 && outbox.stats.failed == 0)
    #expect(logs.texts.filter { $0.hasPrefix("warning: notify hook: delivering problem a to https://h/… failed") }.count == 3)
    #expect(logs.texts.contains { $0.contains("trying again in 15s") })
    #expect(logs.texts.last == "info: notify hook: delivered problem a to https://h/… (HTTP 200) after 3 failed attempts")
  }

  @Test func givesUpAfterTheBudgetAndSaysSo() async {
    let clock = VirtualDutyClock(mode: .jumping)
    let start = clock.now()
    let sender = ScriptedSender(Array(repeating: .failed("HTTP 502", retry: true), count: 50))
    let logs = RecordingLog()
    let outbox = NotifyOutbox(name: "hook", sender: sender, capacity: 10, logger: logs.logger, clock: clock, describe: "https://h/…")
    outbox.enqueue(Self.message("a"))
    outbox.enqueue(Self.message("b"))
    await outbox.finish()
    // 5+15+30+60+120+300 = 530 s, then 830 > 600: given up after 7 attempts; then b the same way.
    #expect(sender.sent.map(\.key) == Array(repeating: "a", count: 7) + Array(repeating: "b", count: 7))
    #expect(clock.elapsed(since: start) == .seconds(1060))
    #expect(outbox.stats.failed == 2 && outbox.stats.delivered == 0)
    let error = logs.texts.first { $0.hasPrefix("error:") }
    #expect(error == "error: notify hook: could not deliver problem a to https://h/…: HTTP 502 (gave up after 7 attempts in 8m); the journal has the event itself [\(MessageID.notifyFailed.rawValue)]")
  }

  @Test func aRefusalIsNotRetried() async {
    let clock = VirtualDutyClock(mode: .jumping)
    let sender = ScriptedSender([.failed("HTTP 404: no such hook", retry: false)])
    let logs = RecordingLog()
    let outbox = NotifyOutbox(name: "hook", sender: sender, capacity: 10, logger: logs.logger, clock: clock, describe: "https://h/…")
    outbox.enqueue(Self.message("a"))
    await outbox.finish()
    #expect(sender.sent.count == 1 && outbox.stats.failed == 1)
    #expect(logs.texts.contains { $0.contains("HTTP 404: no such hook (not retried)") })
  }

  /// A receiver that hangs: `enqueue` still returns at once, the queue keeps the newest
  /// `capacity` messages, and the next one delivered says how many were dropped.
  @Test func aFullQueueDropsTheOldestAndSaysHowMany() async {
    let clock = VirtualDutyClock(mode: .jumping)
    let sender = ScriptedSender(hang: true)
    let logs = RecordingLog()
    let outbox = NotifyOutbox(name: "hook", sender: sender, capacity: 2, logger: logs.logger, clock: clock, describe: "https://h/…")
    outbox.enqueue(Self.message("first"))
    try? await eventually("the first message in flight") { sender.sent.count == 1 }
    for key in ["b", "c", "d", "e"] { outbox.enqueue(Self.message(key)) }  // never waits on the hanging receiver
    #expect(outbox.stats.dropped == 2)
    sender.release()
    try? await eventually("the queue drained") {
      sender.release()
      return outbox.stats.delivered == 3
    }
    #expect(sender.sent.map(\.key) == ["first", "d", "e"])
    #expect(sender.sent.map(\.droppedBefore) == [0, 2, 0])
    #expect(logs.texts.filter { $0.contains("its queue is full") }.count == 1, "said once per overflow")
    #expect(outbox.shutdown().isEmpty)
    outbox.closeSender()
    #expect(sender.wasShutDown)
  }
}

extension NotifyOutboxTests {
  /// Taking over from a larger queue (a reload lowered queue_size): what does not fit is
  /// dropped the way a full queue drops, counted and told.
  @Test func aSmallerSuccessorCountsWhatItDrops() async {
    let clock = VirtualDutyClock(mode: .jumping)
    let sender = ScriptedSender()
    var before = NotifyTargetStats(name: "hook")
    before.delivered = 4
    let outbox = NotifyOutbox(
      name: "hook", sender: sender, capacity: 2, logger: RecordingLog().logger, clock: clock, describe: "https://h/…", stats: before,
      pending: ["a", "b", "c"].map { Self.message($0) })
    await outbox.finish()
    #expect(sender.sent.map(\.key) == ["b", "c"])
    #expect(sender.sent.map(\.droppedBefore) == [1, 0])
    #expect(outbox.stats.dropped == 1 && outbox.stats.delivered == 6)
  }
}

@Suite struct AlertDispatcherTests {
  /// A reload that keeps a target's name keeps what it reported: no second problem message,
  /// and the resolution still comes. A target whose settings change gets a new sender.
  @Test func aReloadKeepsTheGate() async {
    let clock = VirtualDutyClock(mode: .jumping)
    let senders = Mutex<[String: [ScriptedSender]]>([:])
    let dispatcher = AlertDispatcher(logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }, clock: clock) { entry in
      let sender = ScriptedSender()
      senders.withLock { $0[entry.name, default: []].append(sender) }
      return sender
    }
    let policy = AlertGate.Policy(minFailures: 1, minDuration: .zero)
    let hook = NotifyConfig(name: "hook", target: .command(["/bin/true"]), policy: policy)
    await dispatcher.configure([hook], unsealEnabled: true)
    dispatcher.observe(AlertGateTests.report(.unreachable, check: 10))
    try? await eventually("the problem delivered") { senders.withLock { $0["hook"]?.first?.sent.count } == 1 }

    var stricter = hook
    stricter.policy.minDuration = .seconds(30)
    await dispatcher.configure([stricter], unsealEnabled: true)
    #expect(senders.withLock { $0["hook"]?.count } == 1, "a new policy is the gate's: same sender")

    var changed = stricter
    changed.policy = policy
    changed.timeout = .seconds(3)
    await dispatcher.configure([changed], unsealEnabled: true)
    #expect(senders.withLock { $0["hook"]?.count } == 2, "new settings, new sender")
    try? await eventually("the old sender let go") { senders.withLock { $0["hook"]?.first?.wasShutDown } == true }
    dispatcher.observe(AlertGateTests.report(.unreachable, check: 11))
    dispatcher.observe(AlertGateTests.report(.active, check: 12))
    try? await eventually("the resolution delivered") { senders.withLock { $0["hook"]?.last?.sent.count } == 1 }
    #expect(senders.withLock { $0["hook"]?.last?.sent.map(\.status) } == [.resolved])

    // Crashed goes to the targets that subscribe to it.
    let pager = NotifyConfig(name: "pager", target: .command(["/bin/true"]), policy: .init(events: [.crashed]))
    await dispatcher.configure([changed, pager], unsealEnabled: true)
    dispatcher.announce(.info(.crashed, severity: .warning, summary: "unclean stop", time: 20))
    try? await eventually("crashed delivered") { senders.withLock { $0["pager"]?.first?.sent.count } == 1 }
    #expect(senders.withLock { $0["hook"]?.last?.sent.count } == 2, "hook subscribes to crashed by default")
    #expect(dispatcher.stats.map(\.name) == ["hook", "pager"])
    await dispatcher.shutdown()
  }
}

extension AlertDispatcherTests {
  /// A reload that changes how a target delivers: the attempt in flight at a slow receiver is
  /// let finish (the receiver may have the message already); when it fails, the new sender
  /// gets the message, and the counts carry on.
  @Test func aReloadHandsOverWhatWasNotDelivered() async {
    let clock = VirtualDutyClock(mode: .jumping)
    let made = Mutex<[ScriptedSender]>([])
    let dispatcher = AlertDispatcher(logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }, clock: clock) { _ in
      made.withLock { senders in
        // The first one hangs, then fails (its timeout).
        let sender = senders.isEmpty ? ScriptedSender([.failed("timeout: 10s", retry: true)], hang: true) : ScriptedSender()
        senders.append(sender)
        return sender
      }
    }
    let hook = NotifyConfig(name: "hook", target: .command(["/bin/true"]), policy: .init(minFailures: 1, minDuration: .zero))
    await dispatcher.configure([hook], unsealEnabled: true)
    dispatcher.observe(AlertGateTests.report(.unreachable, check: 10))
    try? await eventually("the problem in flight at the hanging receiver") { made.withLock { $0.first?.sent.count } == 1 }
    var faster = hook
    faster.timeout = .seconds(2)
    await dispatcher.configure([faster], unsealEnabled: true)
    #expect(made.withLock { $0.count == 2 && $0[1].sent.isEmpty }, "not sent twice while the first attempt may still land")
    made.withLock { $0[0].release() }
    try? await eventually("the problem delivered by the new sender") { made.withLock { $0.count == 2 && $0[1].sent.count == 1 } }
    #expect(made.withLock { $0[1].sent.map(\.status) } == [.problem])
    try? await eventually("the old sender let go") { made.withLock { $0[0].wasShutDown } }
    try? await eventually("counted") { dispatcher.stats.first?.delivered == 1 }
    await dispatcher.shutdown()
  }
}

extension AlertDispatcherTests {
  /// The state file carries what was reported across a restart: the next dispatcher resolves
  /// it when it is gone, without reporting it again.
  @Test func openProblemsSurviveARestart() async throws {
    let directory = try ScratchDirectory()
    defer { directory.remove() }
    let file = NotifyStateFile(path: "\(directory.path)/notify-state.json")
    let hook = NotifyConfig(name: "hook", target: .command(["/bin/true"]), policy: .init(minFailures: 1, minDuration: .zero))
    let first = ScriptedSender()
    let before = AlertDispatcher(logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }, clock: VirtualDutyClock(mode: .jumping), stateFile: file) { _ in first }
    await before.configure([hook], unsealEnabled: true)
    before.observe(AlertGateTests.report(.unreachable, check: 10))
    try? await eventually("reported") { first.sent.count == 1 }
    #expect(await before.flushState(within: .seconds(60)))
    #expect(file.load()["hook"]?.map(\.key) == ["unreachable \(AlertGateTests.address)"])
    await before.shutdown()

    let second = ScriptedSender()
    let after = AlertDispatcher(logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }, clock: VirtualDutyClock(mode: .jumping), stateFile: file) { _ in second }
    await after.configure([hook], unsealEnabled: true)
    after.observe(AlertGateTests.report(.unreachable, check: 20))
    after.observe(AlertGateTests.report(.active, check: 21))
    try? await eventually("resolved") { second.sent.count == 1 }
    #expect(second.sent.map(\.status) == [.resolved])
    #expect(await after.flushState(within: .seconds(60)))
    #expect(file.load().isEmpty)
    await after.shutdown()
  }
}

@Suite struct CommandNotifySenderTests {
  static let message = AlertMessage(
    key: "sealed https://127.0.0.1:8200", event: .sealed, status: .problem, severity: .critical, summary: "vault is sealed",
    node: "https://127.0.0.1:8200", since: 1_800_000_000, time: 1_800_000_060)

  /// The JSON on stdin, the variables, and nothing else of ours in the environment.
  @Test func getsTheJSONOnStdinAndACleanEnvironment() async throws {
    let directory = try ScratchDirectory()
    defer { directory.remove() }
    let script = "cat > \(directory.path)/stdin; env > \(directory.path)/env; echo paged"
    let sender = CommandNotifySender(argv: ["/bin/sh", "-c", script], timeout: .seconds(60), host: "vault1")
    #expect(await sender.send(Self.message) == .delivered("exit 0: paged"))
    let stdin = try Data(contentsOf: URL(fileURLWithPath: "\(directory.path)/stdin"))
    let json = try #require(JSONSerialization.jsonObject(with: stdin) as? [String: Any])
    #expect(json["event"] as? String == "sealed" && json["host"] as? String == "vault1" && json["status"] as? String == "problem")
    let env = try String(contentsOfFile: "\(directory.path)/env", encoding: .utf8).split(separator: "\n").map(String.init)
    #expect(env.contains("VAULTKEEPER_EVENT=sealed") && env.contains("VAULTKEEPER_NODE=https://127.0.0.1:8200"))
    #expect(env.contains("PATH=/usr/sbin:/usr/bin:/sbin:/bin"))
    let names = Set(env.compactMap { $0.split(separator: "=", maxSplits: 1).first.map(String.init) })
    let allowed: Set = [
      "PATH", "LANG", "PWD", "SHLVL", "_", "VAULTKEEPER_EVENT", "VAULTKEEPER_STATUS", "VAULTKEEPER_SEVERITY", "VAULTKEEPER_KEY",
      "VAULTKEEPER_TITLE", "VAULTKEEPER_NODE",
    ]
    #expect(names.subtracting(allowed).isEmpty, "\(names.subtracting(allowed))")
  }

  @Test func failuresAreRetriedWithTheirOutput() async {
    let failing = CommandNotifySender(argv: ["/bin/sh", "-c", "echo no route to pager >&2; exit 3"], timeout: .seconds(60), host: "h")
    #expect(await failing.send(Self.message) == .failed("exit 3: no route to pager", retry: true))
    let missing = CommandNotifySender(argv: ["/nonexistent/page-me"], timeout: .seconds(60), host: "h")
    #expect(await missing.send(Self.message) == .failed("cannot start /nonexistent/page-me: No such file or directory", retry: false))
  }

  /// A command that outlives its timeout is killed with its process group (virtual time cannot
  /// stand in for a real child process: the bound is what is tested, not the speed).
  @Test func aHangingCommandIsKilled() async {
    let hanging = CommandNotifySender(argv: ["/bin/sh", "-c", "sleep 600"], timeout: .milliseconds(200), host: "h")
    #expect(await hanging.send(Self.message) == .failed("still running after 200ms, killed", retry: true))
  }
}

@Suite struct UncleanStopMarkerTests {
  @Test func aRunThatDidNotEndIsNoticed() throws {
    let directory = try ScratchDirectory()
    defer { directory.remove() }
    let marker = UncleanStopMarker(path: "\(directory.path)/running")
    let first = marker.begin(pid: 100)
    #expect(first.previous == nil && first.error == nil, "a first start")
    let second = marker.begin(pid: 200)
    #expect(second.previous == UncleanStopMarker.Previous(text: "pid 100"), "100 never stopped cleanly")
    marker.end()
    #expect(marker.begin(pid: 300).previous == nil, "200 stopped cleanly")
    #expect(UncleanStopMarker.path(environment: ["STATE_DIRECTORY": "/var/lib/vaultkeeper:/other"]) == "/var/lib/vaultkeeper/running")
    #expect(UncleanStopMarker.path(environment: [:]) == nil, "a run by hand has no marker")
    let unwritable = UncleanStopMarker(path: "/nonexistent/dir/running").begin(pid: 1)
    #expect(unwritable.previous == nil && unwritable.error != nil)
  }
}

/// A fresh directory for one test, removed with `remove()`.
struct ScratchDirectory {
  let path = NSTemporaryDirectory() + "vk-notify-\(UUID().uuidString)"

  init() throws {
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  }

  func remove() { try? FileManager.default.removeItem(atPath: path) }
}
