import ArgumentParser
import Compression
import VaultKeeper

#if canImport(Glibc)
import Glibc
#endif

struct SnapshotCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "snapshot", abstract: "Raft snapshot tools.", subcommands: [SnapshotVerify.self])
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
