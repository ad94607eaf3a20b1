#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Why a snapshot was not taken. The messages never contain tokens or secret IDs.
public struct SnapshotError: Error, Sendable, CustomStringConvertible {
  public enum Reason: String, Sendable {
    case credentials, auth, vault, verification, disk, space
    /// Object storage: the upload, or its check afterwards, failed (the local snapshot stays).
    case upload
    /// Object storage: listing or deleting old remote snapshots failed.
    case remoteRetention
  }
  public var reason: Reason
  public var message: String
  public var description: String { message }

  public init(_ reason: Reason, _ message: String) {
    self.reason = reason
    self.message = message
  }
}

/// Takes one snapshot: authenticates, streams `GET /v1/sys/storage/raft/snapshot` straight into
/// a temporary file while verifying it, and only if everything checks out renames it into place
/// (`SnapshotFileWriter`). Follows a standby's 307 to the active node, re-sending the token.
/// The transfer runs on its own transport (thread and connection), so health checks of the
/// same node never wait behind a download.
public struct SnapshotTaker: Sendable {
  public struct Outcome: Sendable {
    public var path: String
    public var facts: SnapshotFacts
    public var bytes: Int64
    public var duration: Duration
  }

  public var config: SnapshotConfig
  public var node: NodeConfig
  public var environment: [String: String]
  public var makeTransport: @Sendable (NodeConfig) -> any HTTPTransport
  public var makeDecompressor: @Sendable () throws(SnapshotVerificationError) -> any StreamDecompressor

  public init(config: SnapshotConfig, node: NodeConfig, environment: [String: String], makeTransport: @escaping @Sendable (NodeConfig) -> any HTTPTransport,
    makeDecompressor: @escaping @Sendable () throws(SnapshotVerificationError) -> any StreamDecompressor)
  {
    self.config = config
    self.node = node
    self.environment = environment
    self.makeTransport = makeTransport
    self.makeDecompressor = makeDecompressor
  }

  /// - Parameters:
  ///   - clusterName: for the file name (from the node's health answer).
  ///   - progress: called on the transfer thread with the bytes received so far.
  public func take(clusterName: String?, progress: (@Sendable (Int64) -> Void)? = nil) async throws(SnapshotError) -> Outcome {
    let free = FileAccess.freeBytes(path: config.directory)
    if let free, free < config.minFreeBytes {
      throw SnapshotError(.space, "only \(free / 1_048_576) MiB free in \(config.directory), below min_free_space (\(config.minFreeBytes / 1_048_576) MiB): snapshot skipped")
    }
    let token = try await obtainToken()
    let started = ContinuousClock.now
    var target = node
    for _ in 0..<3 {
      let transport = makeTransport(target)
      defer { transport.shutdown() }
      let attempt = try Attempt(config: config, decompressor: try wrap { () throws(SnapshotVerificationError) in try makeDecompressor() }, progress: progress)
      let client = VaultClient(transport: transport, timeout: target.timeout)
      let limits = DownloadLimits(connectTimeout: target.connectTimeout, maxDuration: config.maxDuration)
      let response: SnapshotResponse
      do {
        response = try await client.downloadSnapshot(token: token.token, limits: limits, into: attempt.body)
      } catch {
        attempt.writer.abort()
        if let reason = attempt.failure { throw SnapshotError(reason.0, reason.1) }
        if case .http(let status, let errors) = error, status == 403 {
          throw SnapshotError(.auth, "Vault refused the snapshot (403 \(errors.joined(separator: "; "))): the token needs read on sys/storage/raft/snapshot")
        }
        throw SnapshotError(.vault, "snapshot download failed: \(error)")
      }
      switch response {
      case .redirect(let location):
        attempt.writer.abort()
        target = try redirectTarget(location)
        continue
      case .streamed:
        let facts: SnapshotFacts
        do {
          facts = try attempt.finish()
        } catch {
          attempt.writer.abort()
          throw SnapshotError(.verification, "snapshot failed verification: \(error.reason)")
        }
        let name = SnapshotName(cluster: clusterName ?? "vault", time: Date(), raftIndex: facts.index, encrypted: false)
        // fsync of a multi-gigabyte file can take seconds: never on the cooperative pool.
        let fileName = name.fileName
        let committed: Result<String, SnapshotFileWriter.Failure> = await OffPool.run {
          do throws(SnapshotFileWriter.Failure) { return .success(try attempt.writer.commit(as: fileName)) } catch { return .failure(error) }
        }
        switch committed {
        case .success(let path):
          return Outcome(path: path, facts: facts, bytes: attempt.writer.bytesWritten, duration: started.duration(to: .now))
        case .failure(let error):
          throw SnapshotError(.disk, error.message)
        }
      }
    }
    throw SnapshotError(.vault, "too many redirects while looking for the active node")
  }

  private func wrap<T>(_ body: () throws(SnapshotVerificationError) -> T) throws(SnapshotError) -> T {
    do throws(SnapshotVerificationError) { return try body() } catch { throw SnapshotError(.verification, error.reason) }
  }

  /// The active node's address from a 307 `Location`, with this node's TLS settings. Plain http
  /// stays limited to loopback, as for configured addresses.
  func redirectTarget(_ location: String) throws(SnapshotError) -> NodeConfig {
    let base = location.firstRange(of: "/v1/").map { String(location[..<$0.lowerBound]) } ?? location
    guard case .success(let address) = VaultAddress.parse(base), address.scheme != .unix else {
      throw SnapshotError(.vault, "the standby redirected to an address that is not usable: \(location)")
    }
    if address.scheme == .http && !address.isLocal {
      throw SnapshotError(.vault, "refusing to send the token over plain http to \(base) (redirect from a standby)")
    }
    var next = node
    next.address = address
    next.unit = nil
    return next
  }

  private func obtainToken() async throws(SnapshotError) -> VaultToken {
    func read(_ credential: SnapshotConfig.Credential, _ what: String) throws(SnapshotError) -> SecretBytes {
      let path: String
      switch credential {
      case .file(let file): path = file
      case .credential(let name):
        guard let dir = environment["CREDENTIALS_DIRECTORY"], !dir.isEmpty else {
          throw SnapshotError(.credentials, "the \(what) credential \"\(name)\" needs $CREDENTIALS_DIRECTORY (LoadCredentialEncrypted=\(name):…)")
        }
        path = "\(dir)/\(name)"
      }
      var bytes: [UInt8]
      do {
        bytes = try KeyShareLoader.readSecretFile(path: path, what: what, limit: 8192)
      } catch {
        throw SnapshotError(.credentials, error.message)
      }
      defer { SecretBytes.wipe(&bytes) }
      var slice = bytes[...]
      while let last = slice.last, [0x0A, 0x0D, 0x20, 0x09].contains(last) { slice = slice.dropLast() }
      while let first = slice.first, [0x0A, 0x0D, 0x20, 0x09].contains(first) { slice = slice.dropFirst() }
      guard !slice.isEmpty else { throw SnapshotError(.credentials, "the \(what) at \(path) is empty") }
      return SecretBytes(slice)
    }
    switch config.auth {
    case .token(let credential):
      return VaultToken(token: try read(credential, "token"), ttl: .zero, renewable: false)
    case .appRole(let roleCredential, let secretCredential, let mount):
      let roleID = try read(roleCredential, "AppRole role ID")
      let secretID = try read(secretCredential, "AppRole secret ID")
      let transport = makeTransport(node)
      defer { transport.shutdown() }
      do {
        return try await VaultClient(transport: transport, timeout: node.timeout).loginAppRole(mount: mount, roleID: roleID, secretID: secretID)
      } catch {
        throw SnapshotError(.auth, "AppRole login at auth/\(mount) failed: \(error)")
      }
    }
  }
}

/// One download: the sink that writes and verifies, confined to the transfer thread.
private final class Attempt: @unchecked Sendable {
  let writer: SnapshotFileWriter
  let verifier: SnapshotStreamVerifier
  let directory: String
  let minFree: Int64
  private(set) var failure: (SnapshotError.Reason, String)?
  private var received: Int64 = 0
  private var nextSpaceCheck: Int64 = 64 << 20
  private let progress: (@Sendable (Int64) -> Void)?
  var body: StreamingBody { StreamingBody { [self] bytes in self.receive(bytes) } }

  init(config: SnapshotConfig, decompressor: any StreamDecompressor, progress: (@Sendable (Int64) -> Void)?) throws(SnapshotError) {
    do {
      writer = try SnapshotFileWriter(directory: config.directory)
    } catch {
      throw SnapshotError(.disk, error.message)
    }
    verifier = SnapshotStreamVerifier(decompressor: decompressor)
    directory = config.directory
    minFree = config.minFreeBytes
    self.progress = progress
  }

  /// Called on the transfer thread for every piece; a returned reason aborts the transfer.
  func receive(_ bytes: UnsafeRawBufferPointer) -> String? {
    do throws(SnapshotVerificationError) {
      try verifier.feed(bytes)
    } catch {
      failure = (.verification, "snapshot failed verification: \(error.reason)")
      return error.reason
    }
    do throws(SnapshotFileWriter.Failure) {
      try writer.write(bytes)
    } catch {
      failure = (.disk, error.message)
      return error.message
    }
    received += Int64(bytes.count)
    if received >= nextSpaceCheck {
      nextSpaceCheck = received + (64 << 20)
      if let free = FileAccess.freeBytes(path: directory), free < minFree {
        failure = (.space, "free space in \(directory) fell below min_free_space while writing: snapshot abandoned")
        return "free space below min_free_space"
      }
    }
    progress?(received)
    return nil
  }

  func finish() throws(SnapshotVerificationError) -> SnapshotFacts {
    try verifier.finish()
  }
}
