// SPDX-License-Identifier: Apache-2.0
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
/// (`SnapshotFileWriter`). Follows a standby's 307 to the active node, re-sending the token, when
/// that node is a configured one (`StandbyRedirect`).
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
  /// The other configured nodes (`[[peer]]`): the only places besides `node` a redirect may lead.
  public var peers: [NodeConfig] = []
  public var makeTransport: @Sendable (NodeConfig) -> any HTTPTransport
  public var makeDecompressor: @Sendable () throws(SnapshotVerificationError) -> any StreamDecompressor
  /// Where the file name's time is read (a manual clock in tests).
  public var clock: any NodeClock = SystemNodeClock()

  public init(config: SnapshotConfig, node: NodeConfig, makeTransport: @escaping @Sendable (NodeConfig) -> any HTTPTransport,
    makeDecompressor: @escaping @Sendable () throws(SnapshotVerificationError) -> any StreamDecompressor)
  {
    self.config = config
    self.node = node
    self.makeTransport = makeTransport
    self.makeDecompressor = makeDecompressor
  }

  /// - Parameters:
  ///   - clusterName: for the file name (from the node's health answer).
  ///   - tokens: where the Vault token comes from; a 403 makes it log in (or re-read) once more.
  ///   - progress: called on the transfer thread with the bytes received so far.
  public func take(clusterName: String?, tokens: TokenKeeper, progress: (@Sendable (Int64) -> Void)? = nil) async throws(SnapshotError) -> Outcome {
    let free = FileAccess.freeBytes(path: config.directory)
    if let free, free < config.minFreeBytes {
      throw SnapshotError(.space, "only \(free / 1_048_576) MiB free in \(config.directory), below min_free_space (\(config.minFreeBytes / 1_048_576) MiB): snapshot skipped")
    }
    var token = try await tokens.token()
    var reauthenticated = false
    let started = ContinuousClock.now
    var target = node
    for _ in 0..<4 {
      let transport = makeTransport(target)
      defer { transport.shutdown() }
      let attempt = try Attempt(config: config, decompressor: try wrap { () throws(SnapshotVerificationError) in try makeDecompressor() }, progress: progress)
      let client = VaultClient(transport: transport, timeout: target.timeout)
      let limits = DownloadLimits(connectTimeout: target.connectTimeout, maxDuration: config.maxDuration)
      let response: SnapshotResponse
      do {
        response = try await client.downloadSnapshot(token: token, limits: limits, into: attempt.body)
      } catch {
        attempt.writer.abort()
        if let reason = attempt.failure { throw SnapshotError(reason.0, reason.1) }
        if case .http(let status, _) = error, status == 403 {
          // The token expired or was revoked behind our back: forget it (a static token file is
          // read again next time) and, with AppRole, log in once more right away.
          await tokens.invalidate()
          if !reauthenticated, await tokens.canLogIn {
            reauthenticated = true
            token = try await tokens.token()
            continue
          }
        }
        if case .http(let status, let errors) = error, status == 403 {
          throw SnapshotError(.auth, "Vault refused the snapshot (403 \(errors.joined(separator: "; "))): the token needs read on sys/storage/raft/snapshot")
        }
        throw SnapshotError(.vault, "snapshot download failed: \(error)")
      }
      switch response {
      case .redirect(let location):
        attempt.writer.abort()
        target = try StandbyRedirect.target(location, from: target, configured: [node] + peers)
        continue
      case .streamed:
        let facts: SnapshotFacts
        do {
          facts = try await attempt.finish()
        } catch {
          attempt.writer.abort()
          throw SnapshotError(.verification, "snapshot failed verification: \(error.reason)")
        }
        let name = SnapshotName(cluster: clusterName ?? "vault", time: Date(timeIntervalSince1970: clock.now().wall), raftIndex: facts.index, encrypted: attempt.encryptor != nil)
        // fsync of a multi-gigabyte file can take seconds: never on the cooperative pool.
        let fileName = name.fileName
        let committed: Result<String, SnapshotFileWriter.Failure> = await OffPool.run {
          do throws(SnapshotFileWriter.Failure) { return .success(try attempt.commit(as: fileName)) } catch { return .failure(error) }
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

}

/// One download: the sink that writes and verifies, confined to the transfer thread (then
/// handed, once the transfer has returned, to the task that finishes and commits it).
/// Verification (inflate, tar, SHA-256) runs on a thread of its own (`SnapshotVerifierThread`), so the
/// transfer thread only receives, encrypts and writes; a verification failure there stops the
/// transfer at the next piece. The verifier thread ends with the attempt whichever way it ends:
/// `finish()`, a failure, or the attempt being dropped (cancellation, transport errors, redirects).
/// With age recipients configured the verifier still sees the plaintext, and the file gets
/// only ciphertext: plaintext never touches the disk.
private final class Attempt: @unchecked Sendable {
  let writer: SnapshotFileWriter
  let verifier: SnapshotVerifierThread
  let encryptor: AgeEncryptor?
  let directory: String
  let minFree: Int64
  private(set) var failure: (SnapshotError.Reason, String)?
  private var received: Int64 = 0
  private var nextSpaceCheck: Int64 = 64 << 20
  private let progress: (@Sendable (Int64) -> Void)?
  /// Vault does not announce the snapshot's size, so the transfer deadline is checked as the
  /// bytes arrive: past `transfers.minimum`, an average below the minimum rate ends it. (A
  /// download that stops sending altogether is cut by curl's low-speed limit.)
  private let transfers: TransferDeadline
  private let started = ContinuousClock.now
  var body: StreamingBody { StreamingBody { [self] bytes in self.receive(bytes) } }

  init(config: SnapshotConfig, decompressor: any StreamDecompressor, progress: (@Sendable (Int64) -> Void)?) throws(SnapshotError) {
    do {
      writer = try SnapshotFileWriter(directory: config.directory)
    } catch {
      throw SnapshotError(.disk, error.message)
    }
    verifier = SnapshotVerifierThread(verifier: SnapshotGzipVerifier(decompressor: decompressor))
    do {
      encryptor = try config.encryption.map { (encryption) throws(AgeError) in try AgeEncryptor(recipients: encryption.recipients) }
    } catch {
      throw SnapshotError(.credentials, "cannot encrypt to the configured age recipients: \(error.message)")
    }
    directory = config.directory
    minFree = config.minFreeBytes
    transfers = config.transfers
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
      if let encryptor {
        try encryptor.update(bytes) { (sealed) throws(SnapshotFileWriter.Failure) in try writer.write(sealed) }
      } else {
        try writer.write(bytes)
      }
    } catch {
      failure = (.disk, error.message)
      verifier.cancel()
      return error.message
    }
    received += Int64(bytes.count)
    let elapsed = started.duration(to: .now)
    if transfers.isBehind(bytes: received, elapsed: elapsed) {
      let reason = "the download missed its deadline: \(received) bytes in \(DurationParsing.humanize(elapsed)), "
        + "below transfer_min_rate (\(transfers.minBytesPerSecond) bytes/s) after transfer_timeout (\(DurationParsing.format(transfers.minimum)))"
      failure = (.vault, "snapshot download abandoned: \(reason)")
      verifier.cancel()
      return reason
    }
    if received >= nextSpaceCheck {
      nextSpaceCheck = received + (64 << 20)
      if let free = FileAccess.freeBytes(path: directory), free < minFree {
        failure = (.space, "free space in \(directory) fell below min_free_space while writing: snapshot abandoned")
        verifier.cancel()
        return "free space below min_free_space"
      }
    }
    progress?(received)
    return nil
  }

  /// Waits (suspended, not blocking) for the verifier thread to check what is still queued.
  func finish() async throws(SnapshotVerificationError) -> SnapshotFacts {
    try await verifier.finish()
  }

  /// Seals the final age chunk (when encrypting), then makes the file durable under `name`.
  func commit(as name: String) throws(SnapshotFileWriter.Failure) -> String {
    try encryptor?.finish { (sealed) throws(SnapshotFileWriter.Failure) in try writer.write(sealed) }
    return try writer.commit(as: name)
  }
}
