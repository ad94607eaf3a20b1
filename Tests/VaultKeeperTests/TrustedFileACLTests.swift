// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing

@testable import VaultKeeper

/// POSIX ACLs on the files that decide where shares and backups go (`TrustedFile`). With an
/// ACL, a file's group bits are only the mask: `setfacl -m u:nobody:rw` on a root:root 0644
/// file shows as 0664, which the mode rule accepts for group root. The attack is real: the ACL
/// is set with the real `setfacl` (Debian's `acl` package) and the user it names then really
/// writes the file; the loader must refuse it (insecure: exit 77), naming the file and the ACL.
@Suite(.serialized) struct TrustedFileACLTests {
  static let nobody: UInt32 = 65534

  /// A root-owned file, mode 0644, in a fresh directory others may enter.
  func file(_ name: String, _ text: String) throws -> (directory: String, path: String) {
    let directory = "/tmp/vk-acl-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
    chmod(directory, 0o755)
    let path = "\(directory)/\(name)"
    try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    chmod(path, 0o644)
    return (directory, path)
  }

  /// Runs a tool and fails the test with its output when it does not succeed.
  func run(_ arguments: [String]) throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    let output = Pipe()
    process.standardOutput = output
    process.standardError = output
    try process.run()
    let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
      throw TrustedFileACLFailure("\(arguments.joined(separator: " ")) failed (\(process.terminationStatus)): \(text)")
    }
  }

  func mode(_ path: String) -> UInt32 {
    var info = stat()
    return stat(path, &info) == 0 ? UInt32(info.st_mode) & 0o7777 : 0
  }

  func load(_ path: String) -> ConfigError? {
    do {
      _ = try ConfigLoader().load(path: path)
      return nil
    } catch {
      return error
    }
  }

  static let config = "[vault]\naddress = \"https://127.0.0.1:8200\"\n"

  /// Like Tests/IntegrationTests/test_trusted_files.py: the file must be root's, and another
  /// user must really write it (setpriv), which only root can arrange.
  static let asRoot = ConditionTrait.enabled(if: getuid() == 0, "needs root: a root-owned file and another user writing it")

  @Test(asRoot) func aConfigurationAnotherUserMayWriteThroughAnACLIsRefused() throws {
    let (directory, path) = try file("vaultkeeper.toml", Self.config)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    #expect(load(path) == nil)  // root:root 0644: trusted

    try run(["setfacl", "-m", "u:nobody:rw", path])
    #expect(mode(path) == 0o664)  // what the mode rule saw, and accepted for group root
    // The attack works: nobody really rewrites the file through the ACL.
    try run(["setpriv", "--reuid=\(Self.nobody)", "--regid=\(Self.nobody)", "--clear-groups",
      "sh", "-c", "printf '[vault]\\naddress = \"https://10.9.9.9:8200\"\\n' > \"$1\"", "attacker", path])
    #expect(try String(contentsOfFile: path, encoding: .utf8).contains("10.9.9.9"))

    let error = try #require(load(path))
    #expect(error.insecure)  // exit 77, like an insecure key file
    #expect(error.message.contains(path))
    #expect(error.message.contains("writable by user nobody (uid 65534) through a POSIX ACL (mode 0664"))
    #expect(error.message.contains("setfacl -x u:65534 \(path)"))

    // The fix the message names makes it trusted again.
    try run(["setfacl", "-x", "u:65534", path])
    #expect(load(path) == nil)
  }

  @Test(asRoot) func aCAFileANamedGroupMayWriteIsRefusedUnderItsKey() throws {
    let (directory, ca) = try file("ca.pem", "x")
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let configPath = "\(directory)/vaultkeeper.toml"
    try Data((Self.config + "ca_file = \"\(ca)\"\n").utf8).write(to: URL(fileURLWithPath: configPath))
    chmod(configPath, 0o644)
    #expect(load(configPath) == nil)

    try run(["setfacl", "-m", "g:nogroup:rw", ca])
    let error = try #require(load(configPath))
    #expect(error.insecure && error.key == "vault.ca_file")
    #expect(error.message.contains("\(ca) is writable by group nogroup (gid 65534) through a POSIX ACL"))
  }

  @Test(asRoot) func entriesThatCannotWriteAreAccepted() throws {
    let (directory, path) = try file("vaultkeeper.toml", Self.config)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    // root named in the ACL, and another user who may only read: nobody else can write.
    try run(["setfacl", "-m", "u:root:rw,u:nobody:r", path])
    #expect(load(path) == nil)
    // Write granted, but capped by the mask: not effective.
    try run(["setfacl", "-m", "u:nobody:rw,m::r", path])
    #expect(mode(path) == 0o644)
    #expect(load(path) == nil)
    // The mask lifted again: refused.
    try run(["setfacl", "-m", "m::rw", path])
    #expect(load(path)?.insecure == true)
  }

  @Test func theKernelsAttributeFormatIsRead() throws {
    // getfacl of a root:root file after `setfacl -m u:nobody:rw`, as os.getxattr returned it.
    let hex = "0200000001000600ffffffff02000600feff000004000400ffffffff10000600ffffffff20000400ffffffff"
    let bytes = stride(from: 0, to: hex.count, by: 2).map { i -> UInt8 in
      let start = hex.index(hex.startIndex, offsetBy: i)
      return UInt8(hex[start..<hex.index(start, offsetBy: 2)], radix: 16) ?? 0
    }
    let acl = try #require(PosixACL(xattr: bytes))
    #expect(acl.entries.count == 5)
    #expect(acl.writers(owningGroup: 0) == [PosixACL.Writer(kind: .user, id: 65534, owningGroup: false)])
    #expect(TrustedFile.problem(mode: 0o100664, gid: 0) == nil)  // the mode alone says: fine
    #expect(TrustedFile.problem(mode: 0o100664, gid: 0, acl: acl) == .writableThroughACL(mode: 0o664, writer: .init(kind: .user, id: 65534, owningGroup: false)))
    #expect(PosixACL(xattr: [1, 0, 0, 0]) == nil)  // not version 2
    #expect(PosixACL(xattr: Array(bytes.dropLast())) == nil)
  }
}

struct TrustedFileACLFailure: Error, CustomStringConvertible {
  var description: String
  init(_ description: String) { self.description = description }
}
