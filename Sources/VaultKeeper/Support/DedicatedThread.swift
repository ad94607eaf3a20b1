// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif

/// Starts OS threads for blocking work (libcurl transfers, sd-bus waits, one-off blocking
/// calls), keeping it off Swift's cooperative pool: with two cores, two blocked pool threads
/// stall every task in the daemon. Plain pthreads rather than Foundation's `Thread`, which
/// would link all of Foundation (CoreFoundation and ICU) into a daemon that only needs
/// FoundationEssentials, for about 10 MiB more resident memory.
public enum DedicatedThread {
  /// Runs `body` on a new, detached thread.
  ///
  /// `body` is `sending` because it may carry non-`Sendable` state (an sd-bus connection, a
  /// curl handle) to the new thread; the compiler checks the caller keeps no other reference.
  /// It crosses the C boundary as a retained `Unmanaged` box the new thread takes back once.
  ///
  /// - Returns: 0, or the errno from `pthread_create` (e.g. `EAGAIN` at the task limit).
  @discardableResult
  public static func start(_ body: sending @escaping () -> Void) -> Int32 {
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    var thread = pthread_t()
    let result = pthread_create(
      &thread, nil,
      { context in
        guard let context else { return nil }
        Unmanaged<Box>.fromOpaque(context).takeRetainedValue().body()
        return nil
      }, box)
    guard result == 0 else {
      Unmanaged<Box>.fromOpaque(box).release()
      return result
    }
    pthread_detach(thread)
    return 0
  }

  private final class Box {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
  }
}
