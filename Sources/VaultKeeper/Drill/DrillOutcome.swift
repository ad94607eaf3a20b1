// SPDX-License-Identifier: Apache-2.0
/// The steps of a restore drill, in order. A failure names the step it happened in, so the
/// operator knows how far the snapshot got (and the failure counter can be labelled by it).
public enum DrillStage: String, Sendable, CaseIterable {
  /// The fresh working directory under the state directory.
  case prepare
  /// Reading the snapshot file whole (decrypting a `.snap.age`) and checking it like `snapshot verify`.
  case verify
  /// Starting the throwaway server.
  case start
  /// `sys/init` with one share, and unsealing the empty server with it.
  case initialise
  /// `PUT sys/storage/raft/snapshot-force` with the throwaway root token.
  case restore
  /// Restarting the server, which seals itself after a forced restore.
  case restart
  /// Submitting the shares vaultkeeper holds.
  case unseal
  /// Active after the unseal, and the Raft applied index at least the snapshot's.
  case check
  /// An AppRole login with the snapshot credentials against the restored data.
  case login

  /// What a terminal shows while the stage runs.
  public var title: String {
    switch self {
    case .prepare: "preparing a private working directory"
    case .verify: "verifying the snapshot"
    case .start: "starting a throwaway server"
    case .initialise: "initialising the throwaway server"
    case .restore: "restoring the snapshot into it (snapshot-force)"
    case .restart: "restarting it (it seals itself after the restore)"
    case .unseal: "unsealing it with the shares vaultkeeper holds"
    case .check: "checking it is active with the snapshot's data"
    case .login: "logging in with the snapshot credentials (AppRole)"
    }
  }
}

/// Why a drill failed. Each reason says what it means for the operator's recovery, not only
/// what broke; none carries key material or tokens.
public enum DrillFailureReason: Error, Sendable, Equatable {
  /// The shares combine to a key that does not open the restored keyring.
  case sharesRejected
  /// The snapshot's seal wants more shares than vaultkeeper holds.
  case tooFewShares(held: Int, threshold: Int)
  /// The snapshot's cluster does not use Shamir shares (auto-unseal): nothing to prove with ours.
  case notShamir(sealType: String)
  /// No unseal key shares configured (`[unseal] key_file` or `credential`).
  case noShares
  /// The server binary could not be found or started.
  case binary(String)
  /// The snapshot file is unreadable, corrupt, or cannot be decrypted.
  case badSnapshot(String)
  /// The throwaway server exited on its own; the last lines of its log.
  case serverExited(String)
  /// The throwaway server refused or failed a request.
  case server(String)
  /// Active, but its Raft applied index is behind the snapshot's: not all of it was restored.
  case indexBehind(applied: UInt64, snapshot: UInt64)
  /// The restored data does not accept the snapshot credentials.
  case loginFailed(String)
  /// The working directory could not be made or removed.
  case workspace(String)
  /// The drill took longer than `[snapshot.drill] timeout`.
  case timedOut(Duration)
  /// Stopped on request (SIGTERM, Ctrl-C, shutdown).
  case cancelled
  /// Another restore drill holds the drill workspace (one run by hand beside the daemon's):
  /// no verdict on the snapshot.
  case busy(String)

  /// True when the failure is about the shares we hold: the one a real recovery would hit too.
  public var isAboutShares: Bool {
    switch self {
    case .sharesRejected, .tooFewShares: true
    default: false
    }
  }

  /// A short, stable name for labels and journal fields.
  public var name: String {
    switch self {
    case .sharesRejected: "shares-rejected"
    case .tooFewShares: "too-few-shares"
    case .notShamir: "not-shamir"
    case .noShares: "no-shares"
    case .binary: "binary"
    case .badSnapshot: "bad-snapshot"
    case .serverExited: "server-exited"
    case .server: "server"
    case .indexBehind: "index-behind"
    case .loginFailed: "login-failed"
    case .workspace: "workspace"
    case .timedOut: "timeout"
    case .cancelled: "cancelled"
    case .busy: "busy"
    }
  }

  public var message: String {
    switch self {
    case .sharesRejected:
      "the shares we hold do not unseal this snapshot: it was taken after a rekey, or from another cluster"
    case .tooFewShares(let held, let threshold):
      "the snapshot's cluster needs \(threshold) unseal key shares and vaultkeeper holds \(held): it was rekeyed to a higher "
        + "threshold, or the snapshot is from another cluster"
    case .notShamir(let type):
      "the snapshot's cluster uses a \(type) seal, not Shamir shares: a drill cannot unseal it with shares"
    case .noShares:
      "no unseal key shares are configured ([unseal] key_file or credential): there is nothing to prove the snapshot opens with"
    case .binary(let detail): "cannot run the server binary: \(detail)"
    case .badSnapshot(let detail): "the snapshot cannot be used: \(detail)"
    case .serverExited(let log): "the throwaway server exited" + (log.isEmpty ? "" : "; its last output:\n\(log)")
    case .server(let detail): "the throwaway server failed: \(detail)"
    case .indexBehind(let applied, let snapshot):
      "the restored server's Raft applied index is \(applied), below the snapshot's \(snapshot): the restore is incomplete"
    case .loginFailed(let detail): "the snapshot credentials do not log in to the restored data: \(detail)"
    case .workspace(let detail): "the drill's working directory: \(detail)"
    case .timedOut(let limit): "the drill took longer than \(DurationParsing.format(limit)) ([snapshot.drill] timeout)"
    case .cancelled: "the drill was stopped"
    case .busy(let detail): detail
    }
  }
}

public struct DrillFailure: Error, Sendable, Equatable, CustomStringConvertible {
  public var stage: DrillStage
  public var reason: DrillFailureReason

  public init(_ stage: DrillStage, _ reason: DrillFailureReason) {
    self.stage = stage
    self.reason = reason
  }

  public var description: String { "\(stage.rawValue): \(reason.message)" }
}

/// What a passed drill proved.
public struct DrillReport: Sendable, Equatable {
  /// The snapshot's own facts (meta.json), as verified.
  public var facts: SnapshotFacts
  /// The restored server's Raft applied index after the unseal.
  public var appliedIndex: UInt64
  /// Shares submitted until it unsealed.
  public var sharesUsed: Int
  /// Whether the AppRole login was tried (and passed).
  public var loggedIn: Bool
  public var duration: Duration
  /// The server binary the drill ran, and where it was found; set by whoever chose it.
  public var server: DrillBinary?

  public init(facts: SnapshotFacts, appliedIndex: UInt64, sharesUsed: Int, loggedIn: Bool, duration: Duration, server: DrillBinary? = nil) {
    self.server = server
    self.facts = facts
    self.appliedIndex = appliedIndex
    self.sharesUsed = sharesUsed
    self.loggedIn = loggedIn
    self.duration = duration
  }
}
