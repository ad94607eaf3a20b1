// SPDX-License-Identifier: Apache-2.0
import Compression
import Foundation
import Testing
import VaultKeeper

/// The streaming verifier against archives written like hashicorp/raft-snapshot's, made at
/// test time by make_snapshot.py (Python's tarfile + gzip), intact and damaged in every way a
/// snapshot download can go wrong.
@Suite struct SnapshotVerifierTests {
  static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("make_snapshot.py").path

  func archive(_ fault: String = "none", stateBytes: Int = 100_000) throws -> [UInt8] {
    let out = NSTemporaryDirectory() + "vk-snap-\(UUID().uuidString).snap"
    defer { try? FileManager.default.removeItem(atPath: out) }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", Self.script, out, "--state-bytes", "\(stateBytes)", "--fault", fault]
    try process.run()
    process.waitUntilExit()
    try #require(process.terminationStatus == 0)
    return Array(try Data(contentsOf: URL(fileURLWithPath: out)))
  }

  /// Feeds the bytes in uneven chunks, as a network stream would arrive.
  func verify(_ bytes: [UInt8], chunk: Int = 1000) throws -> SnapshotFacts {
    let verifier = SnapshotGzipVerifier(decompressor: try GzipInflater())
    var offset = 0
    var size = chunk
    while offset < bytes.count {
      let end = min(offset + size, bytes.count)
      try bytes[offset..<end].withUnsafeBytes { try verifier.feed($0) }
      offset = end
      size = size == chunk ? 7 : chunk  // alternate tiny and large pieces
    }
    return try verifier.finish()
  }

  func failure(_ bytes: [UInt8]) -> String? {
    do {
      _ = try verify(bytes)
      return nil
    } catch let error as SnapshotVerificationError {
      return error.reason
    } catch {
      return "\(error)"
    }
  }

  @Test func acceptsAnIntactSnapshot() throws {
    let facts = try verify(try archive())
    #expect(facts == SnapshotFacts(id: "2-1234-1763800000000", index: 1234, term: 2, stateBytes: 100_000))
  }

  @Test func acceptsAnyChunking() throws {
    let bytes = try archive(stateBytes: 5000)
    for chunk in [1, 511, 512, 513, 65536] {
      #expect(try verify(bytes, chunk: chunk).stateBytes == 5000)
    }
  }

  @Test func acceptsAnEmptyStateFile() throws {
    #expect(try verify(try archive(stateBytes: 0)).stateBytes == 0)
  }

  @Test(arguments: [
    ("truncated", "truncated"),
    ("corrupt-byte", "gzip"),
    ("empty", "empty snapshot"),
    ("not-gzip", "not a valid gzip stream"),
    ("bad-hash", "hash check failed for \"state.bin\""),
    ("unlisted", "list missing hash for \"state.bin\""),
    ("extra-entry", "unexpected file \"evil.sh\""),
    ("missing-sealed", "file missing for \"SHA256SUMS.sealed\""),
    ("size-mismatch", "meta.json says state.bin has"),
    ("no-end-marker", "truncated snapshot"),
  ])
  func rejectsDamagedSnapshots(fault: String, expected: String) throws {
    let reason = failure(try archive(fault))
    #expect(reason?.contains(expected) == true, "\(fault): \(reason ?? "accepted")")
  }

  @Test func memoryDoesNotGrowWithSize() throws {
    // 8 MiB of state through a verifier that keeps only a header and the small files.
    #expect(try verify(try archive(stateBytes: 8 << 20), chunk: 65536).stateBytes == 8 << 20)
  }
}
