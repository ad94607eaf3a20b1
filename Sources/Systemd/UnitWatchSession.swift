// SPDX-License-Identifier: Apache-2.0
import CSystemd
import Glibc
import VaultKeeper

/// One unit watch: owns the bus connection and runs the loop on the watch thread.
///
/// Set up on the caller's thread (`listen`), then moved whole to the watch thread (`run`); never
/// touched by two threads at once, hence not `Sendable`.
final class UnitWatchSession {
  private let bus: BusConnection
  private let unit: String
  private let path: String
  private let callTimeout: Duration
  private let pollInterval: Duration
  private let continuation: AsyncStream<UnitSnapshot>.Continuation
  let control: WatchControl
  private var last: UnitSnapshot?
  /// Set by the match callback; the loop re-reads the properties when it sees it.
  private var changed = false
  private var slot: OpaquePointer?

  init(
    bus: BusConnection, unit: String, path: String, callTimeout: Duration, pollInterval: Duration,
    continuation: AsyncStream<UnitSnapshot>.Continuation, control: WatchControl
  ) {
    self.bus = bus
    self.unit = unit
    self.path = path
    self.callTimeout = callTimeout
    self.pollInterval = pollInterval
    self.continuation = continuation
    self.control = control
  }

  deinit { sd_bus_slot_unref(slot) }

  /// Adds the `PropertiesChanged` match, subscribes, then reads and yields the first snapshot.
  ///
  /// The match goes in before the first read so a change between the read and the subscription
  /// cannot be missed (it would only cause one redundant re-read). The match has no sender:
  /// systemd owns the unit paths, a signal from anyone else only triggers a harmless re-read,
  /// and a sender match on a well-known name depends on the daemon resolving the owner.
  ///
  /// - Important: the callback receives `self` unretained; `slot` is released in `deinit`
  ///   before `self` goes away, so the pointer never dangles.
  func listen() throws(BusError) {
    let context = Unmanaged.passUnretained(self).toOpaque()
    let result = path.withCString { path in
      sd_bus_match_signal(
        bus.raw, &slot, nil, path, BusConnection.propertiesInterface, "PropertiesChanged",
        { _, userdata, _ in
          guard let userdata else { return 0 }
          Unmanaged<UnitWatchSession>.fromOpaque(userdata).takeUnretainedValue().changed = true
          return 0
        }, context)
    }
    if result < 0 { throw BusError(returnValue: result, context: "watching \(unit) for changes failed") }
    try bus.subscribe(timeout: callTimeout)
    let first = try bus.unitSnapshot(unit: unit, path: path, timeout: callTimeout)
    last = first
    continuation.yield(first)
  }

  /// The watch loop; returns when the stream is terminated or the connection is lost, after
  /// closing the bus and finishing the stream.
  ///
  /// `sd_bus_wait` is bounded by `pollInterval` so a stop request is noticed within that time
  /// even when the bus is silent. A failed re-read is retried after a second, not at once, so a
  /// systemd that answers with errors is not hammered.
  func run() {
    let clock = ContinuousClock()
    var retryAt: ContinuousClock.Instant?
    while !control.isStopRequested {
      let processed = bus.process()
      if processed < 0 || !bus.isOpen { break }
      if processed > 0 { continue }

      if changed, retryAt.map({ clock.now >= $0 }) ?? true {
        changed = false
        do {
          let snapshot = try bus.unitSnapshot(unit: unit, path: path, timeout: callTimeout)
          retryAt = nil
          if snapshot != last {
            last = snapshot
            continuation.yield(snapshot)
          }
        } catch {
          if !bus.isOpen { break }
          changed = true
          retryAt = clock.now + .seconds(1)
        }
        continue
      }

      let waited = bus.wait(timeout: pollInterval)
      if waited < 0, waited != -EINTR { break }
    }
    slot = sd_bus_slot_unref(slot)
    bus.close()
    continuation.finish()
    control.markFinished()
  }
}

@available(*, unavailable) extension UnitWatchSession: Sendable {}
