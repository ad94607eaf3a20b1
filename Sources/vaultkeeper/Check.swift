import ArgumentParser
import VaultKeeper

/// `vaultkeeper check`: a Monitoring Plugins (Nagios/Icinga) check.
struct Check: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Check every configured node once; Monitoring Plugins output and exit codes.",
    discussion: """
      Prints one status line with performance data, then one line per node. Exit 0 OK, \
      1 WARNING, 2 CRITICAL, 3 UNKNOWN (configuration error). The worst node decides. \
      State names: active, standby, perf-standby, dr-secondary, standby-unhealthy, sealed, \
      uninitialized, removed, unreachable, protocol-error.
      """)

  @OptionGroup var config: ConfigOption

  @Option(name: .customLong("ok"), help: ArgumentHelp("States that count as OK (comma-separated).", valueName: "states"))
  var okStates: String = "active,standby,perf-standby,dr-secondary"

  @Option(name: .customLong("warning"), help: ArgumentHelp("States that count as WARNING; any other state is CRITICAL.", valueName: "states"))
  var warningStates: String = "standby-unhealthy,uninitialized"

  @Option(help: ArgumentHelp("Latency (seconds) above which a node is WARNING.", valueName: "seconds"))
  var warnLatency: Double = 1

  @Option(help: ArgumentHelp("Latency (seconds) above which a node is CRITICAL.", valueName: "seconds"))
  var critLatency: Double = 3

  func run() async throws {
    // Monitoring Plugins report bad arguments as UNKNOWN (3), not as a usage error.
    let known = Set(MetricsText.states)
    for name in (okStates + "," + warningStates).split(separator: ",") where !known.contains(String(name)) {
      print("VAULT UNKNOWN: unknown state \"\(name)\" (known: \(MetricsText.states.joined(separator: ", ")))")
      throw ExitCode(3)
    }
    let loaded: Config
    do {
      loaded = try ConfigLoader().load(path: config.path)
    } catch {
      print("VAULT UNKNOWN: \(error)")
      throw ExitCode(3)
    }
    let ok = Set(okStates.split(separator: ",").map(String.init))
    let warning = Set(warningStates.split(separator: ",").map(String.init))
    let results = await OneShot.withClients(loaded) { clients in
      var results: [(NodeConfig, HealthObservation)] = []
      for (node, client) in clients { results.append((node, await client.health())) }
      return results
    }
    let outcome = CheckVerdict.evaluate(
      results.map { ($0.0.name, $0.1) }, ok: ok, warning: warning, warnLatency: warnLatency, critLatency: critLatency)
    print(outcome.text)
    throw ExitCode(Int32(outcome.code))
  }
}
