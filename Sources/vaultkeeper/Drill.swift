// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Compression
import Curl
import Logging
import Platform
import Systemd
import UnixSignals
import VaultKeeper

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
#endif

/// `vaultkeeper snapshot drill [FILE]`: restores a snapshot into a throwaway server and unseals
/// it with the shares vaultkeeper holds (issue #12).
struct SnapshotDrill: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "drill",
    abstract: "Restore drill: restore a snapshot into a throwaway server and unseal it with the shares vaultkeeper holds.",
    discussion: """
      FILE defaults to the newest snapshot in [snapshot] directory. The snapshot is verified (an age-encrypted one is \
      decrypted with --identity), then restored with snapshot-force into a throwaway server ([snapshot.drill] binary, \
      else the binary [vault] unit's ExecStart runs as "... server", else bao or vault on PATH) that listens on a Unix socket in a fresh 0700 directory under the state directory; \
      that server is restarted and unsealed with the configured unseal key shares. The drill passes when it is then \
      active with a Raft applied index at least the snapshot's, and, with AppRole snapshot credentials, when they log in. \
      The server and its directory are removed however the drill ends ([snapshot.drill] timeout, SIGTERM, Ctrl-C). \
      Production is never contacted. Exit 0 passed, 1 failed (the stage and the reason are printed and journaled), \
      77/65 unusable key, credential or identity file, 78 configuration error.
      """)

  @OptionGroup var config: ConfigOption

  @Option(help: ArgumentHelp("age identity file to decrypt an encrypted snapshot (.snap.age).", valueName: "file"))
  var identity: String?

  @Argument(help: ArgumentHelp("The snapshot file (.snap, or .snap.age with --identity); default: the newest in [snapshot] directory.", valueName: "file"))
  var file: String?

  func run() async throws {
    ProcessHardening.apply()  // unseal key shares are about to be read into this process
    let output = JournalOutput.detect()
    LoggingSystem.bootstrap { label in JournalLogHandler(label: label, output: output) }
    let logger = Logger(label: "vaultkeeper")
    let (loaded, snapshot) = try config.loadWithSnapshot()
    let drillConfig = snapshot.drill ?? SnapshotDrillConfig()
    let environment = ProcessEnvironment.current()
    guard loaded.unseal.enabled, let source = loaded.unseal.keySource else {
      printError("vaultkeeper snapshot drill: no unseal key shares configured ([unseal] key_file or credential): a drill proves they open the snapshot")
      throw Exit.config
    }
    let shares: KeyShares
    do {
      shares = try KeyShareLoader.load(source: source, environment: environment)
    } catch {
      printError("vaultkeeper snapshot drill: \(error)")
      throw Exit.forKeyError(error)
    }
    // Checked now for the exit code; read again where they are used (identities stay on one thread).
    _ = try SnapshotVerify.loadIdentities(identity, command: "snapshot drill")
    let login = try Self.login(snapshot.auth, environment: environment)
    guard let path = file ?? Self.newest(snapshot) else {
      print("no snapshot in \(snapshot.directory) to drill")
      throw ExitCode(1)
    }
    let stateDirectory = DrillLedger.directory(of: SnapshotLedger.path(config: snapshot, environment: environment))
    print("restore drill of \(path)")

    let outcome: Result<DrillReport, DrillFailure>
    let unit = DrillBinary.ask(BusUnitWatcher(), unit: loaded.vault.unit)
    switch DrillBinary.resolve(configured: drillConfig.binary, unit: unit, searchPath: environment["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin") {
    case .failure(let failure):
      outcome = .failure(failure)
    case .success(let binary):
      print("  server binary: \(binary.description)")
      let drill = RestoreDrill(
        binary: binary, stateDirectory: stateDirectory, timeout: drillConfig.timeout, shares: shares,
        login: login, makeTransport: { CurlTransport(settings: .init(node: $0, bodyLimit: 1 << 20), name: "drill") })
      let snapshotSource = VerifiedSnapshotCopy(
        path: path, identityFile: identity, makeDecompressor: { () throws(SnapshotVerificationError) in try GzipInflater() })
      // SIGTERM or Ctrl-C stop the drill like its timeout: the server is killed and the
      // directory removed before we exit. Trapped before the server can exist.
      let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
      let run = Task { await drill.run(snapshotSource, progress: { stage in print("  \(stage.title)…") }) }
      let watcher = Task {
        for await _ in signals {
          run.cancel()
          break
        }
      }
      outcome = await run.value
      watcher.cancel()
    }
    DrillJournal.log(DrillJournal.entry(path: path, outcome: outcome), to: logger)
    switch outcome {
    case .success(let report):
      print(DrillJournal.passedLine(path: path, report: report))
    case .failure(let failure):
      print("restore drill FAILED at \(failure.stage.rawValue): \(failure.reason.message)")
      throw ExitCode(1)
    }
  }

  /// The newest snapshot vaultkeeper wrote in `[snapshot] directory`.
  static func newest(_ snapshot: SnapshotConfig) -> String? {
    let entries = SnapshotDirectory.list(snapshot.directory)
    return SnapshotDirectory.newest(entries, cluster: nil, now: Date()).map { "\(snapshot.directory)/\($0.name.fileName)" }
  }

  /// The AppRole credentials to log in with after the restore; nil for a static token (which
  /// may have been issued after the snapshot, so proves nothing either way).
  static func login(_ auth: SnapshotConfig.Auth, environment: [String: String]) throws -> DrillLogin? {
    guard case .appRole(let roleID, let secretID, let mount) = auth else { return nil }
    do {
      return DrillLogin(
        mount: mount, roleID: try CredentialReader.read(roleID, what: "role ID", environment: environment),
        secretID: try CredentialReader.read(secretID, what: "secret ID", environment: environment))
    } catch {
      printError("vaultkeeper snapshot drill: \(error.message)")
      throw error.reason == .credentials ? Exit.noPermission : ExitCode(1)
    }
  }
}
