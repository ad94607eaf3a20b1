// SPDX-License-Identifier: Apache-2.0
import CLinux
import VaultKeeper

/// Starts a named, detached OS thread (see `DedicatedThread`, which it builds on): a curl
/// transport's or the unit watch's blocking waits must never happen on Swift's cooperative pool,
/// and a name (`curl 127.0.0.1:8`, `vk-unit-watch`) tells them apart in `top -H`.
public enum NamedThread {
  /// - Parameters:
  ///   - name: the thread name shown by `ps -L` / `top -H` (at most 15 bytes are kept).
  ///   - body: the work; the thread ends when it returns.
  /// - Returns: 0, or the errno from `pthread_create` (e.g. `EAGAIN` at the task limit).
  @discardableResult
  public static func start(name: String, _ body: sending @escaping () -> Void) -> Int32 {
    DedicatedThread.start {
      _ = name.withCString { clinux_set_thread_name($0) }
      body()
    }
  }
}
