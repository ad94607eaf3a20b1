// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One snapshot's way from Vault to its places, the same for the scheduled duty and
/// `vaultkeeper snapshot now`: take (download, verify, commit: `SnapshotTaker`), then local
/// retention, then, with `[snapshot.s3]`, the upload and remote retention. The callers differ
/// only in what they do around it: the duty reports and keeps its ledger, and uploads from a
/// task of its own (`SnapshotUploads`, so a slow bucket never delays the schedule); the command
/// prints and uploads at once.
public struct SnapshotPipeline: Sendable {
  public var config: SnapshotConfig
  public var taker: SnapshotTaker
  public var clock: any NodeClock

  public init(
    config: SnapshotConfig, node: NodeConfig, peers: [NodeConfig], makeTransport: @escaping @Sendable (NodeConfig) -> any HTTPTransport,
    makeDecompressor: @escaping @Sendable () throws(SnapshotVerificationError) -> any StreamDecompressor, clock: any NodeClock = SystemNodeClock()
  ) {
    self.config = config
    var taker = SnapshotTaker(config: config, node: node, makeTransport: makeTransport, makeDecompressor: makeDecompressor)
    taker.peers = peers  // where a standby's redirect may lead
    taker.clock = clock
    self.taker = taker
    self.clock = clock
  }

  /// A snapshot committed and the directory pruned.
  public struct Taken: Sendable {
    public var outcome: SnapshotTaker.Outcome
    public var fileName: String
    /// The time in the file's name: what the ledger records, so the ledger and the directory
    /// agree after a restart.
    public var time: Date
    public var retention: SnapshotDirectory.Outcome
  }

  /// Takes one snapshot, then applies local retention: only this cluster's files count (the
  /// cluster's name as in the file name, `vault` when Vault did not name it), the one just
  /// written is kept whatever the policy says, and names dated in the future are neither
  /// counted nor deleted (they come back in `retention.future`, to be reported).
  /// - Parameter progress: called on the transfer thread with the bytes received so far.
  public func take(clusterName: String?, tokens: TokenKeeper, progress: (@Sendable (Int64) -> Void)? = nil) async throws(SnapshotError) -> Taken {
    let outcome = try await taker.take(clusterName: clusterName, tokens: tokens, progress: progress)
    let fileName = String(outcome.path.split(separator: "/").last ?? Substring(outcome.path))
    let now = Date(timeIntervalSince1970: clock.now().wall)
    let time = SnapshotName(fileName: fileName)?.time ?? now
    let directory = config.directory
    let policy = config.retention
    let cluster = clusterName ?? "vault"
    // Unlinks and a directory fsync: off the cooperative pool.
    let retention = await OffPool.run {
      SnapshotDirectory.applyRetention(policy, directory: directory, now: now, cluster: cluster, justWritten: fileName)
    }
    return Taken(outcome: outcome, fileName: fileName, time: time, retention: retention)
  }

  /// Uploads one local snapshot and checks it in the bucket (size, ETag); the local file stays
  /// whatever happens.
  public func upload(_ path: String, with uploader: SnapshotUploader, cluster: SnapshotCluster) async throws(SnapshotError) -> UploadReceipt {
    let fileName = String(path.split(separator: "/").last ?? Substring(path))
    return try await uploader.upload(path: path, fileName: fileName, cluster: cluster)
  }

  /// As `upload(_:with:cluster:)`, from a file already open (the duty opens each before its
  /// upload, so local retention may unlink it meanwhile without cutting the upload short).
  public func upload(_ source: UploadSource, fileName: String, with uploader: SnapshotUploader, cluster: SnapshotCluster) async throws(SnapshotError)
    -> UploadReceipt
  {
    try await uploader.upload(source, fileName: fileName, cluster: cluster)
  }

  /// Remote retention over this cluster's objects; `protecting` (just uploaded) is kept.
  public func applyRemoteRetention(
    with uploader: SnapshotUploader, cluster: SnapshotCluster, protecting: Set<String>, beforeRequest: @Sendable () -> Void = {}
  ) async throws(SnapshotError) -> SnapshotUploader.RetentionOutcome {
    try await uploader.applyRetention(
      now: Date(timeIntervalSince1970: clock.now().wall), cluster: cluster, protecting: protecting, beforeRequest: beforeRequest)
  }
}
