// SPDX-License-Identifier: Apache-2.0
import Glibc
import VaultKeeper

/// The `systemd` reload mode: `systemctl reload vault.service` over D-Bus, i.e.
/// `Manager.ReloadUnit(unit, "replace")` and the job's `JobRemoved`. Vault's unit runs its
/// `ExecReload=` (`kill -HUP $MAINPID`), so systemd knows about the reload and logs it with
/// the unit.
///
/// Unprivileged callers need polkit's permission for this: deploy/polkit/50-vaultkeeper.rules
/// grants the vaultkeeper user `manage-units` with verb `reload` on vault.service only.
public struct SystemdUnitReloader: VaultReloader {
  public var unit: String
  /// Explicit bus address (`unix:path=…`), or nil for the system bus.
  public var address: String?
  /// Upper bound for each D-Bus call (connect, Subscribe, ReloadUnit).
  public var callTimeout: Duration
  /// How long the job may take to end; Vault's `ExecReload=` is a `kill`, done in milliseconds.
  public var jobTimeout: Duration

  public init(unit: String, address: String? = nil, callTimeout: Duration = .seconds(5), jobTimeout: Duration = .seconds(15)) {
    self.unit = unit
    self.address = address
    self.callTimeout = callTimeout
    self.jobTimeout = jobTimeout
  }

  public var summary: String { "systemd reload of \(unit)" }

  /// Runs on a thread of its own: `sd_bus_call` and `sd_bus_wait` block.
  public func reload() async -> ReloadOutcome {
    let reloader = self
    return await OffPool.run { reloader.reloadBlocking() }
  }

  func reloadBlocking() -> ReloadOutcome {
    let clock = ContinuousClock()
    let start = clock.now
    do throws(BusError) {
      let bus = try BusConnection.open(address: address)
      defer { bus.close() }
      let session = ReloadJobSession(bus: bus)
      try session.listen(timeout: callTimeout)
      let (job, systemd) = try session.requestReload(unit: unit, timeout: callTimeout)
      guard let result = try session.waitForJob(job, from: systemd, until: clock.now + jobTimeout) else {
        return ReloadOutcome(
          result: .timedOut, detail: "no end of reload job \(job) of \(unit) within \(DurationParsing.format(jobTimeout))",
          duration: clock.now - start)
      }
      return Self.outcome(jobResult: result, unit: unit, duration: clock.now - start)
    } catch {
      return ReloadOutcome(result: .failed, detail: Self.explain(error), duration: clock.now - start)
    }
  }

  /// The job results are systemd's (org.freedesktop.systemd1(5), `JobRemoved`).
  static func outcome(jobResult: String, unit: String, duration: Duration) -> ReloadOutcome {
    switch jobResult {
    case "done":
      ReloadOutcome(result: .succeeded, detail: "reload job of \(unit) done", duration: duration)
    case "timeout":
      ReloadOutcome(result: .timedOut, detail: "reload job of \(unit) timed out in systemd (ExecReload= took too long)", duration: duration)
    default:
      ReloadOutcome(result: .failed, detail: "reload job of \(unit) ended with result '\(jobResult)' (see journalctl -u \(unit))", duration: duration)
    }
  }

  /// Adds the likely fix to the errors an operator can do something about.
  static func explain(_ error: BusError) -> String {
    switch error.name {
    case "org.freedesktop.DBus.Error.AccessDenied", "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired":
      "\(error) (is deploy/polkit/50-vaultkeeper.rules installed, naming this unit?)"
    default:
      error.description
    }
  }
}
