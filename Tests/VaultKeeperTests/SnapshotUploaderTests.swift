// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
import Testing
@testable import VaultKeeper

/// An in-memory bucket that stores sizes and ETags computed like S3, with switches for faults.
final class FakeObjectStore: ObjectStore, @unchecked Sendable {
  struct State {
    var objects: [String: ObjectInfo] = [:]
    var calls: [String] = []
    var openUploads: [String: [Int: (size: Int64, md5: [UInt8])]] = [:]
    /// Faults: what HEAD reports differently, and a part number that fails.
    var headSizeDelta: Int64 = 0
    var headETag: String?
    var failPart: Int?
  }
  let state = Mutex(State())

  func put(key: String, file: FileSlice, contentMD5: [UInt8], metadata: [String: String]) async throws(ObjectStoreError) {
    state.withLock {
      $0.calls.append("put \(key)")
      $0.objects[key] = ObjectInfo(key: key, size: file.length, etag: FileDigest.hex(contentMD5), metadata: metadata)
    }
  }

  func head(key: String) async throws(ObjectStoreError) -> ObjectInfo? {
    state.withLock { s in
      s.calls.append("head \(key)")
      guard var info = s.objects[key] else { return nil }
      info.size += s.headSizeDelta
      if let etag = s.headETag { info.etag = etag }
      return info
    }
  }

  func list(prefix: String) async throws(ObjectStoreError) -> [ObjectInfo] {
    state.withLock { s in
      s.calls.append("list \(prefix)")
      return s.objects.values.filter { $0.key.hasPrefix(prefix) }.sorted { $0.key < $1.key }
    }
  }

  func delete(key: String) async throws(ObjectStoreError) {
    _ = state.withLock { s in
      s.calls.append("delete \(key)")
      return s.objects.removeValue(forKey: key)
    }
  }

  func createMultipartUpload(key: String, metadata: [String: String]) async throws(ObjectStoreError) -> String {
    state.withLock {
      $0.calls.append("create \(key)")
      $0.openUploads["u1"] = [:]
    }
    return "u1"
  }

  func uploadPart(key: String, uploadID: String, number: Int, file: FileSlice, contentMD5: [UInt8]) async throws(ObjectStoreError) -> String {
    let failed = state.withLock { s -> Bool in
      s.calls.append("part \(number) @\(file.offset)+\(file.length)")
      if s.failPart == number { return true }
      s.openUploads[uploadID]?[number] = (file.length, contentMD5)
      return false
    }
    if failed { throw ObjectStoreError(.http(status: 500, code: "InternalError"), "part \(number) failed: HTTP 500") }
    return FileDigest.hex(contentMD5)
  }

  func completeMultipartUpload(key: String, uploadID: String, parts: [(number: Int, etag: String)]) async throws(ObjectStoreError) {
    state.withLock { s in
      s.calls.append("complete \(parts.map(\.number))")
      let stored = (s.openUploads.removeValue(forKey: uploadID) ?? [:]).sorted { $0.key < $1.key }
      let digest = FileDigest(
        size: stored.reduce(0) { $0 + $1.value.size }, md5: [], sha256: [], partMD5s: stored.map(\.value.md5), partSize: 0)
      s.objects[key] = ObjectInfo(key: key, size: digest.size, etag: digest.expectedETag)
    }
  }

  func abortMultipartUpload(key: String, uploadID: String) async throws(ObjectStoreError) {
    state.withLock {
      $0.calls.append("abort \(uploadID)")
      $0.openUploads[uploadID] = nil
    }
  }
}

@Suite struct SnapshotUploaderTests {
  let directory: String
  let path: String
  let fileName = "vaultkeeper-prod-20260101T000000Z-42.snap"

  init() throws {
    directory = NSTemporaryDirectory() + "vk-s3-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    path = directory + "/" + fileName
    // 12 MiB + 3 bytes, not a multiple of the part size.
    var data = Data(count: (12 << 20) + 3)
    data.withUnsafeMutableBytes { raw in for i in 0..<raw.count { raw[i] = UInt8(truncatingIfNeeded: i &* 31 &+ i >> 13) } }
    try data.write(to: URL(fileURLWithPath: path))
  }

  func config(threshold: Int64 = 256 << 20, verifyETag: Bool = true, retention: RetentionPolicy = RetentionPolicy(keepLast: 2)) -> S3Config {
    guard case .success(let endpoint) = S3Endpoint.parse("https://s3.example.com") else { preconditionFailure() }
    return S3Config(
      endpoint: endpoint, region: "eu-central-1", bucket: "b", prefix: "vk/", pathStyle: false, accessKeyID: .credential("a"),
      secretAccessKey: .credential("s"), caFile: nil, timeout: .seconds(30), retention: retention, ownRetention: false, verifyETag: verifyETag,
      multipartThreshold: threshold, partSize: 5 << 20)
  }

  func uploader(_ store: FakeObjectStore, _ config: S3Config) -> SnapshotUploader {
    SnapshotUploader(config: config) { () throws(SnapshotError) in SnapshotUploader.Session(store: store, close: {}) }
  }

  @Test func singlePutIsCheckedAfterwards() async throws {
    let store = FakeObjectStore()
    let receipt = try await uploader(store, config()).upload(path: path, fileName: fileName)
    #expect(receipt.key == "vk/" + fileName && receipt.location == "s3://b/vk/" + fileName)
    #expect(receipt.bytes == (12 << 20) + 3 && receipt.parts == 0)
    #expect(store.state.withLock { $0.calls } == ["put vk/" + fileName, "head vk/" + fileName])
    #expect(store.state.withLock { $0.objects["vk/" + fileName]?.metadata["vaultkeeper-sha256"] } == receipt.sha256)
  }

  @Test func multipartAboveTheThresholdInPartsOfPartSize() async throws {
    let store = FakeObjectStore()
    let receipt = try await uploader(store, config(threshold: 5 << 20)).upload(path: path, fileName: fileName)
    #expect(receipt.parts == 3 && receipt.etag.hasSuffix("-3"))
    #expect(store.state.withLock { $0.calls } == [
      "create vk/" + fileName, "part 1 @0+5242880", "part 2 @5242880+5242880", "part 3 @10485760+2097155", "complete [1, 2, 3]",
      "head vk/" + fileName,
    ])
  }

  @Test func aFailedPartAbortsTheUpload() async {
    let store = FakeObjectStore()
    store.state.withLock { $0.failPart = 2 }
    do throws(SnapshotError) {
      _ = try await uploader(store, config(threshold: 5 << 20)).upload(path: path, fileName: fileName)
      Issue.record("upload succeeded")
    } catch {
      #expect(error.reason == .upload && error.message.contains("part 2 failed"))
    }
    #expect(store.state.withLock { $0.calls.last } == "abort u1")
    #expect(store.state.withLock { $0.objects.isEmpty && $0.openUploads.isEmpty })
  }

  @Test func aShortObjectIsDetectedAndDeleted() async {
    let store = FakeObjectStore()
    store.state.withLock { $0.headSizeDelta = -1 }
    do throws(SnapshotError) {
      _ = try await uploader(store, config()).upload(path: path, fileName: fileName)
      Issue.record("a short object passed")
    } catch {
      #expect(error.reason == .upload && error.message.contains("the bucket holds 12582914 bytes, the file has 12582915"))
    }
    #expect(store.state.withLock { $0.objects.isEmpty })
  }

  @Test func aWrongChecksumIsDetectedUnlessETagsAreNotMD5s() async throws {
    let store = FakeObjectStore()
    store.state.withLock { $0.headETag = "0123456789abcdef0123456789abcdef" }
    do throws(SnapshotError) {
      _ = try await uploader(store, config()).upload(path: path, fileName: fileName)
      Issue.record("a wrong ETag passed")
    } catch {
      #expect(error.message.contains("its ETag is 0123456789abcdef0123456789abcdef") && error.message.contains("verify_etag"))
    }
    // SSE-KMS buckets: size (and the server's own Content-MD5 check) only.
    let receipt = try await uploader(store, config(verifyETag: false)).upload(path: path, fileName: fileName)
    #expect(receipt.etag == "0123456789abcdef0123456789abcdef")
  }

  @Test func aMultipartObjectMayReportTheWholeFilesMD5() async throws {
    // rclone serve s3 reports every object's MD5, also after a multipart upload.
    let wholeMD5 = try FileDigest.compute(path: path, partSize: nil).expectedETag
    let store = FakeObjectStore()
    store.state.withLock { $0.headETag = wholeMD5 }
    let receipt = try await uploader(store, config(threshold: 5 << 20)).upload(path: path, fileName: fileName)
    #expect(receipt.parts == 3 && receipt.etag == wholeMD5)
    // Any other ETag still fails, and the message names both forms.
    store.state.withLock { $0.headETag = "0123456789abcdef0123456789abcdef" }
    do throws(SnapshotError) {
      _ = try await uploader(store, config(threshold: 5 << 20)).upload(path: path, fileName: fileName)
      Issue.record("a wrong ETag passed")
    } catch {
      #expect(error.message.contains("its ETag is 0123456789abcdef0123456789abcdef, expected ") && error.message.contains("-3 or \(wholeMD5) from"))
    }
    #expect(store.state.withLock { $0.objects.isEmpty })
  }

  @Test func fileNamesMustBePlain() async {
    await #expect(throws: SnapshotError.self) { _ = try await uploader(FakeObjectStore(), config()).upload(path: path, fileName: "../x") }
  }

  @Test func partsGrowBeyondTenThousand() {
    let u = uploader(FakeObjectStore(), config())
    #expect(u.partSize(for: 100 << 20) == 5 << 20)
    #expect(u.partSize(for: 100 << 30) == 11 << 20)  // 100 GiB / 10,000 = 10.24 MiB, rounded up to whole MiB
  }

  @Test func retentionDeletesOnlyOurOldKeysAndNeverTheNewest() async throws {
    let store = FakeObjectStore()
    let names = (1...4).map { "vk/vaultkeeper-prod-2026010\($0)T000000Z-\($0).snap" }
    let unrelated = ["vk/notes.txt", "vk/sub/vaultkeeper-prod-20250101T000000Z-1.snap", "vkx/vaultkeeper-prod-20250101T000000Z-1.snap",
      "vk/vaultkeeper-prod-20250101T000000Z-1.snap.partial"]
    // Named for this cluster but uploaded by another one (no or another cluster ID): never ours.
    let foreign = ["vk/vaultkeeper-prod-20251201T000000Z-9.snap", "vk/vaultkeeper-prod-20251202T000000Z-9.snap"]
    let cluster = SnapshotCluster(name: "prod", id: "c0ffee")
    store.state.withLock { s in
      for key in names { s.objects[key] = ObjectInfo(key: key, size: 1, metadata: [SnapshotCluster.idMetadataKey: cluster.id]) }
      for key in unrelated { s.objects[key] = ObjectInfo(key: key, size: 1) }
      s.objects[foreign[0]] = ObjectInfo(key: foreign[0], size: 1)
      s.objects[foreign[1]] = ObjectInfo(key: foreign[1], size: 1, metadata: [SnapshotCluster.idMetadataKey: "other"])
    }
    let outcome = try await uploader(store, config(retention: RetentionPolicy(keepLast: 2)))
      .applyRetention(now: Date(), cluster: cluster, protecting: [])
    #expect(outcome.deleted.map(\.key) == [names[1], names[0]])
    #expect(Set(outcome.others) == Set(foreign))
    #expect(Set(store.state.withLock { $0.objects.keys }) == Set([names[2], names[3]] + unrelated + foreign))
  }
}

@Suite struct RemoteSnapshotsTests {
  let now = Date(timeIntervalSince1970: 1_800_000_000)

  func object(_ key: String, size: Int64 = 1) -> ObjectInfo { ObjectInfo(key: key, size: size) }

  @Test func oursAreNamedLikeOursDirectlyUnderThePrefix() {
    let ours = RemoteSnapshots.ours([
      object("p/vaultkeeper-a-20260101T000000Z-1.snap", size: 7), object("p/vaultkeeper-a-20260102T000000Z-2.snap.age"),
      object("p/x/vaultkeeper-a-20260101T000000Z-1.snap"), object("p/vaultkeeper-a-2026-1.snap"), object("p/README"),
      object("vaultkeeper-a-20260101T000000Z-1.snap"),
    ], prefix: "p/")
    #expect(ours.map(\.key) == ["p/vaultkeeper-a-20260102T000000Z-2.snap.age", "p/vaultkeeper-a-20260101T000000Z-1.snap"])
    #expect(ours.last?.bytes == 7 && ours.last?.name.raftIndex == 1)
    #expect(RemoteSnapshots.ours([object("vaultkeeper-a-20260101T000000Z-1.snap")], prefix: "").count == 1)
  }

  @Test func theNewestSurvivesAPolicyThatWouldDeleteEverything() {
    let snapshots = RemoteSnapshots.ours(
      (1...3).map { object("p/vaultkeeper-a-2020010\($0)T000000Z-\($0).snap") }, prefix: "p/")
    let deletions = RemoteSnapshots.deletions(snapshots, policy: RetentionPolicy(keepLast: 0, maxAge: .seconds(3600)), now: now)
    #expect(deletions.map(\.key) == ["p/vaultkeeper-a-20200102T000000Z-2.snap", "p/vaultkeeper-a-20200101T000000Z-1.snap"])
    #expect(deletions.allSatisfy { $0.reason.hasPrefix("older than max_age") })
    #expect(RemoteSnapshots.deletions([], policy: RetentionPolicy(keepLast: 0), now: now).isEmpty)
  }

  @Test func noKeepRuleKeepsEverything() {
    let snapshots = RemoteSnapshots.ours((1...3).map { object("p/vaultkeeper-a-2020010\($0)T000000Z-\($0).snap") }, prefix: "p/")
    #expect(RemoteSnapshots.deletions(snapshots, policy: RetentionPolicy(), now: now).isEmpty)
  }
}

@Suite struct FileDigestTests {
  @Test func singleAndMultipartETags() throws {
    let path = NSTemporaryDirectory() + "vk-digest-\(UUID().uuidString)"
    try Data("abcdef".utf8).write(to: URL(fileURLWithPath: path))
    defer { try? FileManager.default.removeItem(atPath: path) }
    let whole = try FileDigest.compute(path: path, partSize: nil)
    #expect(whole.size == 6 && whole.partMD5s.isEmpty)
    #expect(whole.expectedETag == "e80b5017098950fc58aad83c8c14978e")
    #expect(whole.sha256Hex == "bef57ec7f53a6d40beb640a780a639c83bc29ac8a9816f1fc6c5c6dcd93c4721")
    let parts = try FileDigest.compute(path: path, partSize: 3)
    #expect(parts.partMD5s.map(FileDigest.hex) == ["900150983cd24fb0d6963f7d28e17f72", "4ed9407630eb1000c0f6b63842defa7d"])
    #expect(parts.expectedETag == "4c8e93283780e078db9e0c6b9b3f8043-2")
    #expect(try FileDigest.compute(path: path, partSize: 4).partMD5s.count == 2)
    #expect(try FileDigest.compute(path: path, partSize: 6).partMD5s.count == 1)
  }
}
