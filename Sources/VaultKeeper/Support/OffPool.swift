// SPDX-License-Identifier: Apache-2.0
/// Runs a blocking call on a thread of its own and awaits the result, so the cooperative pool
/// (two threads here) never waits on I/O. For rare calls only (setting up a D-Bus watch);
/// per-request I/O uses the transports' long-lived threads instead.
public enum OffPool {
  public static func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
      let started = DedicatedThread.start { continuation.resume(returning: body()) }
      if started != 0 { continuation.resume(returning: body()) }  // no thread to be had: block here rather than hang
    }
  }
}
