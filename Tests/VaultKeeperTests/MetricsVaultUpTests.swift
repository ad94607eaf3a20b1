// SPDX-License-Identifier: Apache-2.0
import Testing
@testable import VaultKeeper

/// `vaultkeeper_vault_up` is 1 only for a node that answered with a Vault status (issue #10,
/// item 8): not before its first check, when its state is still unknown.
@Suite struct MetricsVaultUpTests {
  static func up(_ state: NodeState) -> String? {
    let node = NodeReport(address: "https://127.0.0.1:8200", state: state, since: 0, lastCheck: 0)
    let text = MetricsText.render(DaemonReport(pid: 1, startedAt: 0, updatedAt: 0, configPath: "/c", nodes: [node]))
    let prefix = "vaultkeeper_vault_up{node=\"https://127.0.0.1:8200\"} "
    return text.split(separator: "\n").first { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) }
  }

  @Test func aNodeNotCheckedYetIsNotUp() {
    #expect(Self.up(.unknown) == "0")
  }

  @Test(arguments: NodeState.allCases.filter { $0 != .unknown })
  func everyKnownStateHasItsValue(state: NodeState) {
    #expect(Self.up(state) == (state == .unreachable || state == .protocolError ? "0" : "1"))
  }
}
