// SPDX-License-Identifier: Apache-2.0
/// Sends a verified snapshot archive to Vault (`vaultkeeper snapshot restore`): streamed from
/// disk, to the active node (a standby's 307 to a configured node is followed with the token and
/// body re-sent), with
/// Vault's answers turned into messages an operator can act on. Verification happens before,
/// in the caller: nothing unverified is ever sent.
public struct SnapshotRestorer: Sendable {
  public var node: NodeConfig
  /// The other configured nodes (`[[peer]]`): the only places besides `node` a redirect may lead.
  public var peers: [NodeConfig] = []
  public var makeTransport: @Sendable (NodeConfig) -> any HTTPTransport
  /// The upload's total deadline comes from the archive's size (`TransferDeadline`).
  public var transfers: TransferDeadline

  public init(node: NodeConfig, makeTransport: @escaping @Sendable (NodeConfig) -> any HTTPTransport, transfers: TransferDeadline = .standard) {
    self.node = node
    self.makeTransport = makeTransport
    self.transfers = transfers
  }

  /// - Returns: the address of the node that accepted the archive.
  public func restore(file: FileSlice, token: SecretBytes, force: Bool) async throws(SnapshotError) -> String {
    var target = node
    for _ in 0..<4 {
      let transport = makeTransport(target)
      defer { transport.shutdown() }
      let client = VaultClient(transport: transport, timeout: target.timeout)
      let answer: RestoreResponse
      do {
        let limits = DownloadLimits(connectTimeout: target.connectTimeout, maxDuration: transfers.deadline(bytes: file.length))
        answer = try await client.restoreSnapshot(token: token, file: file, force: force, limits: limits)
      } catch {
        throw Self.explain(error, force: force)
      }
      switch answer {
      case .accepted: return target.name
      case .redirect(let location): target = try StandbyRedirect.target(location, from: target, configured: [node] + peers)
      }
    }
    throw SnapshotError(.vault, "too many redirects while looking for the active node")
  }

  /// Vault's refusals, in words that say what to do next.
  static func explain(_ error: VaultError, force: Bool) -> SnapshotError {
    guard case .http(let status, let errors) = error else { return SnapshotError(.vault, "restore failed: \(error)") }
    let text = errors.joined(separator: "; ")
    if status == 400, text.contains("snapshot-force") {
      return SnapshotError(
        .vault,
        "Vault refused the snapshot: it was taken by a cluster with different unseal (or auto-unseal) keys (\(text)). "
          + "If that is intended (restoring into a new cluster), run again with --force: afterwards Vault needs the unseal keys of the cluster the snapshot came from")
    }
    if status == 403 {
      return SnapshotError(
        .auth,
        "Vault refused the restore (403 \(text)): the token needs update on sys/storage/raft/snapshot\(force ? "-force" : "") "
          + "(the snapshot duty's policy deliberately lacks it; pass --token-file with an operator token)")
    }
    if status == 503 { return SnapshotError(.vault, "Vault cannot restore now (503 \(text)): is it sealed?") }
    return SnapshotError(.vault, "Vault refused the snapshot (\(status) \(text))")
  }
}
