// SPDX-License-Identifier: Apache-2.0
// libsystemd headers used by the Systemd adapter target. None of the calls we make are variadic:
// sd_notify takes a preformatted string, journal entries go through sd_journal_sendv, and D-Bus
// messages are built with sd_bus_message_new_method_call + sd_bus_message_append_basic.
#ifndef VAULTKEEPER_CSYSTEMD_SHIM_H
#define VAULTKEEPER_CSYSTEMD_SHIM_H

#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>
#include <systemd/sd-bus.h>
#include <sys/uio.h>
#include <sys/mman.h>

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
static inline char csystemd_bus_type_struct(void) { return SD_BUS_TYPE_STRUCT; }

#endif
