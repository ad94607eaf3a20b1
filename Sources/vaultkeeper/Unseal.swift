// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Logging
import Platform
import Systemd
import VaultKeeper

/// `vaultkeeper unseal`: unseal now, once. The operator's override after a deliberate seal.
struct Unseal: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Unseal the configured nodes once, even if they were sealed deliberately.",
    discussion: "Exit 0 when every node ends up unsealed (or was), 69 when a node could not be unsealed, 77/78 for key file and configuration errors.")

  @OptionGroup var config: ConfigOption

  @Option(help: ArgumentHelp("Only this node (its address as written in the configuration).", valueName: "address"))
  var node: String?

  func run() async throws {
    ProcessHardening.apply()
    let output = JournalOutput.detect()
    LoggingSystem.bootstrap { label in JournalLogHandler(label: label, output: output) }
    let logger = Logger(label: "vaultkeeper")
    let generation: Generation
    do {
      generation = try Generation.load(path: config.path, environment: ProcessEnvironment.current())
    } catch let error as ConfigError {
      printError("vaultkeeper unseal: \(error)")
      throw Exit.forConfigError(error)
    } catch let error as KeyLoadError {
      printError("vaultkeeper unseal: \(error)")
      throw Exit.forKeyError(error)
    }
    guard let keys = generation.keys else {
      printError("vaultkeeper unseal: no unseal keys configured (set unseal.key_file or unseal.credential)")
      throw Exit.config
    }
    let nodes = generation.config.nodes.filter { node == nil || $0.name == node }
    guard !nodes.isEmpty else {
      printError("vaultkeeper unseal: no configured node has the address \(node ?? "")")
      throw Exit.usage
    }
    var config = generation.config
    config.vault = nodes[0]
    config.peers = Array(nodes.dropFirst())
    let failed = await OneShot.withClients(config) { clients in
      var failed = 0
      for (node, client) in clients {
        let context = NodeSupervisor.Context(
          node: node, health: config.health, unseal: config.unseal, keys: keys, client: client,
          board: StatusBoard(configPath: config.sourcePath, notifier: NoNotifier(), stateFile: nil, metricsDirectory: nil, logger: logger),
          heartbeats: Heartbeats(), doorbell: Doorbell(), unitView: UnitView(), logger: logger)
        let result = await NodeSupervisor(context: context, memory: nil).checkOnce(unseal: true)
        print("\(node.name): \(result.before.state.name) → \(result.after.state.name)")
        if result.after.state == .sealed || result.after.state.isFailure { failed += 1 }
      }
      return failed
    }
    if failed > 0 { throw Exit.unavailable }
  }
}

struct NoNotifier: ServiceManagerNotifier {
  func send(_ assignments: [String]) {}
  var watchdogTimeout: Duration? { nil }
}
