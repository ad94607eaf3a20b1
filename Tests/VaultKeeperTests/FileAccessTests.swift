// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing

@testable import VaultKeeper

/// `FileAccess.writeAtomically` with a temporary name (`PATH.tmp.PID`) that is in the way
/// (issue #10, item 8): it used to call itself until the stack overflowed when the leftover
/// could not be removed.
@Suite struct FileAccessTests {
  static func directory() throws -> String {
    let path = NSTemporaryDirectory() + "vk-fileaccess-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
    return path
  }

  @Test func aLeftoverThatCannotBeRemovedIsAnErrorNotACrash() throws {
    let dir = try Self.directory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let path = dir + "/state.json"
    // A directory where the temporary file would go: unlink(2) cannot remove it.
    try FileManager.default.createDirectory(atPath: "\(path).tmp.\(getpid())", withIntermediateDirectories: false)
    #expect {
      try FileAccess.writeAtomically(path: path, bytes: Array("{}".utf8), durable: false)
    } throws: { error in
      guard let failure = error as? FileAccess.Failure else { return false }
      return failure.errno == EISDIR && failure.operation == "remove the leftover \(path).tmp.\(getpid())"
    }
    #expect(!FileManager.default.fileExists(atPath: path))
  }

  @Test func aLeftoverFileIsReplaced() throws {
    let dir = try Self.directory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let path = dir + "/state.json"
    try Data("stale".utf8).write(to: URL(fileURLWithPath: "\(path).tmp.\(getpid())"))
    try FileAccess.writeAtomically(path: path, bytes: Array("{\"ok\":true}".utf8), mode: 0o600)
    #expect(try String(contentsOfFile: path, encoding: .utf8) == "{\"ok\":true}")
    #expect(!FileManager.default.fileExists(atPath: "\(path).tmp.\(getpid())"))
    #expect(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int == 0o600)
  }
}
