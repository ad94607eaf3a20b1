// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import VaultKeeper

/// `vaultkeeper`: keeps a Vault / OpenBao node available, recoverable and trusted.
@main
struct VaultKeeperCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "vaultkeeper",
    abstract: "Watch HashiCorp Vault / OpenBao health and unseal it, as a systemd notify daemon.",
    discussion: """
      Exit codes: 0 ok, 64 usage, 65 bad key file content, 69 Vault unavailable (one-shot commands), \
      70 internal error, 77 key file insecure or unreadable, or a configuration, ca_file or age_recipients_file that \
      others may write, 78 configuration error. \
      `check` uses the Monitoring Plugins codes 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. \
      See docs/operations.md.
      """,
    version: VaultKeeperVersion.string,
    subcommands: [Run.self, Check.self, Status.self, Unseal.self, SnapshotCommand.self, CertCommand.self, NotifyCommand.self, ConfigCommand.self, ExecDyingWithParent.self],
    defaultSubcommand: Run.self
  )
}

/// The configuration file option shared by every command.
struct ConfigOption: ParsableArguments {
  @Option(name: .customLong("config"), help: ArgumentHelp("Configuration file.", valueName: "path"))
  var path: String = ConfigLoader.defaultPath

  /// Loads and validates the file; a mistake is printed (file:line: key: message) and exits 78,
  /// a file others may write (the configuration, a ca_file, age_recipients_file) 77.
  func load() throws -> Config {
    do {
      return try ConfigLoader().load(path: path)
    } catch {
      printError("\(error)")
      throw Exit.forConfigError(error)
    }
  }

  /// The `[snapshot]` table, required by the snapshot commands.
  func loadWithSnapshot() throws -> (Config, SnapshotConfig) {
    let loaded = try load()
    guard let snapshot = loaded.snapshot else {
      printError("\(path): snapshot: no [snapshot] table (directory and credentials are configured there)")
      throw Exit.config
    }
    return (loaded, snapshot)
  }
}

/// sysexits(3) codes used across commands.
enum Exit {
  static let usage = ExitCode(64)
  static let dataError = ExitCode(65)
  static let unavailable = ExitCode(69)
  static let software = ExitCode(70)
  static let noPermission = ExitCode(77)
  static let config = ExitCode(78)

  /// 77 for a file others may write (like an insecure key file), 78 for everything else.
  static func forConfigError(_ error: ConfigError) -> ExitCode { error.insecure ? noPermission : config }

  static func forKeyError(_ error: KeyLoadError) -> ExitCode {
    switch error.kind {
    case .insecure, .unreadable: return noPermission
    case .invalid: return dataError
    }
  }
}
