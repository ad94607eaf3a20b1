// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Compression
import Curl
import Platform
import Systemd
import VaultKeeper

import Synchronization

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
#endif

struct SnapshotCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "snapshot", abstract: "Raft snapshot tools.", subcommands: [SnapshotNow.self, SnapshotVerify.self, SnapshotList.self, SnapshotRestore.self, SnapshotDrill.self])
}

/// `vaultkeeper snapshot verify [--identity FILE] FILE…`: the checks Vault's restore would make,
/// without Vault; age-encrypted snapshots are decrypted on the fly with the identity file.
struct SnapshotVerify: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "verify",
    abstract: "Verify snapshot files: gzip, tar entries, SHA256SUMS, meta.json; age-encrypted ones with --identity.",
    discussion: """
      Prints one line per file. Exit 0 when every file is good, 1 when any is bad (the line says why). \
      An age-encrypted file (.snap.age) is decrypted in memory, streaming, and its plaintext verified; without \
      --identity it counts as bad. An unusable identity file exits 77 (unreadable or insecure) or 65 (not an identity file).
      """)

  @Option(help: ArgumentHelp("age identity file (AGE-SECRET-KEY-1… lines, as age-keygen writes) for encrypted snapshots; mode 0600, owned by you.", valueName: "file"))
  var identity: String?

  @Argument(help: ArgumentHelp("Snapshot files (as saved by vaultkeeper or `vault operator raft snapshot save`, or age-encrypted).", valueName: "file"))
  var files: [String]

  func run() async throws {
    let identities = try Self.loadIdentities(identity, command: "snapshot verify")
    var bad = 0
    for file in files {
      switch Self.verify(path: file, identities: identities) {
      case .success(let facts):
        print("\(file): OK (index \(facts.index), term \(facts.term), state \(facts.stateBytes) bytes)")
      case .failure(let error):
        bad += 1
        print("\(file): BAD: \(error.reason)")
      }
    }
    if bad > 0 { throw ExitCode(1) }
  }

  /// The identities of `--identity`, or nil without it. Key material stays out of messages.
  static func loadIdentities(_ path: String?, command: String) throws -> [AgeIdentity]? {
    guard let path else { return nil }
    ProcessHardening.apply()  // private keys are about to be read into this process
    do {
      return try AgeIdentityFile.load(path: path)
    } catch {
      printError("vaultkeeper \(command): \(error)")
      throw Exit.forKeyError(error)
    }
  }

  /// Streams the file through the verifier in 64 KiB pieces (constant memory for any size),
  /// decrypting an age file with `identities` on the way.
  static func verify(
    path: String, identities: [AgeIdentity]?, tee: ((UnsafeRawBufferPointer) throws(SnapshotVerificationError) -> Void)? = nil
  ) -> Result<SnapshotFacts, SnapshotVerificationError> {
    let fd: Int32
    switch open(path: path, identities: identities) {
    case .success(let opened): fd = opened
    case .failure(let error): return .failure(error)
    }
    defer { close(fd) }
    return verify(descriptor: fd, identities: identities, tee: tee)
  }

  /// Opens a snapshot file for reading; an `.age` file without identities is refused first.
  static func open(path: String, identities: [AgeIdentity]?) -> Result<Int32, SnapshotVerificationError> {
    if identities == nil, path.hasSuffix(".age") {
      return .failure(SnapshotVerificationError(SnapshotDecryptingVerifier.needsIdentity))
    }
    let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return .failure(SnapshotVerificationError("cannot open: \(String(cString: strerror(errno)))")) }
    return .success(fd)
  }

  /// As `verify(path:…)`, reading the open file `fd` from its current offset to the end.
  static func verify(
    descriptor fd: Int32, identities: [AgeIdentity]?, tee: ((UnsafeRawBufferPointer) throws(SnapshotVerificationError) -> Void)? = nil
  ) -> Result<SnapshotFacts, SnapshotVerificationError> {
    do throws(SnapshotVerificationError) {
      let verifier = SnapshotDecryptingVerifier(verifier: SnapshotGzipVerifier(decompressor: try GzipInflater()), identities: identities)
      verifier.tee = tee
      return .success(try verifier.verify(descriptor: fd))
    } catch {
      return .failure(error)
    }
  }
}

/// `vaultkeeper snapshot now`: one snapshot of the local node, written and verified like the
/// scheduled ones (credentials and directory from `[snapshot]`).
struct SnapshotNow: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "now",
    abstract: "Take a Raft snapshot now into [snapshot] directory, verified before it is kept.",
    discussion: """
      Shows progress (bytes, rate) on a terminal, plain lines otherwise. The [snapshot] retention policy is then applied, \
      like the scheduled duty. With [snapshot.s3] the verified snapshot is uploaded, checked in the bucket (size, ETag), and \
      remote retention is applied there. Exit 0 on success, 1 when the snapshot, the upload or remote retention failed (the \
      line says why; a snapshot saved locally stays), 78 for configuration errors.
      """)

  @OptionGroup var config: ConfigOption

  func run() async throws {
    ProcessHardening.apply()  // tokens and secret IDs are about to be read into this process
    let (loaded, snapshot) = try config.loadWithSnapshot()
    let node = loaded.vault
    let health = await OneShot.withClients(loaded) { clients in await clients[0].1.health() }
    let makeTransport: @Sendable (NodeConfig) -> any HTTPTransport = { CurlTransport(settings: .init(node: $0), name: "snapshot") }
    // The scheduled duty's own take → retain → upload pipeline: a manual snapshot is written,
    // verified and counted by retention exactly like a scheduled one.
    let pipeline = SnapshotPipeline(
      config: snapshot, node: node, peers: loaded.peers, makeTransport: makeTransport,
      makeDecompressor: { () throws(SnapshotVerificationError) in try GzipInflater() })
    let tokens = TokenKeeper(auth: snapshot.auth, node: node, environment: ProcessEnvironment.current(), makeTransport: makeTransport)
    let terminal = isatty(1) == 1
    let meter = ProgressMeter(terminal: terminal)
    do {
      let taken = try await pipeline.take(clusterName: health.clusterName, tokens: tokens, progress: { meter.update($0) })
      let outcome = taken.outcome
      meter.finish()
      let seconds = max(outcome.duration.seconds, 0.001)
      print("saved \(outcome.path): \(outcome.bytes) bytes in \(String(format2(seconds))) s (\(Int(Double(outcome.bytes) / seconds / 1_048_576)) MiB/s), raft index \(outcome.facts.index), verified")
      for deletion in taken.retention.deletions {
        print("retention: " + (deletion.error.map { "could not delete \(deletion.fileName): \($0)" } ?? "deleted \(deletion.fileName) (\(deletion.reason))"))
      }
      for name in taken.retention.future {
        print("retention: kept \(name), dated in the future: not counted and never deleted (a clock that was ahead, or a file someone else put here)")
      }
      if let s3 = snapshot.s3 {
        guard let clusterName = health.clusterName, let clusterID = health.clusterID else {
          print("upload skipped: Vault did not name its cluster (name and ID), which every uploaded snapshot records")
          throw ExitCode(1)
        }
        try await Self.upload(outcome.path, s3, cluster: SnapshotCluster(name: clusterName, id: clusterID), pipeline: pipeline)
      }
    } catch let error as SnapshotError {
      meter.finish()
      print("snapshot failed: \(error.message)")
      throw ExitCode(1)
    }
  }

  /// Uploads the saved file and applies remote retention; failures leave the local file alone.
  static func upload(_ path: String, _ s3: S3Config, cluster: SnapshotCluster, pipeline: SnapshotPipeline) async throws(ExitCode) {
    let uploader = S3Wiring.uploader(s3)
    let receipt: UploadReceipt
    do {
      receipt = try await pipeline.upload(path, with: uploader, cluster: cluster)
      let parts = receipt.parts > 0 ? " in \(receipt.parts) parts" : ""
      print("uploaded \(receipt.location): \(receipt.bytes) bytes\(parts) in \(format2(max(receipt.duration.seconds, 0.001))) s, checked (size, ETag \(receipt.etag))")
    } catch {
      print("upload failed: \(error.message) (the local snapshot \(path) is kept)")
      throw ExitCode(1)
    }
    do {
      let pruned = try await pipeline.applyRemoteRetention(with: uploader, cluster: cluster, protecting: [receipt.key])
      for deletion in pruned.deleted {
        print("remote retention: deleted \(deletion.key) (\(deletion.reason))")
      }
      for key in pruned.future {
        print("remote retention: kept \(key), dated in the future: not counted and never deleted")
      }
    } catch {
      print("remote retention failed: \(error.message)")
      throw ExitCode(1)
    }
  }
}

private func format2(_ value: Double) -> String {
  let hundredths = Int((value * 100).rounded())
  return "\(hundredths / 100).\(hundredths % 100 < 10 ? "0" : "")\(hundredths % 100)"
}

/// Progress for `snapshot now`: a redrawn line on a terminal, a line every 64 MiB otherwise.
final class ProgressMeter: @unchecked Sendable {
  private let terminal: Bool
  private let lock = Mutex(State())
  private struct State {
    var started = ContinuousClock.now
    var lastDraw = ContinuousClock.now
    var lastLine: Int64 = 0
    var drew = false
  }

  init(terminal: Bool) { self.terminal = terminal }

  func update(_ bytes: Int64) {
    let line: String? = lock.withLock { s in
      let now = ContinuousClock.now
      if terminal {
        guard s.lastDraw.duration(to: now) >= .milliseconds(200) else { return nil }
        s.lastDraw = now
        s.drew = true
        let rate = Double(bytes) / max(s.started.duration(to: now).seconds, 0.001) / 1_048_576
        return "\r\(bytes / 1_048_576) MiB  \(Int(rate)) MiB/s   "
      }
      guard bytes - s.lastLine >= 64 << 20 else { return nil }
      s.lastLine = bytes
      return "\(bytes / 1_048_576) MiB received\n"
    }
    if let line { FileStream.standardError.write(line) }
  }

  func finish() {
    if terminal, lock.withLock({ $0.drew }) { FileStream.standardError.write("\n") }
  }
}

/// `vaultkeeper snapshot list`: the snapshots vaultkeeper wrote in `[snapshot] directory`.
struct SnapshotList: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "list",
    abstract: "List the snapshots in [snapshot] directory and in [snapshot.s3], newest first (age, size, Raft index).",
    discussion: """
      Only files and keys vaultkeeper wrote (by name, .snap and .snap.age) are listed: local ones first, then the bucket's when \
      [snapshot.s3] is configured. With --verify each local one is read and verified (exit 1 if any is bad); encrypted ones need \
      --identity. Exit 1 too when the bucket cannot be listed.
      """)

  enum Place: String, EnumerableFlag {
    case local, remote, all
    static func help(for value: Place) -> ArgumentHelp? {
      switch value {
      case .local: return "Only the local directory."
      case .remote: return "Only the bucket of [snapshot.s3]."
      case .all: return "Both."
      }
    }
  }

  @OptionGroup var config: ConfigOption

  @Flag(help: "Verify every listed local snapshot (reads each file whole).")
  var verify = false

  @Option(help: ArgumentHelp("age identity file to decrypt encrypted snapshots with --verify (without it they show as BAD).", valueName: "file"))
  var identity: String?

  @Flag var place: Place = .all

  func run() async throws {
    let (_, snapshot) = try config.loadWithSnapshot()
    if identity != nil && !verify {
      printError("vaultkeeper snapshot list: --identity only applies with --verify")
      throw Exit.usage
    }
    if place == .remote && snapshot.s3 == nil {
      print("no [snapshot.s3] configured: nothing remote to list")
      throw ExitCode(1)
    }
    let identities = try SnapshotVerify.loadIdentities(identity, command: "snapshot list")
    var bad = 0
    if place != .remote { bad += listLocal(snapshot, identities: identities) }
    if place != .local, let s3 = snapshot.s3 {
      do {
        let remote = try await S3Wiring.uploader(s3).list()
        let now = Date()
        print("\(remote.count) snapshot\(remote.count == 1 ? "" : "s") in s3://\(s3.bucket)/\(s3.prefix)")
        for entry in remote {
          print("\(entry.key)  age \(DurationParsing.humanize(.seconds(max(now.timeIntervalSince(entry.name.time), 0))))  \(entry.bytes) bytes  index \(entry.name.raftIndex)")
        }
      } catch {
        print("cannot list the bucket: \(error.message)")
        bad += 1
      }
    }
    if bad > 0 { throw ExitCode(1) }
  }

  /// Prints the local snapshots; returns how many failed verification.
  func listLocal(_ snapshot: SnapshotConfig, identities: [AgeIdentity]?) -> Int {
    let entries = SnapshotDirectory.list(snapshot.directory)
    let now = Date()
    var bad = 0
    print("\(entries.count) snapshot\(entries.count == 1 ? "" : "s") in \(snapshot.directory)")
    for entry in entries {
      var line = "\(entry.name.fileName)  age \(DurationParsing.humanize(.seconds(max(now.timeIntervalSince(entry.name.time), 0))))"
      line += "  \(entry.bytes) bytes  index \(entry.name.raftIndex)"
      if verify {
        switch SnapshotVerify.verify(path: "\(snapshot.directory)/\(entry.name.fileName)", identities: identities) {
        case .success: line += "  verified"
        case .failure(let error):
          bad += 1
          line += "  BAD: \(error.reason)"
        }
      }
      print(line)
    }
    return bad
  }
}

enum S3Wiring {
  static func uploader(_ s3: S3Config) -> SnapshotUploader {
    SnapshotUploader(config: s3, environment: ProcessEnvironment.current(), makeTransport: { CurlObjectTransport(config: $0, credentials: $1) })
  }
}

/// `vaultkeeper snapshot restore FILE --confirm-overwrite`: verifies the file, then hands it to
/// Vault, which replaces all of its data with it.
struct SnapshotRestore: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "restore",
    abstract: "Restore a Raft snapshot into Vault (replaces ALL of Vault's data); verifies the file first.",
    discussion: """
      The file is opened once and verified completely (as `snapshot verify` does; an age-encrypted one is decrypted with \
      --identity into a 0600 file without a name in [snapshot] directory, which disappears with the process however it ends) \
      before anything is sent. Exactly the verified bytes are then streamed to the active node, from the same open file: \
      replacing the file meanwhile changes nothing. A standby's redirect is followed only to a configured node \
      ([vault] or [[peer]] address), never from https to http. Without --confirm-overwrite nothing is sent: the command says what it \
      would do and exits 64. Vault installs the snapshot after answering; tokens and secrets written since the snapshot are \
      gone, and if installing fails Vault seals itself. Exit 0 accepted, 1 refused or not verified, 64 not confirmed, \
      77/65 unusable token or identity file, 78 configuration error.
      """)

  @OptionGroup var config: ConfigOption

  @Argument(help: ArgumentHelp("The snapshot file (.snap, or .snap.age with --identity).", valueName: "file"))
  var file: String

  @Flag(help: "Really replace all of Vault's data with this snapshot.")
  var confirmOverwrite = false

  @Flag(help: "Use snapshot-force: accept a snapshot from a cluster with other unseal keys (Vault refuses it otherwise).")
  var force = false

  @Option(help: ArgumentHelp("age identity file for an encrypted snapshot.", valueName: "file"))
  var identity: String?

  @Option(help: ArgumentHelp("A file holding a Vault token with update on sys/storage/raft/snapshot (default: the [snapshot] credentials).", valueName: "file"))
  var tokenFile: String?

  func run() async throws {
    ProcessHardening.apply()  // tokens and identities are about to be read into this process
    let (loaded, snapshot) = try config.loadWithSnapshot()
    let identities = try SnapshotVerify.loadIdentities(identity, command: "snapshot restore")
    // Opened once: verified and sent from this one descriptor, never looked up by name again
    // (by then the path could name another file).
    let input: Int32
    switch SnapshotVerify.open(path: file, identities: identities) {
    case .success(let fd): input = fd
    case .failure(let error):
      print("\(file): BAD: \(error.reason): nothing was sent to Vault")
      throw ExitCode(1)
    }
    defer { close(input) }
    // A decrypted copy goes into our own private directory, never next to the operator's file,
    // and into a file without a name (O_TMPFILE): a kill or Ctrl-C leaves nothing behind.
    let scratch: UnnamedFile?
    do {
      scratch = identities == nil ? nil : try UnnamedFile(directory: snapshot.directory)
    } catch {
      print("restore failed: \(error.message)")
      throw ExitCode(1)
    }
    defer { withExtendedLifetime(scratch) {} }  // its descriptor is read until the restore returns
    let verifiedBytes = ByteCounter()
    let tee: (UnsafeRawBufferPointer) throws(SnapshotVerificationError) -> Void = { bytes throws(SnapshotVerificationError) in
      if let scratch { try Self.write(bytes, to: scratch) }
      verifiedBytes.count += Int64(bytes.count)
    }
    let verified = SnapshotVerify.verify(descriptor: input, identities: identities, tee: tee)
    let facts: SnapshotFacts
    switch verified {
    case .success(let good): facts = good
    case .failure(let error):
      print("\(file): BAD: \(error.reason): nothing was sent to Vault")
      throw ExitCode(1)
    }
    let summary = "\(file) (raft index \(facts.index), term \(facts.term), state \(facts.stateBytes) bytes)"
    guard confirmOverwrite else {
      print("\(file): OK: verified. Restoring it replaces ALL data of the Vault cluster at \(loaded.vault.name) with \(summary);")
      print("secrets and tokens written since the snapshot are lost. Nothing was sent: run again with --confirm-overwrite to restore.")
      throw Exit.usage
    }
    // Exactly the bytes that were verified: the decrypted copy, or the operator's file through
    // the descriptor it was verified from (up to the length verified).
    let source = scratch.map { FileSlice(descriptor: $0.descriptor, name: "the decrypted copy of \(file)", offset: 0, length: $0.bytesWritten) }
      ?? FileSlice(descriptor: input, name: file, offset: 0, length: verifiedBytes.count)
    let makeTransport: @Sendable (NodeConfig) -> any HTTPTransport = { CurlTransport(settings: .init(node: $0), name: "restore") }
    let token: SecretBytes
    do {
      if let tokenFile {
        token = try CredentialReader.read(.file(tokenFile), what: "token", environment: [:])
      } else {
        token = try await TokenKeeper(auth: snapshot.auth, node: loaded.vault, environment: ProcessEnvironment.current(), makeTransport: makeTransport).token()
      }
    } catch {
      print("restore failed: \(error.message)")
      throw error.reason == .credentials ? Exit.noPermission : ExitCode(1)
    }
    do {
      var restorer = SnapshotRestorer(node: loaded.vault, makeTransport: makeTransport, transfers: snapshot.transfers)
      restorer.peers = loaded.peers  // where a standby's redirect may lead
      let node = try await restorer.restore(file: source, token: token, force: force)
      print("restore accepted by \(node)\(force ? " (snapshot-force)" : ""): \(summary).")
      if force {
        print(Self.forcedNextSteps(loaded))
      } else {
        print("Vault now installs it; if that fails it seals itself. Tokens issued after the snapshot no longer work.")
      }
    } catch {
      print("restore failed: \(error.message)")
      throw ExitCode(1)
    }
  }

  private static func write(_ bytes: UnsafeRawBufferPointer, to file: UnnamedFile) throws(SnapshotVerificationError) {
    do throws(UnnamedFile.Failure) {
      try file.write(bytes)
    } catch {
      throw SnapshotVerificationError(error.message)
    }
  }

  /// How many bytes went through verification (read by the tee on the same thread).
  private final class ByteCounter {
    var count: Int64 = 0
  }

  /// What the operator must do after a forced restore. Observed on OpenBao 2.7: a snapshot from a
  /// cluster with other unseal keys is installed, then the node seals itself; until it restarts
  /// it still shows its old seal configuration, afterwards that of the snapshot's cluster, and
  /// only that cluster's shares open it (docs/operations.md, "Restoring a snapshot").
  static func forcedNextSteps(_ config: Config) -> String {
    let unit = config.vault.unit.map { "systemctl restart \($0)" } ?? "restart the Vault process"
    let keys: String
    switch config.unseal.enabled ? config.unseal.keySource : nil {
    case .file(let path)?:
      keys = "put that cluster's unseal key shares in \(path) and run `systemctl reload vaultkeeper`: it unseals at once"
    case .credential(let name)?:
      keys = "encrypt that cluster's unseal key shares as the credential \"\(name)\" (systemd-creds encrypt --name=\(name)) "
        + "and run `systemctl reload vaultkeeper`: it unseals at once"
    case nil:
      keys = "unseal it with that cluster's unseal keys"
    }
    return """
      Vault now installs it. If the snapshot came from a cluster with other unseal keys, Vault then seals itself, \
      and from now on only that cluster's unseal keys and tokens work. Next:
        1. restart Vault (\(unit)): only a restarted Vault shows that cluster's seal configuration;
        2. \(keys).
      Until then vaultkeeper reports this cluster's shares as a wrong key (or the seal as deliberate) and does not retry them in a loop.
      """
  }
}
