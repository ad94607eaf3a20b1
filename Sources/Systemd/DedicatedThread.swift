import CSystemd
import Glibc

/// Runs `body` on a new, detached OS thread.
///
/// The unit watch blocks in `sd_bus_wait`, which must never happen on Swift's cooperative pool:
/// with two cores, two blocked pool threads stall every task in the daemon. A plain pthread
/// keeps the blocking wait off the pool without pulling in Foundation's `Thread`.
///
/// `body` is `sending` because it carries non-`Sendable` state (the sd-bus connection) to the
/// new thread; the compiler checks the caller keeps no other reference to it. It crosses the C
/// boundary as a retained `Unmanaged` box that the new thread takes back exactly once.
///
/// - Parameters:
///   - name: the thread name shown by `ps -L` / `top -H` (at most 15 bytes are kept).
///   - body: the work; the thread ends when it returns.
/// - Returns: 0, or the errno from `pthread_create` (e.g. `EAGAIN` at the task limit).
func startDedicatedThread(name: String, _ body: sending @escaping () -> Void) -> Int32 {
  let start = Unmanaged.passRetained(ThreadStart(name: name, body: body)).toOpaque()
  var thread = pthread_t()
  let result = pthread_create(
    &thread, nil,
    { context in
      guard let context else { return nil }
      let start = Unmanaged<ThreadStart>.fromOpaque(context).takeRetainedValue()
      _ = start.name.withCString { csystemd_set_thread_name($0) }
      start.body()
      return nil
    }, start)
  guard result == 0 else {
    Unmanaged<ThreadStart>.fromOpaque(start).release()
    return result
  }
  pthread_detach(thread)
  return 0
}

/// What the new thread needs, boxed so it fits through `pthread_create`'s `void *`.
private final class ThreadStart {
  let name: String
  let body: () -> Void

  init(name: String, body: @escaping () -> Void) {
    self.name = name
    self.body = body
  }
}
