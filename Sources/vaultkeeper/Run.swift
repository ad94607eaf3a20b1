// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Compression
import Curl
import Logging
import ServiceLifecycle
import Platform
import Systemd
import UnixSignals
import VaultKeeper

#if canImport(Glibc)
import Glibc
#endif

struct Run: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Run the daemon (what the systemd unit starts).",
    discussion: """
      Sends READY=1 once the configuration and key shares are valid and every node's first \
      health result is known; STATUS= on every change; WATCHDOG=1 while duties make progress. \
      SIGHUP reloads the configuration (a bad one is rejected and the running one kept); \
      SIGTERM stops gracefully.
      """)

  @OptionGroup var config: ConfigOption

  @Option(help: ArgumentHelp("Where to write the state file read by `vaultkeeper status` (default: $RUNTIME_DIRECTORY/state.json, else /run/vaultkeeper/state.json).", valueName: "path"))
  var stateFile: String?

  @Flag(help: "Send log entries to the journal natively even when stderr is not connected to it.")
  var journal = false

  func run() async throws {
    ProcessHardening.apply()
    ProcessHardening.limitMallocArenas()
    let output = JournalOutput.detect(forceNative: journal)
    LoggingSystem.bootstrap { label in JournalLogHandler(label: label, output: output) }
    let logger = Logger(label: "vaultkeeper")
    let environment = ProcessEnvironment.current()

    let generation: Generation
    do {
      generation = try Generation.load(path: config.path, environment: environment)
    } catch let error as ConfigError {
      logger.critical("configuration error: \(error)", metadata: ["message_id": "\(MessageID.configRejected.rawValue)"])
      throw Exit.forConfigError(error)
    } catch let error as KeyLoadError {
      logger.critical("unseal keys: \(error)")
      throw Exit.forKeyError(error)
    }

    let notifier = SystemdNotifier()
    let daemon = Daemon(
      configPath: config.path, initial: generation,
      environment: DaemonEnvironment(
        notifier: notifier,
        makeTransport: { node in CurlTransport(settings: .init(node: node), name: "curl \(node.name)") },
        makeDecompressor: { () throws(SnapshotVerificationError) in try GzipInflater() },
        makeObjectTransport: { CurlObjectTransport(config: $0, credentials: $1) },
        makeReloader: { certificate in
          switch certificate.reload {
          case .systemd(let unit): return SystemdUnitReloader(unit: unit, jobTimeout: certificate.reloadTimeout)
          case .signal(let unit): return SignalUnitReloader(unit: unit)
          case .command(let argv): return CommandReloader(runner: CommandRunner(argv: argv, timeout: certificate.reloadTimeout))
          }
        },
        makeServedSource: { CurlServedCertificateSource(node: $0) },
        unitWatcher: BusUnitWatcher(), environment: environment, stateFile: stateFilePath(environment),
        makeNotifySender: { [host = NotifySenders.hostName()] entry in NotifySenders.make(entry, host: host, environment: environment) }),
      logger: logger)
    let group = ServiceGroup(
      configuration: ServiceGroupConfiguration(
        services: [.init(service: daemon)], gracefulShutdownSignals: [.sigterm, .sigint], logger: Logger(label: "vaultkeeper.lifecycle")))
    do {
      try await group.run()
    } catch {
      logger.critical("stopped on an internal error: \(error)")
      throw Exit.software
    }
  }

  private func stateFilePath(_ environment: [String: String]) -> String? {
    if let stateFile { return stateFile }
    if let runtime = environment["RUNTIME_DIRECTORY"]?.split(separator: ":").first { return "\(runtime)/state.json" }
    return FileAccess.isDirectory(path: "/run/vaultkeeper") ? "/run/vaultkeeper/state.json" : nil
  }
}

enum ProcessEnvironment {
  static func current() -> [String: String] {
    var result: [String: String] = [:]
    var pointer = environ
    while let entry = pointer.pointee {
      let text = String(cString: entry)
      if let equals = text.firstIndex(of: "=") { result[String(text[..<equals])] = String(text[text.index(after: equals)...]) }
      pointer += 1
    }
    return result
  }
}
