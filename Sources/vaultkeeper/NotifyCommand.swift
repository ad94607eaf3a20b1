// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Curl
import Logging
import Systemd
import VaultKeeper

#if canImport(Glibc)
import Glibc
#endif

/// `vaultkeeper notify …`: the `[[notify]]` targets.
struct NotifyCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "notify", abstract: "Notification targets ([[notify]]).", subcommands: [NotifyTest.self])
}

/// `vaultkeeper notify test`: one test message to every target, now, without retries.
struct NotifyTest: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "test",
    abstract: "Send a test message to every [[notify]] target and say which ones took it.",
    discussion: """
      Each target gets one message (event "test", severity info) at once, whatever its events and min_severity, \
      with the same request or command the daemon would make: a webhook is POSTed with TLS verified (against its ca_file \
      alone when one is set) and its headers file read; a command gets the JSON on stdin. There are no retries: \
      a failure is printed with its reason. Run it as the daemon's user to test what the daemon can do \
      (sudo -u vaultkeeper vaultkeeper notify test). Exit 0 when every target took it, 1 when one did not \
      (each failed target is named), 78 configuration error or no [[notify]] table.
      """)

  @OptionGroup var config: ConfigOption

  func run() async throws {
    let loaded = try config.load()
    guard !loaded.notify.isEmpty else {
      printError("\(config.path): notify: no [[notify]] target configured")
      throw Exit.config
    }
    let environment = ProcessEnvironment.current()
    let host = NotifySenders.hostName()
    let message = AlertMessage.info(
      .test, severity: .info, summary: "test message from vaultkeeper on \(host) (vaultkeeper notify test)", time: SystemNodeClock().now().wall)
    // All at once: a target that hangs until its timeout does not hold up the others' answers.
    let results = await withTaskGroup(of: (Int, DeliveryOutcome).self) { group in
      for (index, entry) in loaded.notify.enumerated() {
        group.addTask {
          let sender = NotifySenders.make(entry, host: host, environment: environment)
          let outcome = await sender.send(message)
          sender.shutdown()
          return (index, outcome)
        }
      }
      var collected: [(Int, DeliveryOutcome)] = []
      for await result in group { collected.append(result) }
      return collected.sorted { $0.0 < $1.0 }
    }
    var failed: [String] = []
    for (index, outcome) in results {
      let entry = loaded.notify[index]
      let target = "\(entry.name) (\(AlertDispatcher.describe(entry)))"
      switch outcome {
      case .delivered(let detail): print("ok      \(target): \(detail)")
      case .failed(let reason, _):
        print("FAILED  \(target): \(reason)")
        failed.append(entry.name)
      }
    }
    if !failed.isEmpty {
      printError("vaultkeeper notify test: not delivered to \(failed.joined(separator: ", "))")
      throw ExitCode(1)
    }
  }
}

/// Makes the sender for a `[[notify]]` entry: the daemon's and `notify test`'s.
enum NotifySenders {
  static func make(_ entry: NotifyConfig, host: String, environment: [String: String]) -> any NotifySender {
    switch entry.target {
    case .webhook(let webhook):
      return CurlWebhookSender(webhook: webhook, timeout: entry.timeout, host: host, environment: environment, name: entry.name)
    case .command(let argv):
      return CommandNotifySender(argv: argv, timeout: entry.timeout, host: host)
    }
  }

  /// This machine's name, for the messages.
  static func hostName() -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
    let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return name.isEmpty ? "localhost" : name
  }
}
