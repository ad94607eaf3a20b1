// SPDX-License-Identifier: Apache-2.0
import Synchronization

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
#endif

/// Where the snapshot of a drill comes from. Reading and verifying is blocking file work (and
/// the decompressor lives outside the core), so the caller provides it; the drill runs it on a
/// thread of its own.
public protocol DrillSnapshotSource: Sendable {
  /// Reads the snapshot whole, verifies it like `snapshot verify` (decrypting a `.snap.age`), and
  /// writes exactly the verified plain archive to `destination` (a new 0600 file). Polls
  /// `isCancelled` between pieces and gives up when it turns true.
  func writeVerified(to destination: String, isCancelled: @escaping @Sendable () -> Bool) -> Result<SnapshotFacts, SnapshotVerificationError>
}

/// The snapshot credentials, when they are AppRole: a login with them against the restored data
/// proves they survive a recovery too.
public struct DrillLogin: Sendable {
  public var mount: String
  public var roleID: SecretBytes
  public var secretID: SecretBytes

  public init(mount: String, roleID: SecretBytes, secretID: SecretBytes) {
    self.mount = mount
    self.roleID = roleID
    self.secretID = secretID
  }
}

/// A restore drill: restores a snapshot into a throwaway server in a private directory and
/// unseals it with the shares vaultkeeper holds (issue #12). Whatever happens, the server's
/// process group is killed and the directory removed before `run` returns.
public struct RestoreDrill: Sendable {
  /// The server binary, and where it was found (it goes into the report).
  public var binary: DrillBinary
  public var stateDirectory: String
  public var timeout: Duration
  public var shares: KeyShares
  public var login: DrillLogin?
  public var makeTransport: @Sendable (NodeConfig) -> any HTTPTransport

  public init(binary: DrillBinary, stateDirectory: String, timeout: Duration, shares: KeyShares, login: DrillLogin? = nil,
    makeTransport: @escaping @Sendable (NodeConfig) -> any HTTPTransport)
  {
    self.binary = binary
    self.stateDirectory = stateDirectory
    self.timeout = timeout
    self.shares = shares
    self.login = login
    self.makeTransport = makeTransport
  }

  /// Runs the drill; `progress` is told each stage as it begins. A cancelled task ends the
  /// drill at once (`.cancelled`), like the timeout does (`.timedOut`).
  public func run(_ source: some DrillSnapshotSource, progress: @escaping @Sendable (DrillStage) -> Void) async -> Result<DrillReport, DrillFailure> {
    let started = ContinuousClock.now
    progress(.prepare)
    // Making the workspace may remove a crashed drill's leftover (a whole Raft tree): off the
    // cooperative pool, like every other file operation of a drill the daemon runs.
    let stateDirectory = self.stateDirectory
    let made: Result<DrillWorkspace, DrillFailure> = await OffPool.run {
      do throws(DrillFailure) { return .success(try DrillWorkspace(stateDirectory: stateDirectory)) } catch { return .failure(error) }
    }
    let workspace: DrillWorkspace
    switch made {
    case .success(let ready): workspace = ready
    case .failure(let error): return .failure(error)
    }
    let state = DrillState()
    let timeout = self.timeout
    var outcome: Result<DrillReport, DrillFailure> = await withTaskGroup(of: Result<DrillReport, DrillFailure>?.self) { group in
      group.addTask {
        do throws(DrillFailure) {
          return .success(try await self.stages(source, workspace: workspace, state: state, progress: progress, started: started))
        } catch {
          return .failure(error)
        }
      }
      group.addTask {
        do { try await Task.sleep(for: timeout) } catch { return nil }
        return .failure(DrillFailure(state.stage, .timedOut(timeout)))
      }
      var first: Result<DrillReport, DrillFailure>?
      while first == nil, let next = await group.next() { first = next }
      state.cancel()
      group.cancelAll()
      return first ?? .failure(DrillFailure(state.stage, .cancelled))
    }
    if Task.isCancelled, case .failure(let failure) = outcome, failure.reason != .cancelled {
      outcome = .failure(DrillFailure(failure.stage, .cancelled))
    }
    // Cleanup whatever the outcome: the server's group first (it writes into the directory),
    // then our connection to it, then the directory.
    await state.server?.kill()
    if let transport = state.transport { await OffPool.run { transport.shutdown() } }
    // The directory holds a copy of the snapshot and the restored Raft data: gigabytes to unlink.
    let removed: Result<Void, DrillFailure> = await OffPool.run {
      do throws(DrillFailure) { return .success(try workspace.remove()) } catch { return .failure(error) }
    }
    if case .failure(let error) = removed, case .success = outcome { outcome = .failure(error) }
    if case .success(var report) = outcome {
      report.duration = ContinuousClock.now - started
      outcome = .success(report)
    }
    return outcome
  }

  private func stages(
    _ source: some DrillSnapshotSource, workspace: DrillWorkspace, state: DrillState, progress: @Sendable (DrillStage) -> Void,
    started: ContinuousClock.Instant
  ) async throws(DrillFailure) -> DrillReport {
    func begin(_ stage: DrillStage) throws(DrillFailure) {
      if Task.isCancelled { throw DrillFailure(state.stage, .cancelled) }
      state.stage = stage
      progress(stage)
    }
    guard !shares.shares.isEmpty else { throw DrillFailure(.prepare, .noShares) }

    try begin(.verify)
    let archive = workspace.archivePath
    let verified = await withTaskCancellationHandler {
      await OffPool.run { source.writeVerified(to: archive, isCancelled: { state.isCancelled }) }
    } onCancel: {
      state.cancel()
    }
    let facts: SnapshotFacts
    switch verified {
    case .success(let good): facts = good
    case .failure(let error): throw DrillFailure(.verify, state.isCancelled ? .cancelled : .badSnapshot(error.reason))
    }

    try begin(.start)
    let written: Result<Void, DrillFailure> = await OffPool.run { [self] in
      do throws(DrillFailure) { return .success(try self.writeServerFiles(workspace)) } catch { return .failure(error) }
    }
    try written.get()
    let node = NodeConfig(
      address: VaultAddress(scheme: .unix, host: "", port: 0, socketPath: workspace.socketPath, display: "unix://\(workspace.socketPath)"),
      timeout: .seconds(30), connectTimeout: .seconds(2))
    let transport = makeTransport(node)
    state.transport = transport
    let client = VaultClient(transport: transport, timeout: .seconds(30))
    try await startServer(workspace, state: state, client: client, stage: .start)

    try begin(.initialise)
    let initialised: DrillInit
    do {
      initialised = try await client.initialiseForDrill()
      guard case .status(let status) = try await client.submit(share: initialised.share), !status.sealed else {
        throw DrillFailure(.initialise, .server("its own share did not unseal it"))
      }
    } catch let error as DrillFailure {
      throw error
    } catch let error as VaultError {
      throw DrillFailure(.initialise, .server(error.description))
    } catch {
      throw DrillFailure(.initialise, .server("\(error)"))
    }
    try await waitUntil(.initialise, state: state) { await client.healthStatus() == 200 ? true : nil }

    try begin(.restore)
    let bytes = FileAccess.size(path: archive) ?? 0
    do {
      let answer = try await client.restoreSnapshot(
        token: initialised.rootToken, file: FileSlice(path: archive, offset: 0, length: bytes), force: true,
        limits: DownloadLimits(connectTimeout: .seconds(5)))
      guard answer == .accepted else { throw DrillFailure(.restore, .server("it answered the restore with a redirect")) }
    } catch let error as DrillFailure {
      throw error
    } catch {
      throw DrillFailure(.restore, .server("the restore was refused: \(error)"))
    }
    // It installs the snapshot after answering and then seals itself (the restored keyring is
    // not the one it was unsealed with).
    try await waitUntil(.restore, state: state) { (try? await client.sealStatus())?.sealed == true ? true : nil }

    try begin(.restart)
    if let server = state.server, !(await server.stop(grace: .seconds(30))) {
      await server.kill()
    }
    try await startServer(workspace, state: state, client: client, stage: .restart)

    try begin(.unseal)
    let used = try await unseal(client, state: state)

    try begin(.check)
    try await waitUntil(.check, state: state) { await client.healthStatus() == 200 ? true : nil }
    // The applied index catches up with the restored log within moments of becoming active;
    // a server that stays behind did not get all of the snapshot.
    let catchUp = ContinuousClock.now + .seconds(10)
    var applied: UInt64 = 0
    while true {
      if let leader = try? await client.leader(), let index = leader.raftAppliedIndex { applied = index }
      if applied >= facts.index { break }
      if ContinuousClock.now >= catchUp { throw DrillFailure(.check, .indexBehind(applied: applied, snapshot: facts.index)) }
      try await pause(.check, state: state)
    }

    var loggedIn = false
    if let login {
      try begin(.login)
      do {
        _ = try await client.loginAppRole(mount: login.mount, roleID: login.roleID, secretID: login.secretID)
        loggedIn = true
      } catch {
        throw DrillFailure(.login, .loginFailed(error.description))
      }
    }
    return DrillReport(facts: facts, appliedIndex: applied, sharesUsed: used, loggedIn: loggedIn, duration: ContinuousClock.now - started, server: binary)
  }

  /// The certificate, its key and the configuration, each a new 0600 file.
  private func writeServerFiles(_ workspace: DrillWorkspace) throws(DrillFailure) {
    let certificate: DrillCertificate.Files
    do {
      certificate = try DrillCertificate.make()
    } catch {
      throw DrillFailure(.start, .workspace("cannot make the listener's certificate: \(error)"))
    }
    let config = DrillServerConfig(
      raftPath: workspace.raftPath, socketPath: workspace.socketPath, certificateFile: "\(workspace.path)/listener.pem",
      keyFile: "\(workspace.path)/listener-key.pem")
    do {
      guard mkdir(workspace.raftPath, 0o700) == 0 else { throw FileAccess.Failure(errno: errno, operation: "mkdir \(workspace.raftPath)") }
      try FileAccess.writeAtomically(path: config.certificateFile, bytes: Array(certificate.certificatePEM.utf8), mode: 0o600, durable: false)
      try FileAccess.writeAtomically(path: config.keyFile, bytes: Array(certificate.keyPEM.utf8), mode: 0o600, durable: false)
      try FileAccess.writeAtomically(path: workspace.configPath, bytes: Array(config.hcl.utf8), mode: 0o600, durable: false)
    } catch {
      throw DrillFailure(.start, .workspace("\(error)"))
    }
  }

  /// Starts the server and waits until its socket answers.
  private func startServer(_ workspace: DrillWorkspace, state: DrillState, client: VaultClient, stage: DrillStage) async throws(DrillFailure) {
    switch await DrillServerProcess.start(binary: binary.path, configPath: workspace.configPath, logPath: workspace.logPath) {
    case .failure(let reason): throw DrillFailure(stage, reason)
    case .success(let server):
      state.server = server
      await OffPool.run { workspace.recordServer(server.pid) }
    }
    try await waitUntil(stage, state: state) { (try? await client.sealStatus()) != nil ? true : nil }
  }

  /// Submits the shares we hold, after checking the restored seal can take them at all.
  private func unseal(_ client: VaultClient, state: DrillState) async throws(DrillFailure) -> Int {
    let status: SealStatus
    do {
      status = try await client.resetUnseal()
    } catch {
      throw DrillFailure(.unseal, .server("seal status: \(error)"))
    }
    guard status.acceptsUnsealShares else { throw DrillFailure(.unseal, .notShamir(sealType: status.type)) }
    guard shares.count >= status.threshold else { throw DrillFailure(.unseal, .tooFewShares(held: shares.count, threshold: status.threshold)) }
    var used = 0
    for share in shares.shares {
      let answer: UnsealAnswer
      do {
        answer = try await client.submit(share: share)
      } catch {
        throw DrillFailure(.unseal, .server("unseal: \(error)"))
      }
      used += 1
      switch answer {
      case .wrongKey: throw DrillFailure(.unseal, .sharesRejected)
      case .status(let after) where !after.sealed: return used
      case .status: continue
      }
    }
    // Every share taken, still sealed: duplicates of one share, or fewer distinct ones than the
    // threshold. Vault cannot tell which; for the recovery it is the same.
    throw DrillFailure(.unseal, .sharesRejected)
  }

  /// Polls `condition` until it yields a value; fails at once when the server exits.
  @discardableResult
  private func waitUntil<T>(_ stage: DrillStage, state: DrillState, _ condition: () async -> T?) async throws(DrillFailure) -> T {
    while true {
      if let value = await condition() { return value }
      try await pause(stage, state: state)
    }
  }

  private func pause(_ stage: DrillStage, state: DrillState) async throws(DrillFailure) {
    if let server = state.server, server.hasExited { throw DrillFailure(stage, .serverExited(await OffPool.run { server.logTail() })) }
    do {
      try await Task.sleep(for: .milliseconds(50))
    } catch {
      throw DrillFailure(stage, .cancelled)
    }
  }
}

/// What the drill's stages share with its timeout and its cleanup.
final class DrillState: Sendable {
  private struct Fields {
    var stage: DrillStage = .prepare
    var cancelled = false
    var server: DrillServerProcess?
    var transport: (any HTTPTransport)?
  }
  private let fields = Mutex(Fields())

  var stage: DrillStage {
    get { fields.withLock { $0.stage } }
    set { fields.withLock { $0.stage = newValue } }
  }
  var isCancelled: Bool { fields.withLock { $0.cancelled } }
  func cancel() { fields.withLock { $0.cancelled = true } }
  var server: DrillServerProcess? {
    get { fields.withLock { $0.server } }
    set { fields.withLock { $0.server = newValue } }
  }
  var transport: (any HTTPTransport)? {
    get { fields.withLock { $0.transport } }
    set { fields.withLock { $0.transport = newValue } }
  }
}
