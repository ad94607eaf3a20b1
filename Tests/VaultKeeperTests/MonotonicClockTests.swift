// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import VaultKeeper

/// `MONOTONIC_USEC=` next to `RELOADING=1` must be CLOCK_MONOTONIC in microseconds: systemd 253+
/// compares it with the time it sent the reload signal.
@Test func monotonicMicrosecondsIsMonotonicAndMatchesTheKernelClock() {
  var reference = timespec()
  clock_gettime(CLOCK_MONOTONIC, &reference)
  let before = UInt64(reference.tv_sec) * 1_000_000 + UInt64(reference.tv_nsec) / 1_000
  let first = Daemon.monotonicMicroseconds()
  let second = Daemon.monotonicMicroseconds()
  #expect(first >= before)
  #expect(second >= first)
  var after = timespec()
  clock_gettime(CLOCK_MONOTONIC, &after)
  // Not above the kernel's clock read after it: µs, not ns (which would be 1000× larger).
  #expect(second <= UInt64(after.tv_sec) * 1_000_000 + UInt64(after.tv_nsec) / 1_000)
}
