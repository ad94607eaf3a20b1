// SPDX-License-Identifier: Apache-2.0
// Linux process and thread calls Swift cannot make directly: prctl is variadic, and mallopt's
// and prctl's constants are macros. One typed helper each, shared by every adapter (the core
// never imports C). Nothing here is linked: glibc provides it all.
#ifndef VAULTKEEPER_CLINUX_SHIM_H
#define VAULTKEEPER_CLINUX_SHIM_H

#include <sys/prctl.h>
#include <malloc.h>

// Names the calling thread (visible in `ps -L`, `top -H`, core dumps); pthread_setname_np
// would need _GNU_SOURCE. The kernel keeps at most 15 bytes.
static inline int clinux_set_thread_name(const char *_Nonnull name) {
  return prctl(PR_SET_NAME, (unsigned long) name, 0UL, 0UL, 0UL);
}

// PR_SET_DUMPABLE=0 keeps key material out of core dumps and away from ptrace and
// /proc/PID/mem readers running as the same user.
static inline int clinux_set_not_dumpable(void) { return prctl(PR_SET_DUMPABLE, 0UL, 0UL, 0UL, 0UL); }

static inline int clinux_limit_malloc_arenas(int arenas) { return mallopt(M_ARENA_MAX, arenas); }

// PR_SET_PDEATHSIG: the kernel sends `signal` to the calling process when the *thread* that
// created it exits. It survives execve() (unless the new program is set-user-ID or has file
// capabilities), so a helper sets it on itself and then execs the real child.
static inline int clinux_set_parent_death_signal(int signal) {
  return prctl(PR_SET_PDEATHSIG, (unsigned long) signal, 0UL, 0UL, 0UL);
}

#endif
