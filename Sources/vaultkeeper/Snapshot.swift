import ArgumentParser
import Compression
import Curl
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
    commandName: "snapshot", abstract: "Raft snapshot tools.", subcommands: [SnapshotNow.self, SnapshotVerify.self, SnapshotList.self])
}

/// `vaultkeeper snapshot verify FILE…`: the checks Vault's restore would make, without Vault.
struct SnapshotVerify: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "verify",
    abstract: "Verify snapshot files: gzip, tar entries, SHA256SUMS, meta.json.",
    discussion: "Prints one line per file. Exit 0 when every file is good, 1 when any is bad (the line says why).")

  @Argument(help: ArgumentHelp("Snapshot files (as saved by vaultkeeper or `vault operator raft snapshot save`).", valueName: "file"))
  var files: [String]

  func run() async throws {
    var bad = 0
    for file in files {
      switch Self.verify(path: file) {
      case .success(let facts):
        print("\(file): OK (index \(facts.index), term \(facts.term), state \(facts.stateBytes) bytes)")
      case .failure(let error):
        bad += 1
        print("\(file): BAD: \(error.reason)")
      }
    }
    if bad > 0 { throw ExitCode(1) }
  }

  /// Streams the file through the verifier in 64 KiB pieces (constant memory for any size).
  static func verify(path: String) -> Result<SnapshotFacts, SnapshotVerificationError> {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return .failure(SnapshotVerificationError("cannot open: \(String(cString: strerror(errno)))")) }
    defer { close(fd) }
    do throws(SnapshotVerificationError) {
      let verifier = SnapshotStreamVerifier(decompressor: try GzipInflater())
      var buffer = [UInt8](repeating: 0, count: 64 * 1024)
      while true {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
          if errno == EINTR { continue }
          return .failure(SnapshotVerificationError("read error: \(String(cString: strerror(errno)))"))
        }
        if n == 0 { break }
        // withUnsafeBytes rethrows untyped errors: carry the typed one out by hand.
        let fed: Result<Void, SnapshotVerificationError> = buffer.withUnsafeBytes { raw in
          do throws(SnapshotVerificationError) {
            try verifier.feed(UnsafeRawBufferPointer(rebasing: raw[0..<n]))
            return .success(())
          } catch {
            return .failure(error)
          }
        }
        try fed.get()
      }
      return .success(try verifier.finish())
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
      Shows progress (bytes, rate) on a terminal, plain lines otherwise. With [snapshot.s3] the verified snapshot is then uploaded, \
      checked in the bucket (size, ETag), and remote retention is applied there. Exit 0 on success, 1 when the snapshot, the upload or \
      remote retention failed (the line says why; a snapshot saved locally stays), 78 for configuration errors.
      """)

  @OptionGroup var config: ConfigOption

  func run() async throws {
    ProcessHardening.apply()  // tokens and secret IDs are about to be read into this process
    let (loaded, snapshot) = try config.loadWithSnapshot()
    let node = loaded.vault
    let health = await OneShot.withClients(loaded) { clients in await clients[0].1.health() }
    let taker = SnapshotTaker(
      config: snapshot, node: node, environment: ProcessEnvironment.current(),
      makeTransport: { CurlTransport(settings: .init(node: $0), name: "snapshot") },
      makeDecompressor: { () throws(SnapshotVerificationError) in try GzipInflater() })
    let terminal = isatty(1) == 1
    let meter = ProgressMeter(terminal: terminal)
    do {
      let outcome = try await taker.take(clusterName: health.clusterName, progress: { meter.update($0) })
      meter.finish()
      let seconds = max(outcome.duration.seconds, 0.001)
      print("saved \(outcome.path): \(outcome.bytes) bytes in \(String(format2(seconds))) s (\(Int(Double(outcome.bytes) / seconds / 1_048_576)) MiB/s), raft index \(outcome.facts.index), verified")
      if let s3 = snapshot.s3 { try await Self.upload(outcome.path, s3) }
    } catch let error as SnapshotError {
      meter.finish()
      print("snapshot failed: \(error.message)")
      throw ExitCode(1)
    }
  }

  /// Uploads the saved file and applies remote retention; failures leave the local file alone.
  static func upload(_ path: String, _ s3: S3Config) async throws(ExitCode) {
    let uploader = S3Wiring.uploader(s3)
    let fileName = String(path.split(separator: "/").last ?? "")
    do {
      let receipt = try await uploader.upload(path: path, fileName: fileName)
      let parts = receipt.parts > 0 ? " in \(receipt.parts) parts" : ""
      print("uploaded \(receipt.location): \(receipt.bytes) bytes\(parts) in \(format2(max(receipt.duration.seconds, 0.001))) s, checked (size, ETag \(receipt.etag))")
    } catch {
      print("upload failed: \(error.message) (the local snapshot \(path) is kept)")
      throw ExitCode(1)
    }
    do {
      for deletion in try await uploader.applyRetention(now: Date()) {
        print("remote retention: deleted \(deletion.key) (\(deletion.reason))")
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
      Only files and keys vaultkeeper wrote (by name) are listed: local ones first, then the bucket's when [snapshot.s3] is configured. \
      With --verify each local one is read and verified (exit 1 if any is bad); exit 1 too when the bucket cannot be listed.
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

  @Flag var place: Place = .all

  func run() async throws {
    let (_, snapshot) = try config.loadWithSnapshot()
    if place == .remote && snapshot.s3 == nil {
      print("no [snapshot.s3] configured: nothing remote to list")
      throw ExitCode(1)
    }
    var bad = 0
    if place != .remote { bad += listLocal(snapshot) }
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
  func listLocal(_ snapshot: SnapshotConfig) -> Int {
    let entries = SnapshotDirectory.list(snapshot.directory)
    let now = Date()
    var bad = 0
    print("\(entries.count) snapshot\(entries.count == 1 ? "" : "s") in \(snapshot.directory)")
    for entry in entries {
      var line = "\(entry.name.fileName)  age \(DurationParsing.humanize(.seconds(max(now.timeIntervalSince(entry.name.time), 0))))"
      line += "  \(entry.bytes) bytes  index \(entry.name.raftIndex)"
      if verify {
        switch SnapshotVerify.verify(path: "\(snapshot.directory)/\(entry.name.fileName)") {
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
