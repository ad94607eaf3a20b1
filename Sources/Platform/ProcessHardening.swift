// SPDX-License-Identifier: Apache-2.0
import CLinux

#if canImport(Glibc)
import Glibc
#endif

/// Process-wide protections applied before any key is read.
/// In the Platform adapter because prctl and mallopt need a C shim (see CLinux/shim.h).
public enum ProcessHardening {
  public static func apply() {
    // CURLOPT_NOSIGNAL makes libcurl stop ignoring SIGPIPE itself, so a peer closing a socket
    // mid-write would kill us. Ignore it process-wide.
    signal(SIGPIPE, SIG_IGN)
    // No core dumps, and no ptrace or /proc/PID/mem reads by other processes of the same
    // user: key shares live in this process's memory.
    var noCore = rlimit(rlim_cur: 0, rlim_max: 0)
    _ = setrlimit(Int32(RLIMIT_CORE.rawValue), &noCore)
    _ = clinux_set_not_dumpable()
  }

  /// glibc gives each thread that allocates its own arena (up to 8 per core), and a daemon with
  /// a transfer thread per node would keep several mostly empty arenas resident. Two suffice
  /// for a handful of threads that mostly wait.
  public static func limitMallocArenas() {
    _ = clinux_limit_malloc_arenas(2)
  }
}
