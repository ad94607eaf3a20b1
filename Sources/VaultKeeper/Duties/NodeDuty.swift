// SPDX-License-Identifier: Apache-2.0
import Logging
import ServiceLifecycle

/// One node's duty in `vaultkeeper run`: its `NodeSupervisor` loop (health and unseal), plus the
/// two listeners that cut the loop's wait short with restart evidence: the transport's
/// "connection closed" events and, with `unit` set, the unit's main PID and state over D-Bus.
///
/// Graceful shutdown lets the pass in hand finish (an unseal is not left half-submitted; every
/// request is bounded by the node's timeout) and ends the idle wait at once; the listeners end
/// with the loop.
public final class NodeDuty: Service, Sendable {
  public let supervisor: NodeSupervisor
  let transport: any HTTPTransport
  let unitView: UnitView
  let unitWatcher: (any UnitWatcher)?
  let logger: Logger

  public init(supervisor: NodeSupervisor, transport: any HTTPTransport, unitView: UnitView, unitWatcher: (any UnitWatcher)?, logger: Logger) {
    self.supervisor = supervisor
    self.transport = transport
    self.unitView = unitView
    self.unitWatcher = unitWatcher
    self.logger = logger
  }

  public func run() async {
    await withTaskGroup(of: Void.self) { group in
      group.addTask {
        for await _ in self.transport.connectionClosedEvents() { self.supervisor.connectionLost() }
      }
      if let unit = supervisor.context.node.unit {
        group.addTask { await self.followUnit(unit) }
      }
      await supervisor.run()
      group.cancelAll()
    }
  }

  /// Follows the Vault unit over D-Bus: a (re)start or a new main PID means "look now".
  private func followUnit(_ unit: String) async {
    guard let watcher = unitWatcher else { return }
    // Connecting and the first property reads block (bounded by the watcher's call timeout).
    let result: Result<AsyncStream<UnitSnapshot>, UnitWatchUnavailable> = await OffPool.run {
      do throws(UnitWatchUnavailable) { return .success(try watcher.watch(unit: unit)) } catch { return .failure(error) }
    }
    let stream: AsyncStream<UnitSnapshot>
    switch result {
    case .success(let watched):
      stream = watched
    case .failure(let error):
      DaemonNotes.once("nobus") {
        logger.info("cannot follow \(unit) over D-Bus (\(error)); detecting Vault restarts from its connection instead")
      }
      return
    }
    var last: UnitSnapshot?
    for await snapshot in stream {
      unitView.update(snapshot)
      if let last, last.mainPID != snapshot.mainPID || last.activeState != snapshot.activeState {
        if last.mainPID != snapshot.mainPID { supervisor.unitMainPIDChanged() } else { supervisor.context.doorbell.ring() }
      }
      last = snapshot
    }
    unitView.update(nil)
  }
}
