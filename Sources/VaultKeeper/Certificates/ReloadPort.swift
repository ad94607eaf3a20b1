// SPDX-License-Identifier: Apache-2.0
/// How Vault is told to re-read its certificate (issue #5): `systemd` (ReloadUnit over D-Bus,
/// in the Systemd target), `signal` (SIGHUP to the unit's main PID, Systemd target) or
/// `command` (`CommandReloader`, here). The certificate duty only sees this protocol, so its
/// decisions are tested with fakes.
public protocol VaultReloader: Sendable {
  /// Asks for one reload and waits for its outcome. Never throws: every failure is an outcome
  /// with a reason fit for the journal. Blocking work happens off the cooperative pool.
  func reload() async -> ReloadOutcome
  /// What this reloader does, for log lines: `systemd reload of vault.service`.
  var summary: String { get }
}

/// The result of one reload request.
public struct ReloadOutcome: Sendable, Equatable, CustomStringConvertible {
  public enum Result: String, Sendable, Equatable {
    /// The request was carried out: the systemd job finished `done`, the signal was
    /// delivered, the command exited 0. Whether Vault now serves the new certificate is for
    /// the caller to check.
    case succeeded
    /// It was refused or failed: job result other than `done`, no main PID, `kill` denied,
    /// non-zero exit, the command could not be started.
    case failed
    /// No answer in time: the job's `JobRemoved` never came, or the command was killed.
    case timedOut
  }

  public var result: Result
  /// One line for the journal: `job done`, `exit status 3`, `killed by SIGKILL after 10s`,
  /// `ReloadUnit(vault.service) failed: org.freedesktop.DBus.Error.AccessDenied: …`.
  public var detail: String
  /// The command's output (stdout and stderr interleaved, bounded); empty for other modes.
  public var output: String
  public var duration: Duration

  public init(result: Result, detail: String, output: String = "", duration: Duration) {
    self.result = result
    self.detail = detail
    self.output = output
    self.duration = duration
  }

  public var succeeded: Bool { result == .succeeded }

  public var description: String { "\(result.rawValue): \(detail)" }
}
