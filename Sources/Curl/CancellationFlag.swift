// SPDX-License-Identifier: Apache-2.0
import Synchronization

/// Shared between a task's cancellation handler (any thread) and curl's progress callback
/// (the transport thread): the only state both sides touch, so it is atomic.
final class CancellationFlag: Sendable {
  private let flag = Atomic<Bool>(false)
  var isCancelled: Bool { flag.load(ordering: .relaxed) }
  func cancel() { flag.store(true, ordering: .relaxed) }
}
