// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// What a finished, checked upload left in the bucket.
public struct UploadReceipt: Sendable, Equatable {
  public var key: String
  /// `s3://BUCKET/KEY`, for messages.
  public var location: String
  public var bytes: Int64
  /// As S3 reported it after the upload (and compared with ours unless `verify_etag = false`).
  public var etag: String
  public var sha256: String
  /// 0 for a single PUT.
  public var parts: Int
  public var duration: Duration
}

/// Uploads committed local snapshots to `[snapshot.s3]` and applies retention there.
///
/// An upload counts as done only when a HEAD afterwards shows the object with the file's size
/// and, unless `verify_etag = false`, the ETag S3 computes from the bytes it stored (the MD5, or
/// the multipart form; after a multipart upload the whole file's MD5 counts too). Each request
/// also carries Content-MD5, so AWS, MinIO and Ceph RGW reject bytes damaged in transit outright.
/// An object failing the check is deleted again.
///
/// Credentials are read and a transport (its own thread) made for every call, and released after.
public struct SnapshotUploader: Sendable {
  /// An open store and how to release it.
  public struct Session: Sendable {
    public var store: any ObjectStore
    public var close: @Sendable () -> Void

    public init(store: any ObjectStore, close: @escaping @Sendable () -> Void) {
      self.store = store
      self.close = close
    }
  }

  public var config: S3Config
  let openSession: @Sendable () throws(SnapshotError) -> Session

  /// The daemon's and the CLI's way: S3 REST over `makeTransport` (libcurl).
  public init(config: S3Config, environment: [String: String], makeTransport: @escaping @Sendable (S3Config, S3Credentials) -> any ObjectTransport) {
    self.config = config
    self.openSession = { () throws(SnapshotError) in
      let transport = makeTransport(config, try S3Credentials.load(config, environment: environment))
      return Session(store: S3Client(transport: transport), close: { transport.shutdown() })
    }
  }

  /// Over any store (tests).
  public init(config: S3Config, openSession: @escaping @Sendable () throws(SnapshotError) -> Session) {
    self.config = config
    self.openSession = openSession
  }

  public func key(for fileName: String) -> String { config.prefix + fileName }

  /// Uploads the snapshot at `path` as `prefix + fileName` and checks it (see `upload(_:…)`).
  public func upload(path: String, fileName: String, cluster: SnapshotCluster? = nil) async throws(SnapshotError) -> UploadReceipt {
    switch UploadSource.open(path) {
    case .success(let source): return try await upload(source, fileName: fileName, cluster: cluster)
    case .failure(let failure):
      throw SnapshotError(.upload, "upload to s3://\(config.bucket)/\(key(for: fileName)) failed: \(failure.message)")
    }
  }

  /// Uploads the open snapshot `source` as `prefix + fileName` and checks it. With `cluster`,
  /// the object records the cluster's ID (`x-amz-meta-vaultkeeper-cluster-id`): remote
  /// retention and the catch-up of missing uploads count only objects that carry this
  /// cluster's ID.
  ///
  /// The digest (size, MD5s, SHA-256) is computed from `source`'s descriptor and the bytes are
  /// sent from that same descriptor: the path is never opened again, so a file local retention
  /// unlinks (or anyone replaces) meanwhile is still uploaded whole, exactly as digested.
  ///
  /// Every request is bounded: a body of N bytes by `config.transfers.deadline(bytes: N)` (the
  /// transport's total timeout), everything else by `config.timeout`; `budget(bytes:)` is
  /// their sum, the longest the whole upload can take.
  public func upload(_ source: UploadSource, fileName: String, cluster: SnapshotCluster? = nil) async throws(SnapshotError) -> UploadReceipt {
    guard !fileName.isEmpty, !fileName.contains("/") else { throw SnapshotError(.upload, "\"\(fileName)\" is not a file name") }
    let started = ContinuousClock.now
    let key = key(for: fileName)
    let location = "s3://\(config.bucket)/\(key)"
    let digest = try await digest(source, location: location)
    let session = try openSession()
    defer { session.close() }
    let store = session.store
    var metadata = ["vaultkeeper-sha256": digest.sha256Hex]
    if let cluster { metadata[SnapshotCluster.idMetadataKey] = cluster.id }
    do throws(ObjectStoreError) {
      if digest.partMD5s.isEmpty {
        try await store.put(key: key, file: source.slice(offset: 0, length: digest.size), contentMD5: digest.md5, metadata: metadata)
      } else {
        try await multipart(store, key: key, source: source, digest: digest, metadata: metadata)
      }
    } catch {
      throw SnapshotError(.upload, "upload to \(location) failed: \(error.message)")
    }
    let etag = try await check(store, key: key, location: location, digest: digest, cluster: cluster)
    return UploadReceipt(
      key: key, location: location, bytes: digest.size, etag: etag, sha256: digest.sha256Hex, parts: digest.partMD5s.count,
      duration: started.duration(to: .now))
  }

  /// Our snapshots in the bucket, newest first.
  public func list() async throws(SnapshotError) -> [RemoteSnapshot] {
    let session = try openSession()
    defer { session.close() }
    do {
      return RemoteSnapshots.ours(try await session.store.list(prefix: config.prefix), prefix: config.prefix)
    } catch {
      throw SnapshotError(.remoteRetention, "cannot list s3://\(config.bucket)/\(config.prefix): \(error.message)")
    }
  }

  /// The longest an upload of `bytes` bytes can take: the transfer deadline of each body (one,
  /// or one per part), plus the small requests around them (HEAD, and for multipart the
  /// start, the completion and an abort), each bounded by `config.timeout`. Past it, the
  /// upload has hung somewhere no timeout reaches, and the duty's heartbeat lapses.
  public func budget(bytes: Int64) -> Duration {
    let transfers = config.transfers
    guard bytes > config.multipartThreshold else { return transfers.deadline(bytes: bytes) + config.timeout * 2 }
    let part = partSize(for: bytes)
    let full = bytes / part
    let rest = bytes % part
    var total = transfers.deadline(bytes: part) * Int(full) + (rest > 0 ? transfers.deadline(bytes: rest) : .zero)
    total += transfers.minimum + config.timeout * 4  // completion (a transfer), start, HEAD, abort
    return total
  }

  /// What the bucket holds of this cluster's snapshots.
  public struct RemoteView: Sendable, Equatable {
    /// This cluster's, newest first: named for it and carrying its cluster ID.
    public var ours: [RemoteSnapshot]
    /// Named for this cluster but without its ID: another cluster of the same name sharing the
    /// prefix, a copy put there by hand, or a forgery. Never counted, never deleted.
    public var others: [RemoteSnapshot]
  }

  /// Lists the prefix and asks (HEAD) each object named for this cluster which cluster
  /// uploaded it: a listing does not carry object metadata.
  /// - Parameter beforeRequest: called before each request (each bounded by `config.timeout`),
  ///   to renew a heartbeat promise.
  public func view(of cluster: SnapshotCluster, beforeRequest: @Sendable () -> Void = {}) async throws(SnapshotError) -> RemoteView {
    let session = try openSession()
    defer { session.close() }
    return try await view(of: cluster, in: session.store, beforeRequest: beforeRequest)
  }

  private func view(of cluster: SnapshotCluster, in store: any ObjectStore, beforeRequest: @Sendable () -> Void) async throws(SnapshotError) -> RemoteView {
    let location = "s3://\(config.bucket)/\(config.prefix)"
    var candidates: [RemoteSnapshot]
    do {
      // Each page is a request of its own, bounded by `config.timeout`: each renews the promise.
      candidates = RemoteSnapshots.ours(try await store.list(prefix: config.prefix, beforePage: beforeRequest), prefix: config.prefix)
    } catch {
      throw SnapshotError(.remoteRetention, "cannot list \(location): \(error.message)")
    }
    candidates = candidates.filter { $0.name.cluster == cluster.name }
    for index in candidates.indices {
      beforeRequest()
      do {
        candidates[index].clusterID = try await store.head(key: candidates[index].key)?.metadata[SnapshotCluster.idMetadataKey]
      } catch {
        throw SnapshotError(.remoteRetention, "cannot check s3://\(config.bucket)/\(candidates[index].key): \(error.message)")
      }
    }
    let split = RemoteSnapshots.attributed(candidates, to: cluster)
    return RemoteView(ours: split.ours, others: split.others)
  }

  /// What remote retention did.
  public struct RetentionOutcome: Sendable, Equatable {
    public var deleted: [RemoteDeletion]
    /// This cluster's keys dated in the future: kept, not counted, to be reported.
    public var future: [String]
    /// Keys named for this cluster without its ID (see `RemoteView.others`).
    public var others: [String]
  }

  /// Deletes what the remote retention policy no longer keeps among this cluster's snapshots
  /// (`view(of:)`), never the newest, never one in `protecting`, never one dated in the future.
  /// Throws if any deletion failed (after trying all).
  public func applyRetention(now: Date, cluster: SnapshotCluster, protecting: Set<String>, beforeRequest: @Sendable () -> Void = {}) async throws(SnapshotError)
    -> RetentionOutcome
  {
    let session = try openSession()
    defer { session.close() }
    let view = try await view(of: cluster, in: session.store, beforeRequest: beforeRequest)
    let plan = RemoteSnapshots.plan(view.ours, policy: config.retention, now: now, protecting: protecting)
    let deleted = try await delete(plan.deletions, from: session.store, beforeRequest: beforeRequest)
    return RetentionOutcome(deleted: deleted, future: plan.future, others: view.others.map(\.key))
  }

  private func delete(_ planned: [RemoteDeletion], from store: any ObjectStore, beforeRequest: @Sendable () -> Void = {}) async throws(SnapshotError)
    -> [RemoteDeletion]
  {
    var deleted: [RemoteDeletion] = []
    var failures: [String] = []
    for deletion in planned {
      beforeRequest()
      do {
        try await store.delete(key: deletion.key)
        deleted.append(deletion)
      } catch {
        failures.append(error.message)
      }
    }
    if let first = failures.first {
      throw SnapshotError(.remoteRetention, "deleted \(deleted.count) of \(planned.count) old remote snapshots; \(failures.count) could not be deleted, the first: \(first)")
    }
    return deleted
  }

  /// Part size for `size` bytes: the configured one, grown when S3's 10,000-part limit needs it.
  func partSize(for size: Int64) -> Int64 {
    let minimum = (size + 9_999) / 10_000
    let mib: Int64 = 1 << 20
    return max(config.partSize, (minimum + mib - 1) / mib * mib)
  }

  private func digest(_ source: UploadSource, location: String) async throws(SnapshotError) -> FileDigest {
    let size = source.size
    let parts: Int64? = size > config.multipartThreshold ? partSize(for: size) : nil
    // Hashing gigabytes takes seconds: never on the cooperative pool.
    let result: Result<FileDigest, FileDigest.Failure> = await OffPool.run {
      do throws(FileDigest.Failure) {
        return .success(try FileDigest.compute(descriptor: source.descriptor, name: source.path, partSize: parts))
      } catch {
        return .failure(error)
      }
    }
    switch result {
    case .success(let digest): return digest
    case .failure(let failure): throw SnapshotError(.upload, "upload to \(location) failed: \(failure.message)")
    }
  }

  private func multipart(_ store: any ObjectStore, key: String, source: UploadSource, digest: FileDigest, metadata: [String: String]) async throws(ObjectStoreError) {
    let uploadID = try await store.createMultipartUpload(key: key, metadata: metadata)
    do throws(ObjectStoreError) {
      var parts: [(number: Int, etag: String)] = []
      for (index, md5) in digest.partMD5s.enumerated() {
        let offset = Int64(index) * digest.partSize
        let slice = source.slice(offset: offset, length: min(digest.partSize, digest.size - offset))
        let etag = try await store.uploadPart(key: key, uploadID: uploadID, number: index + 1, file: slice, contentMD5: md5)
        parts.append((index + 1, etag))
      }
      try await store.completeMultipartUpload(key: key, uploadID: uploadID, parts: parts)
    } catch {
      // Unfinished parts are billed until aborted. Best effort: the original error is the news.
      try? await store.abortMultipartUpload(key: key, uploadID: uploadID)
      throw error
    }
  }

  /// HEAD after the upload: the object is there, with our size, checksum and cluster ID; else it goes.
  private func check(_ store: any ObjectStore, key: String, location: String, digest: FileDigest, cluster: SnapshotCluster?) async throws(SnapshotError) -> String {
    let head: ObjectInfo?
    do {
      head = try await store.head(key: key)
    } catch {
      throw SnapshotError(.upload, "uploaded \(location) but could not check it: \(error.message)")
    }
    guard let head else { throw SnapshotError(.upload, "uploaded \(location) but it is not there afterwards") }
    let etag = head.etag ?? ""
    var problem: String?
    if head.size != digest.size {
      problem = "the bucket holds \(head.size) bytes, the file has \(digest.size)"
    } else if config.verifyETag && !digest.acceptedETags.contains(etag) {
      let expected = digest.acceptedETags.joined(separator: " or ")
      problem = "its ETag is \(etag.isEmpty ? "missing" : etag), expected \(expected) from the file's MD5 (set verify_etag = false for SSE-KMS/SSE-C buckets)"
    } else if let stored = head.metadata["vaultkeeper-sha256"], stored.lowercased() != digest.sha256Hex {
      problem = "its recorded SHA-256 is \(stored), the file's is \(digest.sha256Hex)"
    } else if let cluster, head.metadata[SnapshotCluster.idMetadataKey] != cluster.id {
      // Without it the object is not counted as ours, and every run would upload it again.
      problem = "the bucket did not keep its x-amz-meta-\(SnapshotCluster.idMetadataKey) metadata"
    }
    if let problem {
      // A bad copy must not count as the newest remote snapshot (retention would protect it).
      var outcome = "the object was deleted"
      do {
        try await store.delete(key: key)
      } catch {
        outcome = "deleting the object failed too: \(error.message)"
      }
      throw SnapshotError(.upload, "uploaded \(location) failed its check: \(problem); \(outcome)")
    }
    return etag
  }
}

/// A local snapshot opened once for its upload: digested and sent from this one descriptor
/// (`FileSlice(descriptor:)`), never reopened by path. Local retention may unlink the file
/// while it is uploaded; the open descriptor keeps its bytes until the upload has returned.
/// Closed when the last reference goes.
public final class UploadSource: Sendable {
  /// The path it was opened under: for messages only.
  public let path: String
  let descriptor: Int32
  /// From `fstat` at open: a committed snapshot never changes size.
  public let size: Int64

  public struct Failure: Error, Sendable, Equatable {
    public var message: String
    /// The file was not there (ENOENT): removed, e.g. by local retention, before it was opened.
    public var gone: Bool
  }

  private init(path: String, descriptor: Int32, size: Int64) {
    self.path = path
    self.descriptor = descriptor
    self.size = size
  }

  deinit { close(descriptor) }

  /// Opens `path` for reading; a regular file only.
  public static func open(_ path: String) -> Result<UploadSource, Failure> {
    let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
    guard fd >= 0 else {
      let code = errno
      return .failure(Failure(message: "cannot open \(path): \(String(cString: strerror(code)))", gone: code == ENOENT))
    }
    var info = stat()
    guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
      close(fd)
      return .failure(Failure(message: "\(path) is not a readable file", gone: false))
    }
    return .success(UploadSource(path: path, descriptor: fd, size: Int64(info.st_size)))
  }

  /// A byte range of this file, read from the descriptor (the transport reads a duplicate of it).
  func slice(offset: Int64, length: Int64) -> FileSlice {
    FileSlice(descriptor: descriptor, name: path, offset: offset, length: length)
  }
}
