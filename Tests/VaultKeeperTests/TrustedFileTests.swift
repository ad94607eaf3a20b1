// SPDX-License-Identifier: Apache-2.0
import Testing
@testable import VaultKeeper

/// The rule for files that decide where shares and backups go (`TrustedFile`): never writable by
/// other users; group-writable only for group root.
@Suite struct TrustedFileTests {
  @Test(arguments: [
    (UInt32(0o100644), UInt32(0), nil),
    (0o100600, 1000, nil),
    (0o100444, 1000, nil),
    (0o100664, 0, nil),  // root's group
    (0o100666, 0, TrustedFile.Problem.writableByOthers(mode: 0o666)),
    (0o100602, 0, .writableByOthers(mode: 0o602)),
    (0o100664, 65534, .writableByGroup(mode: 0o664, gid: 65534)),
    (0o100620, 1000, .writableByGroup(mode: 0o620, gid: 1000)),
    (0o101777, 0, .writableByOthers(mode: 0o1777)),
  ] as [(UInt32, UInt32, TrustedFile.Problem?)])
  func problems(mode: UInt32, gid: UInt32, expected: TrustedFile.Problem?) {
    #expect(TrustedFile.problem(mode: mode, gid: gid) == expected)
  }

  @Test func messagesNameTheFileTheModeAndTheFix() {
    let world = TrustedFile.message(.writableByOthers(mode: 0o666), path: "/etc/vk.toml", decides: "where the unseal keys go")
    #expect(world == "/etc/vk.toml is writable by any user (mode 0666): whoever can change it decides where the unseal keys go. Fix it with: chmod o-w /etc/vk.toml")
    let group = TrustedFile.message(.writableByGroup(mode: 0o664, gid: 0), path: "/ca.pem", decides: "x")
    #expect(group.contains("writable by group root (gid 0) (mode 0664)") && group.contains("chmod g-w /ca.pem"))
    #expect(TrustedFile.octal(0o40) == "0040")
  }
}
