// SPDX-License-Identifier: Apache-2.0
import Testing
@testable import VaultKeeper

/// A standby's 307 is followed only to a configured node, with that node's settings, and never
/// from https to plain http (issue #10, item 7).
@Suite struct StandbyRedirectTests {
  static func node(_ text: String, ca: String? = nil, serverName: String? = nil) throws -> NodeConfig {
    NodeConfig(address: try VaultAddress.parse(text).get(), caFile: ca, serverName: serverName)
  }

  @Test func aConfiguredPeerIsFollowedWithItsOwnSettings() throws {
    let local = try Self.node("https://10.0.0.1:8200", ca: "/etc/vault/ca.pem", serverName: "vault-a")
    let peer = try Self.node("https://10.0.0.2:8200", ca: "/etc/vault/ca-b.pem", serverName: "vault-b")
    let next = try StandbyRedirect.target("https://10.0.0.2:8200/v1/sys/storage/raft/snapshot", from: local, configured: [local, peer])
    #expect(next == peer)
    // Host names match case-insensitively; the default port (8200) counts as written out.
    let named = try Self.node("https://Vault-B.example")
    #expect(try StandbyRedirect.target("https://VAULT-b.example:8200/v1/sys/storage/raft/snapshot", from: local, configured: [local, named]) == named)
  }

  @Test(arguments: [
    "https://10.0.0.9:8200/v1/sys/storage/raft/snapshot",  // another host
    "https://10.0.0.2:8201/v1/sys/storage/raft/snapshot",  // another port of a peer's host
    "https://127.0.0.1:8200/v1/sys/storage/raft/snapshot",  // loopback is no exception
    "https://localhost:8200/v1/sys/storage/raft/snapshot",  // a name is not resolved to a configured IP
  ])
  func anUnconfiguredNodeIsRefused(location: String) throws {
    let local = try Self.node("https://10.0.0.1:8200")
    let peer = try Self.node("https://10.0.0.2:8200")
    let loopbackPeer = try Self.node("https://127.0.0.1:9200")
    #expect {
      try StandbyRedirect.target(location, from: local, configured: [local, peer, loopbackPeer])
    } throws: { error in
      let message = "\(error)"
      return message.contains("not a configured node") && message.contains("[[peer]]") && message.contains("nothing was sent")
    }
  }

  @Test func httpsIsNeverDowngradedEvenToAConfiguredLoopbackNode() throws {
    let local = try Self.node("https://127.0.0.1:8200")
    let plain = try Self.node("http://127.0.0.1:8300")
    #expect {
      try StandbyRedirect.target("http://127.0.0.1:8300/v1/sys/storage/raft/snapshot", from: local, configured: [local, plain])
    } throws: { error in
      "\(error)".contains("from https to plain http")
    }
  }

  @Test func plainHttpBetweenConfiguredLoopbackNodesStaysAllowed() throws {
    let local = try Self.node("http://127.0.0.1:8200")
    let peer = try Self.node("http://127.0.0.1:8300")
    #expect(try StandbyRedirect.target("http://127.0.0.1:8300/v1/sys/storage/raft/snapshot", from: local, configured: [local, peer]) == peer)
  }

  @Test func aLocationThatIsNoAddressIsRefused() throws {
    let local = try Self.node("https://10.0.0.1:8200")
    for location in ["", "/v1/sys/storage/raft/snapshot", "unix:///run/vault.sock", "ftp://10.0.0.1:8200/v1/x"] {
      #expect(throws: SnapshotError.self) { try StandbyRedirect.target(location, from: local, configured: [local]) }
    }
  }
}
