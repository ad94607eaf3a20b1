// SPDX-License-Identifier: Apache-2.0
import Synchronization

/// systemd's view of the node's unit, updated by the D-Bus watcher task.
public final class UnitView: Sendable {
  private let snapshot = Mutex<UnitSnapshot?>(nil)
  public init() {}
  public var current: UnitSnapshot? { snapshot.withLock { $0 } }
  public func update(_ value: UnitSnapshot?) { snapshot.withLock { $0 = value } }
  /// The main PID while the unit runs, 0 when unknown.
  public var mainPID: Int { current.map { $0.activeState == "active" || $0.activeState == "reloading" ? $0.mainPID : 0 } ?? 0 }
}
