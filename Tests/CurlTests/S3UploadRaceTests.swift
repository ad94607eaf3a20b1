// SPDX-License-Identifier: Apache-2.0
import Foundation
import Glibc
import Synchronization
import Testing

import Curl
@testable import VaultKeeper

// The snapshot uploads against a real S3 server (moto_server, as in
// Tests/IntegrationTests/test_snapshot_s3.py) over the real libcurl transport:
// - a listing of many pages (a small `max-keys`) renews the upload duty's heartbeat promise
//   before every page, not once before the first (issue #10 review, upload heartbeat);
// - a snapshot file unlinked and replaced by other bytes between its digest and its upload
//   (what local retention, running beside the uploads, can do) is uploaded whole, as digested,
//   from the descriptor it was digested from: nothing is reopened by path.

/// One `moto_server` on a free loopback port, plain HTTP (allowed for loopback endpoints).
final class MotoServer: Sendable {
  let port: Int
  let directory: String
  private let child: ChildProcess

  static func start() async throws -> MotoServer {
    let directory = try makeScratchDirectory("moto")
    let port = try unusedLoopbackPort()
    // moto's own entry point, ended when our lifeline (stdin) closes.
    let launcher = pythonWithLifeline("""
      from moto.server import main
      sys.exit(main(sys.argv[1:]))
      """)
    let child = try ChildProcess(["python3", "-c", launcher, "-H", "127.0.0.1", "-p", "\(port)"], stderrPath: directory + "/stderr.log")
    let deadline = ContinuousClock.now + .seconds(60)
    while true {
      if (try? plainHTTPExchange(port: port, method: "GET", path: "/moto-api/data.json", body: nil))?.0 == 200 { break }
      if let status = child.exitStatus() {
        throw TestFailure("moto_server exited (status \(status)): \((try? String(contentsOfFile: directory + "/stderr.log", encoding: .utf8)) ?? "")")
      }
      guard ContinuousClock.now < deadline else {
        child.kill()
        throw TestFailure("moto_server did not answer within 60 s")
      }
      try await Task.sleep(for: .milliseconds(50))
    }
    return MotoServer(port: port, directory: directory, child: child)
  }

  private init(port: Int, directory: String, child: ChildProcess) {
    self.port = port
    self.directory = directory
    self.child = child
  }

  func stop() { child.kill() }

  func config(bucket: String, multipartThreshold: Int64 = 256 << 20) throws -> S3Config {
    guard case .success(let endpoint) = S3Endpoint.parse("http://127.0.0.1:\(port)") else { throw TestFailure("endpoint") }
    return S3Config(
      endpoint: endpoint, region: "us-east-1", bucket: bucket, prefix: "vk/", pathStyle: true, accessKeyID: .credential("unused"),
      secretAccessKey: .credential("unused"), caFile: nil, timeout: .seconds(30), retention: RetentionPolicy(keepLast: 100), ownRetention: false,
      verifyETag: true, multipartThreshold: multipartThreshold, partSize: 5 << 20)
  }

  /// moto accepts any key pair (authentication is off).
  static let credentials = S3Credentials(accessKeyID: SecretBytes(utf8: "AKIAVKTEST"), secretAccessKey: SecretBytes(utf8: "vk-test-secret"))

  func transport(_ config: S3Config) -> CurlObjectTransport {
    CurlObjectTransport(config: config, credentials: Self.credentials)
  }

  /// Creates the bucket (PUT on the bucket URL) and returns its configuration.
  func bucket(_ name: String, multipartThreshold: Int64 = 256 << 20) async throws -> S3Config {
    let config = try config(bucket: name, multipartThreshold: multipartThreshold)
    let transport = transport(config)
    defer { transport.shutdown() }
    let response = try await transport.send(ObjectRequest(method: .put, target: ""))
    guard response.status == 200 else { throw TestFailure("creating bucket \(name): HTTP \(response.status)") }
    return config
  }

  /// The object's bytes as the server stores them, in ranges the transport's body limit allows.
  func get(_ config: S3Config, key: String) async throws -> [UInt8] {
    let transport = transport(config)
    defer { transport.shutdown() }
    var bytes: [UInt8] = []
    let piece = 4 << 20
    while true {
      let range = ("Range", "bytes=\(bytes.count)-\(bytes.count + piece - 1)")
      let response = try await transport.send(ObjectRequest(method: .get, target: S3Encoding.path(key), headers: [range]))
      if response.status == 416 { return bytes }
      guard response.status == 206 || response.status == 200 else { throw TestFailure("GET \(key): HTTP \(response.status)") }
      bytes += response.body
      if response.status == 200 || response.body.count < piece { return bytes }
    }
  }

  /// An uploader over a fresh transport per session, as the daemon's.
  func uploader(_ config: S3Config) -> SnapshotUploader {
    SnapshotUploader(config: config) { () throws(SnapshotError) in
      let transport = self.transport(config)
      return SnapshotUploader.Session(store: S3Client(transport: transport), close: { transport.shutdown() })
    }
  }
}

/// What happened, in order: requests sent and heartbeat promises renewed.
final class EventLog: Sendable {
  private let events = Mutex<[String]>([])
  func append(_ event: String) { events.withLock { $0.append(event) } }
  func removeAll() { events.withLock { $0.removeAll() } }
  var all: [String] { events.withLock { $0 } }
}

/// Records the requests it passes to the real transport, in one log with the heartbeat beats.
final class RecordingObjectTransport: ObjectTransport, @unchecked Sendable {
  let inner: CurlObjectTransport
  let log: EventLog

  init(_ inner: CurlObjectTransport, log: EventLog) {
    self.inner = inner
    self.log = log
  }

  func send(_ request: ObjectRequest) async throws(TransportError) -> HTTPResponse {
    let what = request.target.contains("list-type=2") ? "list" : "\(request.method.rawValue)"
    log.append(what)
    return try await inner.send(request)
  }

  func shutdown() { inner.shutdown() }
}

@Suite(.serialized) struct S3UploadRaceTests {
  let cluster = SnapshotCluster(name: "prod", id: "5c9e7a8e-0000-4000-8000-00000000c1a5")

  func fileName(_ index: Int) -> String {
    SnapshotName(cluster: "prod", time: Date(timeIntervalSince1970: 1_767_225_600 + Double(index) * 3600), raftIndex: UInt64(100 + index), encrypted: false)
      .fileName
  }

  func bytes(_ count: Int, seed: UInt8) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ ($0 >> 11)) ^ seed }
  }

  func write(_ bytes: [UInt8], to path: String) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
  }

  func withMoto<T>(_ body: (MotoServer) async throws -> T) async throws -> T {
    let moto = try await MotoServer.start()
    defer { moto.stop() }
    return try await body(moto)
  }

  // MARK: - The heartbeat across a listing of many pages

  @Test func everyListingPageRenewsTheHeartbeatPromise() async throws {
    try await withMoto { moto in
      let config = try await moto.bucket("pages")
      let directory = try makeScratchDirectory("pages")
      let plain = moto.uploader(config)
      // Seven real, checked uploads of this cluster: seven keys, four pages of two.
      for index in 0..<7 {
        let path = "\(directory)/\(fileName(index))"
        try write(bytes(1000 + index, seed: UInt8(index)), to: path)
        _ = try await plain.upload(path: path, fileName: fileName(index), cluster: cluster)
      }

      let log = EventLog()
      let heartbeats = Heartbeats()
      let renew = SnapshotUploads.beat(heartbeats, timeout: config.timeout)
      let paged = SnapshotUploader(config: config) { () throws(SnapshotError) in
        let transport = RecordingObjectTransport(moto.transport(config), log: log)
        return SnapshotUploader.Session(store: S3Client(transport: transport, pageSize: 2), close: { transport.shutdown() })
      }
      let view = try await paged.view(of: cluster) {
        log.append("beat")
        renew()
      }
      #expect(view.ours.count == 7 && view.others.isEmpty)
      #expect(heartbeats.overdue().isEmpty)

      let events = log.all
      let pages = events.indices.filter { events[$0] == "list" }
      #expect(pages.count == 4, "seven keys at two a page: \(events)")
      // Every request, each page of the listing included, follows its own renewal.
      for index in events.indices where events[index] != "beat" {
        #expect(index > 0 && events[index - 1] == "beat", "request \(index) (\(events[index])) was sent on an older promise: \(events)")
      }

      // Remote retention lists the same way.
      log.removeAll()
      _ = try await paged.applyRetention(now: Date(timeIntervalSince1970: 1_767_225_600 + 86_400), cluster: cluster, protecting: []) {
        log.append("beat")
        renew()
      }
      let again = log.all
      #expect(again.filter { $0 == "list" }.count == 4)
      for index in again.indices where again[index] != "beat" {
        #expect(index > 0 && again[index - 1] == "beat", "\(again)")
      }
    }
  }

  // MARK: - A file unlinked and replaced between its digest and its upload

  /// The digest is taken first; opening the session is the next step, before any byte is
  /// sent. There the file is unlinked and another file put under its name, as local retention
  /// (unlink) and a careless operator (a new file of the same name) could do.
  func uploaderSwappingTheFile(_ moto: MotoServer, _ config: S3Config, path: String, replacement: [UInt8]) -> (SnapshotUploader, EventLog) {
    let swaps = EventLog()
    let uploader = SnapshotUploader(config: config) { () throws(SnapshotError) in
      let first = swaps.all.isEmpty
      swaps.append("session")
      if first {
        unlink(path)
        try? Data(replacement).write(to: URL(fileURLWithPath: path))
      }
      let transport = moto.transport(config)
      return SnapshotUploader.Session(store: S3Client(transport: transport), close: { transport.shutdown() })
    }
    return (uploader, swaps)
  }

  @Test func aFileReplacedAfterItsDigestIsUploadedAsDigested() async throws {
    try await withMoto { moto in
      let config = try await moto.bucket("swap")
      let directory = try makeScratchDirectory("swap")
      let path = "\(directory)/\(fileName(1))"
      let original = bytes(300_000, seed: 0x5A)
      try write(original, to: path)
      let (uploader, swaps) = uploaderSwappingTheFile(moto, config, path: path, replacement: bytes(300_000, seed: 0xA5))

      let receipt = try await uploader.upload(path: path, fileName: fileName(1), cluster: cluster)
      #expect(swaps.all.count == 1)
      #expect(receipt.bytes == Int64(original.count))
      let stored = try await moto.get(config, key: receipt.key)
      #expect(stored == original, "the bucket holds other bytes than the file that was digested")
    }
  }

  @Test func aFileUnlinkedDuringAMultipartUploadIsUploadedWhole() async throws {
    try await withMoto { moto in
      // 11 MiB in parts of 5 MiB: three parts, each read from the one descriptor.
      let config = try await moto.bucket("multipart", multipartThreshold: 8 << 20)
      let directory = try makeScratchDirectory("multipart")
      let path = "\(directory)/\(fileName(2))"
      let original = bytes((11 << 20) + 7, seed: 0x3C)
      try write(original, to: path)
      let (uploader, swaps) = uploaderSwappingTheFile(moto, config, path: path, replacement: Array(original.prefix(1000)))

      let receipt = try await uploader.upload(path: path, fileName: fileName(2), cluster: cluster)
      #expect(swaps.all.count == 1)
      #expect(receipt.parts == 3 && receipt.bytes == Int64(original.count))
      #expect(try await moto.get(config, key: receipt.key) == original)
    }
  }

  @Test func aFileRemovedBeforeItsUploadOpensIsReportedAsGone() {
    let missing = "\(scratchRoot)/no-such-\(fileName(3))"
    guard case .failure(let failure) = UploadSource.open(missing) else {
      Issue.record("opened a file that does not exist")
      return
    }
    #expect(failure.gone && failure.message.contains(missing))
  }
}
