// SPDX-License-Identifier: Apache-2.0
/// Where a standby's 307 points: `sys/storage/raft/snapshot` and `snapshot-force` are never
/// forwarded by Vault, so saving and restoring both follow the redirect to the active node,
/// re-sending the token (and, for a restore, the body).
///
/// A redirect is an answer from the network, and following it hands over a Vault token (and,
/// for a restore, all of Vault's data). So it is followed only to a node the operator
/// configured (`[vault]` or a `[[peer]]`, matched by scheme, host and port as written there),
/// with that node's own TLS settings, and never from https to plain http.
enum StandbyRedirect {
  /// The configured node a 307 `Location` names.
  /// - Parameters:
  ///   - from: the node that answered with the redirect.
  ///   - configured: the nodes of the configuration, the local one first.
  static func target(_ location: String, from node: NodeConfig, configured: [NodeConfig]) throws(SnapshotError) -> NodeConfig {
    let base = location.firstRange(of: "/v1/").map { String(location[..<$0.lowerBound]) } ?? location
    guard case .success(let address) = VaultAddress.parse(base), address.scheme != .unix else {
      throw SnapshotError(.vault, "the standby redirected to an address that is not usable: \(location)")
    }
    if address.scheme == .http && node.address.scheme != .http {
      throw SnapshotError(
        .vault, "refusing to follow the standby \(node.name)'s redirect from https to plain http (\(base)): the token would travel unencrypted")
    }
    guard let match = configured.first(where: { Self.sameEndpoint($0.address, address) }) else {
      throw SnapshotError(
        .vault,
        "the standby \(node.name) redirected to \(base), which is not a configured node: not followed, nothing was sent there. "
          + "If \(base) is the active node, add it as a [[peer]] (address = \"\(base)\")")
    }
    return match
  }

  /// Same scheme, host (case-insensitive) and port. Names are not resolved: `localhost` and
  /// `127.0.0.1` are different nodes here, as they are for TLS.
  static func sameEndpoint(_ a: VaultAddress, _ b: VaultAddress) -> Bool {
    a.scheme == b.scheme && a.host.lowercased() == b.host.lowercased() && a.port == b.port
  }
}
