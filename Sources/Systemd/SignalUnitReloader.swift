// SPDX-License-Identifier: Apache-2.0
import Glibc
import VaultKeeper

/// The `signal` reload mode: SIGHUP straight to the unit's main PID, read over D-Bus.
///
/// For hosts without the polkit rule. `kill` needs the same user as Vault or CAP_KILL, which
/// the hardened unit does not grant by default: that is why `systemd` is the default mode.
/// There is a small race by nature (the PID can change between the read and the kill); the
/// PID is read right before the kill to keep it short.
public struct SignalUnitReloader: VaultReloader {
  public var unit: String
  public var address: String?
  public var callTimeout: Duration
  public var signal: Int32

  public init(unit: String, address: String? = nil, callTimeout: Duration = .seconds(5), signal: Int32 = SIGHUP) {
    self.unit = unit
    self.address = address
    self.callTimeout = callTimeout
    self.signal = signal
  }

  public var summary: String { "\(signalName(signal)) to the main process of \(unit)" }

  public func reload() async -> ReloadOutcome {
    let reloader = self
    return await OffPool.run { reloader.reloadBlocking() }
  }

  func reloadBlocking() -> ReloadOutcome {
    let clock = ContinuousClock()
    let start = clock.now
    let pid: Int
    do throws(UnitWatchUnavailable) {
      pid = try BusUnitWatcher(address: address, callTimeout: callTimeout).mainPID(unit: unit)
    } catch {
      return ReloadOutcome(result: .failed, detail: error.reason, duration: clock.now - start)
    }
    guard pid > 0, let target = pid_t(exactly: pid) else {
      return ReloadOutcome(result: .failed, detail: "\(unit) has no main process to signal", duration: clock.now - start)
    }
    guard kill(target, signal) == 0 else {
      let reason = String(cString: strerror(errno))
      return ReloadOutcome(
        result: .failed, detail: "sending \(signalName(signal)) to \(unit) main PID \(pid) failed: \(reason)", duration: clock.now - start)
    }
    return ReloadOutcome(result: .succeeded, detail: "\(signalName(signal)) sent to \(unit) main PID \(pid)", duration: clock.now - start)
  }
}
