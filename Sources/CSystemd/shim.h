// libsystemd headers used by the Systemd adapter target. None of the calls we make are variadic:
// sd_notify takes a preformatted string, journal entries go through sd_journal_sendv, and D-Bus
// messages are built with sd_bus_message_new_method_call + sd_bus_message_append_basic.
#ifndef VAULTKEEPER_CSYSTEMD_SHIM_H
#define VAULTKEEPER_CSYSTEMD_SHIM_H

#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>
#include <systemd/sd-bus.h>
#include <sys/uio.h>
#include <sys/prctl.h>
#include <sys/mman.h>
#include <malloc.h>

// SD_BUS_ERROR_NULL is a macro Swift cannot import.
static inline sd_bus_error csystemd_bus_error_null(void) {
  sd_bus_error e = SD_BUS_ERROR_NULL;
  return e;
}

// D-Bus type codes are `char` in the C API; naming them here keeps `CChar(UInt8(ascii:))`
// noise out of the Swift call sites and makes a typo a compile error instead of a runtime
// "invalid argument".
static inline char csystemd_bus_type_string(void) { return SD_BUS_TYPE_STRING; }
static inline char csystemd_bus_type_object_path(void) { return SD_BUS_TYPE_OBJECT_PATH; }
static inline char csystemd_bus_type_uint32(void) { return SD_BUS_TYPE_UINT32; }
static inline char csystemd_bus_type_variant(void) { return SD_BUS_TYPE_VARIANT; }
static inline char csystemd_bus_type_array(void) { return SD_BUS_TYPE_ARRAY; }
static inline char csystemd_bus_type_dict_entry(void) { return SD_BUS_TYPE_DICT_ENTRY; }

// Names the calling thread (visible in `ps -L`, `top -H`, core dumps). prctl is variadic and
// pthread_setname_np needs _GNU_SOURCE, so neither is callable from Swift directly. The kernel
// keeps at most 15 bytes.
static inline int csystemd_set_thread_name(const char *_Nonnull name) {
  return prctl(PR_SET_NAME, (unsigned long) name, 0UL, 0UL, 0UL);
}

// prctl is variadic; PR_SET_DUMPABLE=0 keeps key material out of core dumps and away from
// ptrace and /proc/PID/mem readers running as the same user.
static inline int csystemd_set_not_dumpable(void) { return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0); }

// mallopt's constants are macros; one typed helper keeps them out of Swift.
static inline int csystemd_limit_malloc_arenas(int arenas) { return mallopt(M_ARENA_MAX, arenas); }

#endif
