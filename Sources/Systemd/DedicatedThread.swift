import CSystemd
import VaultKeeper

/// Runs `body` on a new, named, detached OS thread (see `DedicatedThread`): the unit watch
/// blocks in `sd_bus_wait`, which must never happen on Swift's cooperative pool.
///
/// - Parameters:
///   - name: the thread name shown by `ps -L` / `top -H` (at most 15 bytes are kept).
///   - body: the work; the thread ends when it returns.
/// - Returns: 0, or the errno from `pthread_create` (e.g. `EAGAIN` at the task limit).
func startDedicatedThread(name: String, _ body: sending @escaping () -> Void) -> Int32 {
  DedicatedThread.start {
    _ = name.withCString { csystemd_set_thread_name($0) }
    body()
  }
}
