/// Where a standby's 307 points: `sys/storage/raft/snapshot` and `snapshot-force` are never
/// forwarded by Vault, so saving and restoring both follow the redirect to the active node,
/// re-sending the token (and, for a restore, the body).
enum StandbyRedirect {
  /// The active node's address from a 307 `Location`, with this node's TLS settings. Plain http
  /// stays limited to loopback, as for configured addresses.
  static func target(_ location: String, from node: NodeConfig) throws(SnapshotError) -> NodeConfig {
    let base = location.firstRange(of: "/v1/").map { String(location[..<$0.lowerBound]) } ?? location
    guard case .success(let address) = VaultAddress.parse(base), address.scheme != .unix else {
      throw SnapshotError(.vault, "the standby redirected to an address that is not usable: \(location)")
    }
    if address.scheme == .http && !address.isLocal {
      throw SnapshotError(.vault, "refusing to send the token over plain http to \(base) (redirect from a standby)")
    }
    var next = node
    next.address = address
    next.unit = nil
    return next
  }
}
