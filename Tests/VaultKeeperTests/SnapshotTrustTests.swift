// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
@testable import VaultKeeper

// Issue #10, items 4 and 5: retention trusts no name it should not (future-dated ones, other
// clusters'), keeps what was just written, judges staleness from the ledger on a monotonic
// timer; every transfer has a deadline from its size; a lost upload is made up on the next run.

private func stamp(_ text: String) -> Date { SnapshotName.parseStamp(Substring(text)) ?? Date(timeIntervalSince1970: 0) }

@Suite struct TransferDeadlineTests {
  let d = TransferDeadline(minimum: .seconds(300), minBytesPerSecond: 1 << 20)

  @Test func smallTransfersGetTheMinimumLargeOnesTheirTimeAtTheMinimumRate() {
    #expect(d.deadline(bytes: 0) == .seconds(300))
    #expect(d.deadline(bytes: 100 << 20) == .seconds(300))
    #expect(d.deadline(bytes: 300 << 20) == .seconds(300))
    #expect(d.deadline(bytes: (300 << 20) + 1) == .seconds(300) + .milliseconds(1))  // rounded up, never down
    #expect(d.deadline(bytes: 4 << 30) == .seconds(4096))
    #expect(d.deadline(bytes: -5) == .seconds(300))
    // The standard: 5 minutes, then 256 KiB/s; a 4 GiB snapshot may take about 4.5 hours, not weeks.
    #expect(TransferDeadline.standard.deadline(bytes: 4 << 30) == .seconds(16384))
    #expect(TransferDeadline.standard.deadline(bytes: 1 << 20) == .seconds(300))
    // No overflow for any size or rate.
    #expect(TransferDeadline(minimum: .seconds(1), minBytesPerSecond: 1).deadline(bytes: .max) == .seconds(Int64.max))
    #expect(TransferDeadline(minimum: .seconds(1), minBytesPerSecond: 0).minBytesPerSecond == 1)
  }

  @Test func aDownloadOfUnknownSizeIsBehindOnlyPastTheMinimumAndBelowTheRate() {
    // Within the minimum: never behind, however slow.
    #expect(!d.isBehind(bytes: 0, elapsed: .seconds(299)))
    #expect(!d.isBehind(bytes: 0, elapsed: .seconds(300)))
    // A trickle (just above curl's 1 KiB/s low-speed limit) is behind once the minimum is over.
    #expect(d.isBehind(bytes: 1100 * 301, elapsed: .seconds(301)))
    // At the minimum rate or faster it never is, however long it runs.
    #expect(!d.isBehind(bytes: Int64(1 << 20) * 3600, elapsed: .seconds(3600)))
    #expect(d.isBehind(bytes: Int64(1 << 20) * 3600 - (2 << 20), elapsed: .seconds(3600)))
  }

  @Test func objectRequestsTakeTheirDeadlineFromTheirBody() {
    let small = Duration.seconds(30)
    let put = ObjectRequest(method: .put, target: "/k", body: .file(FileSlice(path: "/f", offset: 0, length: 1 << 30)), isTransfer: true)
    #expect(put.totalTimeout(transfers: d, smallRequest: small) == .seconds(1024))
    let tinyPut = ObjectRequest(method: .put, target: "/k", body: .file(FileSlice(path: "/f", offset: 0, length: 10)), isTransfer: true)
    #expect(tinyPut.totalTimeout(transfers: d, smallRequest: small) == .seconds(300))
    let complete = ObjectRequest(method: .post, target: "/k?uploadId=u", body: .bytes(Array("<x/>".utf8)), isTransfer: true)
    #expect(complete.totalTimeout(transfers: d, smallRequest: small) == .seconds(300))
    let head = ObjectRequest(method: .head, target: "/k")
    #expect(head.totalTimeout(transfers: d, smallRequest: small) == .seconds(30))
    // A transfer gets its own deadline, shorter than a small request's if so configured.
    let short = TransferDeadline(minimum: .seconds(1), minBytesPerSecond: 1 << 30)
    #expect(tinyPut.totalTimeout(transfers: short, smallRequest: small) == .seconds(1))
  }

  @Test func anUploadsBudgetIsTheSumOfItsRequestsDeadlines() {
    guard case .success(let endpoint) = S3Endpoint.parse("https://s3.example.com") else { preconditionFailure() }
    var config = S3Config(
      endpoint: endpoint, region: "r", bucket: "b", prefix: "p/", pathStyle: false, accessKeyID: .credential("a"), secretAccessKey: .credential("s"),
      caFile: nil, timeout: .seconds(30), retention: RetentionPolicy(), ownRetention: false, verifyETag: true, multipartThreshold: 256 << 20,
      partSize: 64 << 20)
    config.transfers = d
    let uploader = SnapshotUploader(config: config) { () throws(SnapshotError) in preconditionFailure("no session needed") }
    // One PUT: its deadline, plus a HEAD (and room for one more small request).
    #expect(uploader.budget(bytes: 10 << 20) == .seconds(360))
    // 1 GiB in 16 parts of 64 MiB: 16 part deadlines (300 s each), the completion, 4 small requests.
    #expect(uploader.budget(bytes: 1 << 30) == .seconds(16 * 300 + 300 + 120))
    // 1 GiB + 1 byte: one more (tiny) part.
    #expect(uploader.budget(bytes: (1 << 30) + 1) == .seconds(17 * 300 + 300 + 120))
  }
}

@Suite struct RetentionTrustTests {
  let now = stamp("20261207T120000Z")

  func item(_ text: String) -> RetentionPolicy.Item { RetentionPolicy.Item(name: text, time: stamp(text), verified: true) }

  @Test func namesDatedInTheFutureNeitherCountNorAreDeleted() {
    // Forged (or written while the clock was ahead): they would win keep_last and be "the newest".
    let items = ["20261208T120000Z", "20261209T120000Z", "20261207T110000Z", "20261207T100000Z", "20261207T090000Z"].map(item)
    let d = RetentionPolicy(keepLast: 2).apply(to: items, now: now)
    #expect(d.keep == ["20261207T110000Z", "20261207T100000Z"])
    #expect(d.delete.map(\.name) == ["20261207T090000Z"])
    #expect(d.future == ["20261209T120000Z", "20261208T120000Z"])
    // max_age never removes them either (their age is negative, but say it plainly).
    let aged = RetentionPolicy(keepLast: 1, maxAge: .seconds(3600)).apply(to: items, now: now)
    #expect(aged.future.count == 2 && !aged.delete.map(\.name).contains("20261208T120000Z"))
  }

  @Test func aSmallSkewIsTolerated() {
    // Another node's clock 4 minutes ahead: believed. Six minutes ahead: not.
    let d = RetentionPolicy(keepLast: 1).apply(to: ["20261207T120400Z", "20261207T115000Z"].map(item), now: now)
    #expect(d.keep == ["20261207T120400Z"] && d.future.isEmpty)
    let e = RetentionPolicy(keepLast: 1).apply(to: ["20261207T120600Z", "20261207T115000Z"].map(item), now: now)
    #expect(e.keep == ["20261207T115000Z"] && e.future == ["20261207T120600Z"])
    #expect(!RetentionPolicy.isFuture(now.addingTimeInterval(300), now: now))
    #expect(RetentionPolicy.isFuture(now.addingTimeInterval(301), now: now))
  }

  @Test func theSnapshotJustWrittenIsAlwaysKept() {
    // A name within the skew but later than ours (a clock a little ahead) must not push out the
    // snapshot just written, whatever the policy says.
    let items = ["20261207T120200Z", "20261207T120000Z", "20261207T110000Z"].map(item)
    let d = RetentionPolicy(keepLast: 1).apply(to: items, now: now, protecting: ["20261207T120000Z"])
    #expect(d.keep == ["20261207T120200Z", "20261207T120000Z"])
    #expect(d.delete.map(\.name) == ["20261207T110000Z"])
    let aged = RetentionPolicy(keepLast: 0, maxAge: .seconds(60)).apply(to: ["20261207T110000Z"].map(item), now: now, protecting: ["20261207T110000Z"])
    #expect(aged.keep == ["20261207T110000Z"] && aged.delete.isEmpty)
  }

  func entry(_ cluster: String, _ text: String, bytes: Int64 = 10) -> SnapshotDirectory.Entry {
    SnapshotDirectory.Entry(name: SnapshotName(cluster: cluster, time: stamp(text), raftIndex: 1, encrypted: false), bytes: bytes)
  }

  @Test func localRetentionCountsOnlyThisClustersFiles() {
    let entries = [
      entry("prod", "20261207T110000Z"), entry("prod", "20261207T100000Z"), entry("prod", "20261207T090000Z"),
      entry("staging", "20261207T115900Z"), entry("staging", "20261201T000000Z"), entry("prod", "20270101T000000Z"),
    ]
    let plan = SnapshotDirectory.plan(entries, policy: RetentionPolicy(keepLast: 1), cluster: "Prod", justWritten: nil, now: now)
    #expect(plan.decision.keep == [entries[0].name.fileName])
    #expect(plan.decision.delete.map(\.name) == [entries[1].name.fileName, entries[2].name.fileName])
    #expect(plan.decision.future == [entries[5].name.fileName])
    #expect(plan.otherClusters == [entries[3].name.fileName, entries[4].name.fileName])
    // Without a cluster (`snapshot now`), every cluster's files count, but the future still does not.
    let all = SnapshotDirectory.plan(entries, policy: RetentionPolicy(keepLast: 1), cluster: nil, justWritten: nil, now: now)
    #expect(all.decision.keep == [entries[3].name.fileName] && all.decision.future == [entries[5].name.fileName])
    // The newest believable snapshot of this cluster: not the future one, not staging's.
    #expect(SnapshotDirectory.newest(entries, cluster: "prod", now: now) == entries[0])
    #expect(SnapshotDirectory.newest(entries, cluster: nil, now: now) == entries[3])
    #expect(SnapshotDirectory.newest([entries[5]], cluster: "prod", now: now) == nil)
  }
}

@Suite struct RemoteAttributionTests {
  let now = stamp("20261207T120000Z")
  let prod = SnapshotCluster(name: "prod", id: "2c0f3a4e-0000-4000-8000-000000000001")

  func remote(_ cluster: String, _ text: String, id: String?, bytes: Int64 = 10, index: UInt64 = 1) -> RemoteSnapshot {
    let name = SnapshotName(cluster: cluster, time: stamp(text), raftIndex: index, encrypted: false)
    return RemoteSnapshot(key: "p/" + name.fileName, name: name, bytes: bytes, lastModified: nil, clusterID: id)
  }

  @Test func onlyObjectsCarryingThisClustersIDAreOurs() {
    let ours = remote("prod", "20261207T110000Z", id: prod.id)
    let sameNameOtherCluster = remote("prod", "20261207T113000Z", id: "another-uuid")
    let byHand = remote("prod", "20261207T114000Z", id: nil)
    let otherName = remote("staging", "20261207T115000Z", id: prod.id)
    let split = RemoteSnapshots.attributed([ours, sameNameOtherCluster, byHand, otherName], to: prod)
    #expect(split.ours == [ours])
    #expect(split.others == [sameNameOtherCluster, byHand])
  }

  @Test func remotePlanKeepsTheJustUploadedAndNeverTouchesTheFuture() {
    let snapshots = [
      remote("prod", "20261210T000000Z", id: prod.id), remote("prod", "20261207T115900Z", id: prod.id),
      remote("prod", "20261207T110000Z", id: prod.id), remote("prod", "20261207T100000Z", id: prod.id),
    ]
    let plan = RemoteSnapshots.plan(snapshots, policy: RetentionPolicy(keepLast: 1), now: now, protecting: [snapshots[2].key])
    #expect(plan.future == [snapshots[0].key])
    #expect(plan.deletions.map(\.key) == [snapshots[3].key])
    // The legacy entry point (`snapshot now`) no longer lets a future name be "the newest" either.
    #expect(RemoteSnapshots.deletions(snapshots, policy: RetentionPolicy(keepLast: 1), now: now).map(\.key) == [snapshots[2].key, snapshots[3].key])
  }

  func local(_ text: String, bytes: Int64 = 10, index: UInt64 = 1) -> SnapshotDirectory.Entry {
    SnapshotDirectory.Entry(name: SnapshotName(cluster: "prod", time: stamp(text), raftIndex: index, encrypted: false), bytes: bytes)
  }

  @Test func aLostUploadIsMadeUpOnTheNextRun() {
    // A reload between the commit and the upload: the bucket lacks the newest local snapshot.
    let locals = [local("20261207T110000Z"), local("20261207T100000Z")]
    let bucket = [remote("prod", "20261207T100000Z", id: prod.id)]
    let missing = RemoteSnapshots.missing(local: locals, remote: bucket, prefix: "p/", policy: RetentionPolicy(keepLast: 2), now: now)
    #expect(missing == [locals[0]])
    #expect(RemoteSnapshots.missing(local: locals, remote: bucket + [remote("prod", "20261207T110000Z", id: prod.id)], prefix: "p/",
      policy: RetentionPolicy(keepLast: 2), now: now).isEmpty)
  }

  @Test func olderMissingOnesGoUpOnlyWhenTheBucketWouldKeepThem() {
    let locals = [local("20261207T110000Z"), local("20261207T100000Z"), local("20261207T090000Z"), local("20261207T080000Z")]
    // Three uploads were lost (a peer down for hours): the bucket keeps 3, so the newest 3 go up, newest first.
    let missing = RemoteSnapshots.missing(local: locals, remote: [], prefix: "p/", policy: RetentionPolicy(keepLast: 3), now: now)
    #expect(missing == Array(locals.prefix(3)))
    // The bucket keeps 1 while the directory keeps 4: the older ones are not sent just to be deleted.
    let bucket = [remote("prod", "20261207T110000Z", id: prod.id)]
    #expect(RemoteSnapshots.missing(local: locals, remote: bucket, prefix: "p/", policy: RetentionPolicy(keepLast: 1), now: now).isEmpty)
  }

  @Test func anObjectOfAnotherSizeOrClusterDoesNotCountAsUploaded() {
    let locals = [local("20261207T110000Z", bytes: 100)]
    // A truncated copy under our key: uploaded again.
    let short = [remote("prod", "20261207T110000Z", id: prod.id, bytes: 99)]
    #expect(RemoteSnapshots.missing(local: locals, remote: short, prefix: "p/", policy: RetentionPolicy(keepLast: 1), now: now) == locals)
    // `remote` holds only this cluster's objects (attributed): another cluster's object under
    // the same key is not in it, so ours goes up (with our cluster ID) over it.
    #expect(RemoteSnapshots.missing(local: locals, remote: [], prefix: "p/", policy: RetentionPolicy(keepLast: 1), now: now) == locals)
    #expect(RemoteSnapshots.missing(local: [], remote: [], prefix: "p/", policy: RetentionPolicy(keepLast: 1), now: now).isEmpty)
  }
}

/// Strips the metadata HEAD reports, like a server that does not keep `x-amz-meta-*`.
private struct MetadataDroppingStore: ObjectStore {
  let inner: FakeObjectStore
  func put(key: String, file: FileSlice, contentMD5: [UInt8], metadata: [String: String]) async throws(ObjectStoreError) {
    try await inner.put(key: key, file: file, contentMD5: contentMD5, metadata: metadata)
  }
  func head(key: String) async throws(ObjectStoreError) -> ObjectInfo? {
    guard var info = try await inner.head(key: key) else { return nil }
    info.metadata = [:]
    return info
  }
  func list(prefix: String) async throws(ObjectStoreError) -> [ObjectInfo] { try await inner.list(prefix: prefix) }
  func delete(key: String) async throws(ObjectStoreError) { try await inner.delete(key: key) }
  func createMultipartUpload(key: String, metadata: [String: String]) async throws(ObjectStoreError) -> String {
    try await inner.createMultipartUpload(key: key, metadata: metadata)
  }
  func uploadPart(key: String, uploadID: String, number: Int, file: FileSlice, contentMD5: [UInt8]) async throws(ObjectStoreError) -> String {
    try await inner.uploadPart(key: key, uploadID: uploadID, number: number, file: file, contentMD5: contentMD5)
  }
  func completeMultipartUpload(key: String, uploadID: String, parts: [(number: Int, etag: String)]) async throws(ObjectStoreError) {
    try await inner.completeMultipartUpload(key: key, uploadID: uploadID, parts: parts)
  }
  func abortMultipartUpload(key: String, uploadID: String) async throws(ObjectStoreError) {
    try await inner.abortMultipartUpload(key: key, uploadID: uploadID)
  }
}

@Suite struct AttributedUploadTests {
  let prod = SnapshotCluster(name: "prod", id: "2c0f3a4e-0000-4000-8000-000000000001")

  func config() -> S3Config {
    guard case .success(let endpoint) = S3Endpoint.parse("https://s3.example.com") else { preconditionFailure() }
    return S3Config(
      endpoint: endpoint, region: "r", bucket: "b", prefix: "vk/", pathStyle: false, accessKeyID: .credential("a"), secretAccessKey: .credential("s"),
      caFile: nil, timeout: .seconds(30), retention: RetentionPolicy(keepLast: 2), ownRetention: false, verifyETag: true,
      multipartThreshold: 256 << 20, partSize: 5 << 20)
  }

  func uploader(_ store: any ObjectStore) -> SnapshotUploader {
    SnapshotUploader(config: config()) { () throws(SnapshotError) in SnapshotUploader.Session(store: store, close: {}) }
  }

  @Test func retentionCountsOnlyObjectsThatCarryThisClustersID() async throws {
    let store = FakeObjectStore()
    let now = stamp("20261207T120000Z")
    func key(_ time: String, _ index: Int) -> String { "vk/vaultkeeper-prod-\(time)-\(index).snap" }
    let ours = [key("20261207T110000Z", 4), key("20261207T100000Z", 3), key("20261207T090000Z", 2), key("20261207T080000Z", 1)]
    let otherCluster = key("20261207T115000Z", 9)  // another "prod" sharing the prefix
    let byHand = key("20261207T000000Z", 7)
    let forged = [key("20261208T000000Z", 90), key("20261209T000000Z", 91)]  // an attacker copied our public cluster ID
    store.state.withLock { s in
      for k in ours + forged { s.objects[k] = ObjectInfo(key: k, size: 1, metadata: [SnapshotCluster.idMetadataKey: prod.id]) }
      s.objects[otherCluster] = ObjectInfo(key: otherCluster, size: 1, metadata: [SnapshotCluster.idMetadataKey: "another-uuid"])
      s.objects[byHand] = ObjectInfo(key: byHand, size: 1)
      s.objects["vk/vaultkeeper-staging-20261207T000000Z-1.snap"] = ObjectInfo(key: "vk/vaultkeeper-staging-20261207T000000Z-1.snap", size: 1)
    }
    let outcome = try await uploader(store).applyRetention(now: now, cluster: prod, protecting: [])
    #expect(outcome.deleted.map(\.key) == [ours[2], ours[3]])
    #expect(outcome.future == [forged[1], forged[0]])
    #expect(Set(outcome.others) == [otherCluster, byHand])
    let left = Set(store.state.withLock { $0.objects.keys })
    #expect(left.isSuperset(of: [ours[0], ours[1], otherCluster, byHand] + forged) && !left.contains(ours[2]) && !left.contains(ours[3]))
    // HEADs only for objects named for this cluster (staging's is not even asked).
    #expect(!store.state.withLock { $0.calls }.contains("head vk/vaultkeeper-staging-20261207T000000Z-1.snap"))
  }

  @Test func anUploadRecordsTheClusterIDAndFailsWhenTheBucketDropsIt() async throws {
    let directory = NSTemporaryDirectory() + "vk-attr-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let fileName = "vaultkeeper-prod-20261207T110000Z-4.snap"
    try Data("snapshot bytes".utf8).write(to: URL(fileURLWithPath: directory + "/" + fileName))
    let store = FakeObjectStore()
    _ = try await uploader(store).upload(path: directory + "/" + fileName, fileName: fileName, cluster: prod)
    #expect(store.state.withLock { $0.objects["vk/" + fileName]?.metadata[SnapshotCluster.idMetadataKey] } == prod.id)
    // A server that does not keep it: the object would never count as ours (and be sent again
    // on every run), so the upload fails and the object is removed.
    let dropping = FakeObjectStore()
    do throws(SnapshotError) {
      _ = try await uploader(MetadataDroppingStore(inner: dropping)).upload(path: directory + "/" + fileName, fileName: fileName, cluster: prod)
      Issue.record("an upload without its cluster ID passed")
    } catch {
      #expect(error.message.contains("did not keep its x-amz-meta-vaultkeeper-cluster-id"))
    }
    #expect(dropping.state.withLock { $0.objects.isEmpty })
  }
}

@Suite struct FreshnessTrustTests {
  let start = ContinuousClock.now
  let wall = stamp("20261207T120000Z")

  @Test func theLedgerDecidesAndAFutureRecordIsNotBelieved() {
    var ledger = SnapshotLedger(trackingSince: wall.timeIntervalSince1970 - 86400)
    ledger.lastSuccess = .init(time: wall.timeIntervalSince1970 - 3600, file: "f", raftIndex: 1, bytes: 1, durationSeconds: 1)
    #expect(ledger.believedLastSuccess(now: wall) == wall.addingTimeInterval(-3600))
    #expect(!ledger.recordsFutureSuccess(now: wall))
    // Written while the clock was a day ahead: not believed, reported.
    ledger.lastSuccess?.time = wall.timeIntervalSince1970 + 86400
    #expect(ledger.believedLastSuccess(now: wall) == nil && ledger.recordsFutureSuccess(now: wall))
    // Within the skew it is.
    ledger.lastSuccess?.time = wall.timeIntervalSince1970 + 120
    #expect(ledger.believedLastSuccess(now: wall) == wall.addingTimeInterval(120))
    // A waiting start in the future cannot put off the alert.
    #expect(SnapshotLedger(trackingSince: wall.timeIntervalSince1970 + 3600).believedTrackingSince(now: wall) == wall)
    #expect(SnapshotLedger(trackingSince: 5).believedTrackingSince(now: wall) == Date(timeIntervalSince1970: 5))
  }

  @Test func wallTimesMapOntoTheMonotonicClock() {
    #expect(SnapshotFreshness.instant(of: wall.addingTimeInterval(-90), now: wall, nowInstant: start) == start.advanced(by: .seconds(-90)))
    #expect(SnapshotFreshness.instant(of: wall.addingTimeInterval(3600), now: wall, nowInstant: start) == start)
    // A damaged ledger's absurd time (it trapped the conversion at every start) is a century old.
    let century = Duration.milliseconds(-Int64(SnapshotFreshness.longestAge * 1000))
    #expect(SnapshotFreshness.instant(of: Date(timeIntervalSince1970: -1e300), now: wall, nowInstant: start) == start.advanced(by: century))
  }

  @Test func staleIsJudgedOnTheTimerAndAnnouncedOncePerReminder() {
    var f = SnapshotFreshness(staleAfter: .seconds(10), reference: start, reminder: .seconds(100))
    #expect(f.judge(now: start.advanced(by: .seconds(10))) == .fresh)
    // A download or upload has hung since: the timer alone notices, at once.
    #expect(f.judge(now: start.advanced(by: .milliseconds(10_001))) == .stale(announce: true))
    #expect(f.judge(now: start.advanced(by: .seconds(50))) == .stale(announce: false))
    #expect(f.judge(now: start.advanced(by: .seconds(111))) == .stale(announce: true))  // the reminder
    #expect(f.age(at: start.advanced(by: .seconds(111))) == .seconds(111))
    // A healthy standby does not judge (the active node's vaultkeeper does).
    #expect(f.judge(now: start.advanced(by: .seconds(112)), judged: false) == .fresh)
    #expect(f.judge(now: start.advanced(by: .seconds(113))) == .stale(announce: true))
    // A good snapshot: fresh, and the next staleness is announced anew.
    f.succeeded(at: start.advanced(by: .seconds(120)))
    #expect(f.judge(now: start.advanced(by: .seconds(125))) == .fresh)
    #expect(f.judge(now: start.advanced(by: .seconds(131))) == .stale(announce: true))
    // An older success never moves the reference back.
    f.succeeded(at: start)
    #expect(f.reference == start.advanced(by: .seconds(120)))
  }
}
