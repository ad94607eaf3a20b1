// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Platform
import Systemd
import VaultKeeper

#if canImport(Glibc)
import Glibc
#endif

struct ConfigCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "config", abstract: "Configuration tools.", subcommands: [ConfigCheck.self])
}

/// `vaultkeeper config check`: validate like `nginx -t`, print the effective configuration.
struct ConfigCheck: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "check",
    abstract: "Validate the configuration and key file; print the effective configuration (secrets redacted).",
    discussion: """
      Exit 0 valid, 78 configuration error, 77 key file insecure or unreadable (or the configuration, a ca_file or \
      age_recipients_file writable by others), 65 key file content invalid.
      """)

  @OptionGroup var config: ConfigOption

  func run() async throws {
    let loaded = try config.load()
    print(EffectiveConfig.render(loaded))
    if loaded.unseal.enabled, let source = loaded.unseal.keySource {
      ProcessHardening.apply()  // key shares are about to be read into this process
      let environment = ProcessEnvironment.current()
      if case .credential(let name) = source, environment["CREDENTIALS_DIRECTORY"] == nil {
        print("# unseal.credential \"\(name)\" is read from $CREDENTIALS_DIRECTORY when the unit runs; not checked here")
      } else {
        do {
          let keys = try KeyShareLoader.load(source: source, environment: environment)
          print("# \(keys.origin): \(keys.count) unseal key share\(keys.count == 1 ? "" : "s") (\(keys.format.rawValue))"
            + (keys.declaredThreshold.map { ", threshold \($0)" } ?? ""))
        } catch {
          printError("\(config.path): unseal: \(error)")
          throw Exit.forKeyError(error)
        }
      }
    }
    printError("configuration \(config.path) is valid")
  }
}
