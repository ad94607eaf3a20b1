// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
@testable import VaultKeeper

@Suite struct SnapshotFileWriterTests {
  let directory: String

  init() throws {
    directory = NSTemporaryDirectory() + "vk-writer-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
  }

  func entries() throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: directory).sorted() }

  @Test func commitsAtomicallyWithMode0600() throws {
    let writer = try SnapshotFileWriter(directory: directory)
    try Array("part one ".utf8).withUnsafeBytes { try writer.write($0) }
    // Before commit only the hidden temporary file exists.
    #expect(try entries().count == 1 && entries()[0].hasPrefix(".vaultkeeper-snapshot-"))
    try Array("part two".utf8).withUnsafeBytes { try writer.write($0) }
    let path = try writer.commit(as: "vaultkeeper-c-20251122T000000Z-1.snap")
    #expect(try entries() == ["vaultkeeper-c-20251122T000000Z-1.snap"])
    #expect(try String(contentsOfFile: path, encoding: .utf8) == "part one part two")
    let mode = try #require(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
    #expect(mode == 0o600)
    #expect(writer.bytesWritten == 17)
  }

  @Test func abortLeavesNothingAndKeepsEarlierSnapshots() throws {
    let earlier = directory + "/vaultkeeper-c-20251121T000000Z-1.snap"
    _ = FileManager.default.createFile(atPath: earlier, contents: Data("old".utf8))
    let writer = try SnapshotFileWriter(directory: directory)
    try Array("partial".utf8).withUnsafeBytes { try writer.write($0) }
    writer.abort()
    #expect(try entries() == ["vaultkeeper-c-20251121T000000Z-1.snap"])
    #expect(try String(contentsOfFile: earlier, encoding: .utf8) == "old")
    #expect(throws: SnapshotFileWriter.Failure.self) { _ = try writer.commit(as: "x.snap") }
  }

  @Test func droppingTheWriterRemovesItsFile() throws {
    do {
      let writer = try SnapshotFileWriter(directory: directory)
      try Array("partial".utf8).withUnsafeBytes { try writer.write($0) }
    }
    #expect(try entries().isEmpty)
  }

  @Test func missingDirectoryIsAClearError() {
    do {
      _ = try SnapshotFileWriter(directory: directory + "/nope")
      Issue.record("created a file in a missing directory")
    } catch {
      #expect(error.message.contains("cannot create a file in \(directory)/nope"))
    }
  }
}

@Suite struct SnapshotDirectoryTests {
  @Test func listsOnlyOurSnapshotsNewestFirst() throws {
    let directory = NSTemporaryDirectory() + "vk-dir-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    for name in ["vaultkeeper-c-20251121T000000Z-5.snap", "vaultkeeper-c-20251122T000000Z-9.snap", "notes.txt", "backup.snap",
      ".vaultkeeper-snapshot-abc.tmp"]
    {
      _ = FileManager.default.createFile(atPath: "\(directory)/\(name)", contents: Data("1234".utf8))
    }
    try FileManager.default.createDirectory(atPath: "\(directory)/vaultkeeper-c-20251123T000000Z-1.snap", withIntermediateDirectories: false)
    let entries = SnapshotDirectory.list(directory)
    #expect(entries.map(\.name.fileName) == ["vaultkeeper-c-20251122T000000Z-9.snap", "vaultkeeper-c-20251121T000000Z-5.snap"])
    #expect(entries.allSatisfy { $0.bytes == 4 })
    #expect(SnapshotDirectory.list(directory + "/missing").isEmpty)
  }
}
