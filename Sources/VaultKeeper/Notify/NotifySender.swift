// SPDX-License-Identifier: Apache-2.0
/// Delivers one message to one target, once: a webhook POST (`CurlWebhookSender` in the Curl
/// adapter) or a command (`CommandNotifySender`). Retries, the queue and the journal are the
/// outbox's (`NotifyOutbox`).
public protocol NotifySender: Sendable {
  /// One attempt. Never blocks the cooperative pool: blocking work runs on a thread of its own.
  func send(_ message: AlertMessage) async -> DeliveryOutcome
  /// Ends what the sender holds (a transport's thread).
  func shutdown()
}

/// How one delivery attempt ended.
public enum DeliveryOutcome: Sendable, Equatable {
  /// Taken: `HTTP 204`, `exit 0`, with what the receiver said (for the journal).
  case delivered(String)
  /// Not taken; `retry` when trying again may help (the receiver was down, slow, or busy).
  case failed(String, retry: Bool)
}

/// A `command` target: argv without a shell, the message's JSON on stdin, a clean environment
/// with a few `VAULTKEEPER_*` variables, killed (with its process group) at the timeout.
public struct CommandNotifySender: NotifySender {
  public var argv: [String]
  public var timeout: Duration
  public var host: String

  public init(argv: [String], timeout: Duration, host: String) {
    self.argv = argv
    self.timeout = timeout
    self.host = host
  }

  /// The variables a command gets besides `PATH` and `LANG`.
  public static func environment(_ message: AlertMessage) -> [String] {
    var variables = [
      "VAULTKEEPER_EVENT=\(message.event.rawValue)", "VAULTKEEPER_STATUS=\(message.status.rawValue)",
      "VAULTKEEPER_SEVERITY=\(message.severity.rawValue)", "VAULTKEEPER_KEY=\(message.key)",
      "VAULTKEEPER_TITLE=\(message.title)",
    ]
    if let node = message.node { variables.append("VAULTKEEPER_NODE=\(node)") }
    return variables
  }

  public func send(_ message: AlertMessage) async -> DeliveryOutcome {
    let payload = AlertPayload.render(message, format: .json, host: host)
    let runner = CommandRunner(
      argv: argv, timeout: timeout, outputLimit: 4096, input: payload.body + [0x0A], extraEnvironment: Self.environment(message))
    let result = await runner.run()
    let output = result.output.trimmingWhitespace()
    let said = output.isEmpty ? "" : ": \(output)"
    switch result.termination {
    case .exited(0): return .delivered("exit 0\(said)")
    case .exited(let code): return .failed("exit \(code)\(said)", retry: true)
    case .signaled(let signal): return .failed("killed by signal \(signal)\(said)", retry: true)
    case .timedOut: return .failed("still running after \(DurationParsing.format(timeout)), killed\(said)", retry: true)
    case .couldNotStart(let reason): return .failed("cannot start \(argv.first ?? "the command"): \(reason)", retry: false)
    }
  }

  public func shutdown() {}
}
