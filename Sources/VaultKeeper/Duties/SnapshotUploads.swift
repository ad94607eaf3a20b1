// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging

/// The upload half of the snapshot duty (`[snapshot.s3]`), beside the schedule rather than
/// after each snapshot. A pass holds the duty's work lock (`SnapshotWorkLock`) shared, like a
/// snapshot: the two run beside each other, so a slow peer never delays the next local snapshot
/// or the freshness judgement, and neither runs beside a restore drill.
///
/// A run compares the bucket with the directory and uploads, newest first, every verified local
/// snapshot of this cluster that the bucket lacks (`RemoteSnapshots.missing`), then applies
/// remote retention. Runs start when the generation starts (so an upload cut short by a reload
/// or a restart is made up at once), after each local snapshot, and hourly. Every request has
/// a deadline (`TransferDeadline` for bodies, `[snapshot.s3] timeout` for the rest), and the
/// heartbeat is promised for exactly that long: an upload that outlives its budget stops the
/// watchdog pings.
final class SnapshotUploads: Sendable {
  static let heartbeat = "snapshot-upload"
  /// Without a local snapshot to ring it, the bucket is compared with the directory this often.
  static let catchUpInterval = Duration.seconds(3600)
  /// How often a run that is due waits for the node to become active.
  static let waitingRecheck = Duration.seconds(5)

  let context: SnapshotDuty.Context
  let s3: S3Config
  let status: SnapshotDutyStatus
  private let doorbell = Doorbell()

  init(context: SnapshotDuty.Context, s3: S3Config, status: SnapshotDutyStatus) {
    self.context = context
    self.s3 = s3
    self.status = status
  }

  /// A local snapshot was committed: run as soon as the current run (if any) is over.
  func ring() { doorbell.ring() }

  func run() async {
    defer { context.heartbeats.retire(Self.heartbeat) }
    while !Task.isCancelled {
      // Only the active node's vaultkeeper uploads (as only it snapshots); the others wait.
      guard case .take = SnapshotPlan.role(localState: await context.board.state(of: context.node.name)) else {
        await doorbell.wait(for: Self.waitingRecheck)
        continue
      }
      // Retired while waiting for the lock: its holder (a drill) keeps its own promise.
      context.heartbeats.retire(Self.heartbeat)
      _ = await context.workLock.shared { await self.runOnce() }
      context.heartbeats.retire(Self.heartbeat)
      await doorbell.wait(for: Self.catchUpInterval)
    }
  }

  private var logger: Logger { context.logger }

  /// The promise renewed before each small request (every listing page, HEAD and DELETE): that
  /// request's own deadline, `[snapshot.s3] timeout`, plus a margin. A listing of many pages
  /// renews it per page, so a long but progressing listing never lapses, and one page that
  /// hangs past its deadline does.
  static func beat(_ heartbeats: Heartbeats, timeout: Duration) -> @Sendable () -> Void {
    { heartbeats.promise(Self.heartbeat, within: timeout + .seconds(30)) }
  }

  /// This cluster as the node's health answer names it; nil until it is known.
  private func cluster() async -> SnapshotCluster? {
    let report = await context.board.snapshot()
    guard let node = report.nodes.first(where: { $0.address == context.node.name }), let id = node.clusterID, !id.isEmpty else { return nil }
    return SnapshotCluster(name: node.clusterName ?? "vault", id: id)
  }

  private func runOnce() async {
    guard let cluster = await cluster() else {
      logger.notice("snapshot uploads wait: the node's health answer has not named its cluster ID yet")
      return
    }
    let heartbeats = context.heartbeats
    let beat = Self.beat(heartbeats, timeout: s3.timeout)
    let uploader = SnapshotUploader(config: s3, environment: context.environment, makeTransport: context.makeObjectTransport)
    let pipeline = context.pipeline
    let directory = context.config.directory
    let now = Date(timeIntervalSince1970: context.clock.now().wall)
    let local = await OffPool.run { SnapshotDirectory.list(directory) }
      .filter { $0.name.cluster == cluster.name && !RetentionPolicy.isFuture($0.name.time, now: now) }
    guard let newest = local.max(by: { $0.name < $1.name }) else { return }
    let newestPath = "\(directory)/\(newest.name.fileName)"

    let view: SnapshotUploader.RemoteView
    do {
      view = try await uploader.view(of: cluster, beforeRequest: beat)
    } catch {
      if !Task.isCancelled { failed(error, path: newestPath) }
      return
    }
    report(others: view.others.map(\.key))
    let missing = RemoteSnapshots.missing(local: local, remote: view.ours, prefix: s3.prefix, policy: s3.retention, now: now)
    var uploaded: Set<String> = []
    for entry in missing {
      let path = "\(directory)/\(entry.name.fileName)"
      // Opened once: digested and sent from this descriptor, so local retention (which runs
      // beside the uploads) may unlink the file meanwhile without cutting or changing the upload.
      let source: UploadSource
      switch UploadSource.open(path) {
      case .success(let opened): source = opened
      case .failure(let failure) where failure.gone:
        logger.notice("\(path) was not uploaded: it was removed (by local retention) before its upload began")
        continue
      case .failure(let failure):
        failed(SnapshotError(.upload, "upload to s3://\(s3.bucket)/\(uploader.key(for: entry.name.fileName)) failed: \(failure.message)"), path: path)
        await status.publish()
        return
      }
      heartbeats.promise(Self.heartbeat, within: uploader.budget(bytes: source.size) + .seconds(30))
      status.update { $0.report.uploading = true }
      await status.publish()
      let result: Result<UploadReceipt, SnapshotError>
      do throws(SnapshotError) {
        result = .success(try await pipeline.upload(source, fileName: entry.name.fileName, with: uploader, cluster: cluster))
      } catch {
        result = .failure(error)
      }
      status.update { $0.report.uploading = false }
      if Task.isCancelled {
        logger.notice("upload of \(path) interrupted: vaultkeeper is stopping or reloading; the next run uploads it")
        return
      }
      switch result {
      case .success(let receipt):
        uploaded.insert(receipt.key)
        status.update { [wall = context.clock.now().wall] in $0.report.lastUpload = wall }
        let late = entry.name != newest.name ? "; it was missing from the bucket" : ""
        logger.info(
          "snapshot uploaded to \(receipt.location) (\(receipt.bytes) bytes\(receipt.parts > 0 ? " in \(receipt.parts) parts" : ""), checked)\(late)",
          metadata: ["message_id": "\(MessageID.snapshotUploaded.rawValue)", "snapshot.object": "\(receipt.location)", "snapshot.file": "\(path)"])
        await status.publish()
      case .failure(let error):
        // The rest waits for the next run: a peer too slow for this one is too slow for older ones.
        failed(error, path: path)
        await status.publish()
        return
      }
    }
    let pruned: Result<SnapshotUploader.RetentionOutcome, SnapshotError>
    do throws(SnapshotError) {
      pruned = .success(try await pipeline.applyRemoteRetention(with: uploader, cluster: cluster, protecting: uploaded, beforeRequest: beat))
    } catch {
      pruned = .failure(error)
    }
    switch pruned {
    case .success(let outcome):
      for deletion in outcome.deleted {
        status.update { $0.report.retentionDeleted += 1 }
        logger.info(
          "retention deleted s3://\(s3.bucket)/\(deletion.key): \(deletion.reason)",
          metadata: ["message_id": "\(MessageID.snapshotRetentionDeleted.rawValue)", "snapshot.object": "s3://\(s3.bucket)/\(deletion.key)"])
      }
      report(future: outcome.future)
      report(others: outcome.others)
    case .failure(let error):
      if !Task.isCancelled { logger.warning("remote retention in s3://\(s3.bucket)/\(s3.prefix) failed: \(error.message)") }
    }
    await status.publish()
  }

  private func failed(_ error: SnapshotError, path: String) {
    status.update { [wall = context.clock.now().wall] s in
      s.report.uploadFailures += 1
      s.report.lastUploadFailure = wall
      s.report.lastUploadFailureReason = error.message
      s.report.failures[SnapshotError.Reason.upload.rawValue, default: 0] += 1
    }
    logger.error(
      "snapshot upload failed: \(error.message) (the local snapshot \(path) is kept; the next run uploads what the bucket lacks)",
      metadata: ["message_id": "\(MessageID.snapshotUploadFailed.rawValue)", "snapshot.file": "\(path)", "snapshot.reason": "\(error.reason.rawValue)"])
  }

  /// Keys of this cluster dated in the future: an object someone else put there (the bucket's
  /// policy lets them write), or one uploaded while the clock was ahead. Never counted, never
  /// deleted; each reported once.
  private func report(future keys: [String]) {
    let fresh = status.update { s -> [String] in
      let new = keys.filter { !s.futureRemote.contains($0) }
      s.futureRemote = Set(keys)
      s.report.futureDated = s.futureLocal.count + s.futureRemote.count
      return new
    }
    for key in fresh {
      logger.warning(
        "s3://\(s3.bucket)/\(key) is dated in the future: it does not count as the newest snapshot and is never deleted by retention; check who wrote it, and delete it by hand",
        metadata: ["message_id": "\(MessageID.snapshotFutureDated.rawValue)", "snapshot.object": "s3://\(s3.bucket)/\(key)"])
    }
  }

  /// Keys named for this cluster that do not carry its cluster ID; reported once each.
  private func report(others keys: [String]) {
    let fresh = status.update { s -> [String] in
      let new = keys.filter { !s.othersRemote.contains($0) }
      s.othersRemote.formUnion(keys)
      return new
    }
    guard let first = fresh.first else { return }
    let more = fresh.count > 1 ? " and \(fresh.count - 1) more" : ""
    logger.notice(
      "s3://\(s3.bucket)/\(first)\(more) carry this cluster's name but not its cluster ID (another cluster of the same name, or a copy made by hand): retention leaves them alone")
  }
}
