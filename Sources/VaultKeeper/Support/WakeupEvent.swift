// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif

/// A latched wake-up for one waiting thread, built on a pthread mutex and condition variable
/// (`Synchronization.Mutex` cannot be waited on). `signal()` sets the latch and wakes the
/// waiter; `wait()` sleeps until the latch is set, then clears it.
///
/// It carries no data: the state it announces lives elsewhere (typically in a
/// `Synchronization.Mutex`), and the waiter re-checks that state after every wake-up:
///
///     while true {
///       if let ready = state.withLock({ $0.takeSomething() }) { return ready }
///       event.wait()
///     }
///
/// Because the latch stays set, a `signal()` between the waiter's check and its `wait()` is
/// not lost (`wait()` returns at once); a stale `signal()` only costs the waiter one more check.
/// Blocks an OS thread: use it on dedicated threads (libcurl's, `DedicatedThread`'s), never on
/// Swift's cooperative pool.
final class WakeupEvent: @unchecked Sendable {
  // @unchecked Sendable: `signalled` is only read or written with `mutex` held, and the mutex
  // and condition live at fixed heap addresses (pthread objects must never move) that stay
  // valid until deinit, when no thread can be using the object any more.
  private let mutex: UnsafeMutablePointer<pthread_mutex_t>
  private let condition: UnsafeMutablePointer<pthread_cond_t>
  private var signalled = false

  init() {
    mutex = .allocate(capacity: 1)
    mutex.initialize(to: pthread_mutex_t())
    condition = .allocate(capacity: 1)
    condition.initialize(to: pthread_cond_t())
    // With default attributes glibc's init functions cannot fail (and a zeroed object already
    // equals PTHREAD_MUTEX_INITIALIZER / PTHREAD_COND_INITIALIZER).
    _ = pthread_mutex_init(mutex, nil)
    _ = pthread_cond_init(condition, nil)
  }

  deinit {
    pthread_cond_destroy(condition)
    pthread_mutex_destroy(mutex)
    condition.deinitialize(count: 1)
    condition.deallocate()
    mutex.deinitialize(count: 1)
    mutex.deallocate()
  }

  /// Sets the latch and wakes the waiter, if any. Never blocks for long (only on the mutex,
  /// which is held just for a flag update).
  func signal() {
    pthread_mutex_lock(mutex)
    signalled = true
    pthread_cond_signal(condition)
    pthread_mutex_unlock(mutex)
  }

  /// Sleeps until the latch is set (returning at once if it already is), then clears it.
  /// The loop absorbs spurious wake-ups of `pthread_cond_wait`.
  func wait() {
    pthread_mutex_lock(mutex)
    while !signalled { pthread_cond_wait(condition, mutex) }
    signalled = false
    pthread_mutex_unlock(mutex)
  }
}
