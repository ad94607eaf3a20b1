// SPDX-License-Identifier: Apache-2.0
// zlib for the streaming snapshot verifier. inflateInit2 is a macro (it passes the library
// version and struct size), so Swift gets a typed static inline instead.
#ifndef VAULTKEEPER_CZLIB_SHIM_H
#define VAULTKEEPER_CZLIB_SHIM_H

#include <zlib.h>

// windowBits 16 + MAX_WBITS: expect a gzip header and trailer (CRC-32 and length are checked).
static inline int czlib_inflate_init_gzip(z_stream *_Nonnull stream) {
  return inflateInit2(stream, 16 + MAX_WBITS);
}

#endif
