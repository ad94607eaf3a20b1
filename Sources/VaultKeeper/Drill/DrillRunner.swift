// SPDX-License-Identifier: Apache-2.0
/// Runs one restore drill of a snapshot file. The daemon's duty holds one; tests give it a stub,
/// so the schedule and the reporting are tested without a server.
public protocol DrillRunner: Sendable {
  /// Drills the snapshot at `path`. A cancelled task ends it with `.cancelled`, after the
  /// throwaway server is killed and its directory removed.
  func drill(path: String) async -> Result<DrillReport, DrillFailure>
}

/// The real drill: a throwaway server of `[snapshot.drill] binary` (else the Vault unit's
/// `ExecStart` binary, else `bao`/`vault` on PATH),
/// unsealed with the key shares of the running generation, and with AppRole snapshot
/// credentials, a login against the restored data.
public struct ServerDrillRunner: DrillRunner {
  public var config: SnapshotDrillConfig
  public var auth: SnapshotConfig.Auth
  public var keys: KeyShares?
  public var stateDirectory: String
  public var environment: [String: String]
  /// The Vault unit whose `ExecStart` names the server binary when none is configured, and who
  /// to ask; nil: no unit (or no bus), so PATH decides.
  public var serverUnit: String?
  public var unitWatcher: (any UnitWatcher)?
  public var makeTransport: @Sendable (NodeConfig) -> any HTTPTransport
  public var makeDecompressor: @Sendable () throws(SnapshotVerificationError) -> any StreamDecompressor

  public init(config: SnapshotDrillConfig, auth: SnapshotConfig.Auth, keys: KeyShares?, stateDirectory: String, environment: [String: String],
    serverUnit: String? = nil, unitWatcher: (any UnitWatcher)? = nil,
    makeTransport: @escaping @Sendable (NodeConfig) -> any HTTPTransport,
    makeDecompressor: @escaping @Sendable () throws(SnapshotVerificationError) -> any StreamDecompressor)
  {
    self.config = config
    self.auth = auth
    self.keys = keys
    self.stateDirectory = stateDirectory
    self.environment = environment
    self.serverUnit = serverUnit
    self.unitWatcher = unitWatcher
    self.makeTransport = makeTransport
    self.makeDecompressor = makeDecompressor
  }

  public func drill(path: String) async -> Result<DrillReport, DrillFailure> {
    guard let keys, !keys.shares.isEmpty else { return .failure(DrillFailure(.prepare, .noShares)) }
    let config = self.config
    let searchPath = environment["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin"
    let (unitWatcher, serverUnit) = (self.unitWatcher, self.serverUnit)
    let binary: DrillBinary
    // The D-Bus question and the file checks block: off the pool.
    switch await OffPool.run({
      DrillBinary.resolve(configured: config.binary, unit: DrillBinary.ask(unitWatcher, unit: serverUnit), searchPath: searchPath)
    }) {
    case .success(let found): binary = found
    case .failure(let failure): return .failure(failure)
    }
    let login: DrillLogin?
    switch await readLogin() {
    case .success(let read): login = read
    case .failure(let failure): return .failure(failure)
    }
    let drill = RestoreDrill(
      binary: binary, stateDirectory: stateDirectory, timeout: config.timeout, shares: keys, login: login, makeTransport: makeTransport)
    // The daemon holds no age identity: an encrypted snapshot fails at verify, and says why.
    let source = VerifiedSnapshotCopy(path: path, identityFile: nil, makeDecompressor: makeDecompressor)
    return await drill.run(source, progress: { _ in })
  }

  /// The AppRole credentials to log in with after the restore (small file reads, off the pool);
  /// nil for a static token, which may have been issued after the snapshot and proves nothing.
  private func readLogin() async -> Result<DrillLogin?, DrillFailure> {
    guard case .appRole(let roleID, let secretID, let mount) = auth else { return .success(nil) }
    let environment = self.environment
    return await OffPool.run {
      do throws(SnapshotError) {
        return .success(
          DrillLogin(
            mount: mount, roleID: try CredentialReader.read(roleID, what: "role ID", environment: environment),
            secretID: try CredentialReader.read(secretID, what: "secret ID", environment: environment)))
      } catch {
        return .failure(DrillFailure(.login, .loginFailed("cannot read the snapshot credentials: \(error.message)")))
      }
    }
  }
}
