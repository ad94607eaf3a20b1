#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Fails when a vaultkeeper binary carries Foundation or ICU (issue #11: FoundationEssentials
# only). Importing `Foundation` anywhere in the build graph links all of Foundation,
# CoreFoundation and ICU's data (about 34 MiB) into the daemon; FoundationEssentials has
# neither. Usage:
#
#   scripts/check-no-icu.sh [BINARY]      (default .build/release/vaultkeeper)
#
# What identifies them, in a binary built with or without --static-swift-stdlib:
#   - a shared library it needs: libFoundation.so, libFoundationInternationalization.so,
#     lib_FoundationICU.so, libicu*.so;
#   - symbols: Foundation's own (`$s10Foundation…`, and its extensions of other modules'
#     types, `…10FoundationE…`), CoreFoundation's `__CFInitialize`, ICU's C++ namespace
#     (`icu_76::…`, `_ZN6icu_76…`) and its data blob (`icudt76_dat`).
# FoundationEssentials' symbols (`$s20FoundationEssentials…`) are fine and do not match.
set -euo pipefail

BIN="${1:-.build/release/vaultkeeper}"
[ -f "$BIN" ] || { echo "check-no-icu: $BIN does not exist (build it first)" >&2; exit 2; }

failed=0
needed=$(readelf -d "$BIN" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
bad_libs=$(grep -E '^(libFoundation\.so|libFoundationInternationalization\.so|lib_FoundationICU\.so|libicu[a-z0-9]*\.so)' <<<"$needed" || true)
if [ -n "$bad_libs" ]; then
  echo "check-no-icu: $BIN needs $(tr '\n' ' ' <<<"$bad_libs")" >&2
  failed=1
fi

# Every symbol, defined or undefined, static and dynamic table. A stripped binary would pass
# silently, so it is refused.
symbols=$( { nm "$BIN" 2>/dev/null || true; nm -D "$BIN" 2>/dev/null || true; } | awk '{print $NF}')
if [ "$(wc -l <<<"$symbols")" -lt 1000 ]; then
  echo "check-no-icu: $BIN has (almost) no symbol table; run the check on an unstripped build" >&2
  exit 2
fi
check() {  # NAME REGEX
  local found
  found=$(grep -E -- "$2" <<<"$symbols" | sort -u || true)
  if [ -n "$found" ]; then
    echo "check-no-icu: $BIN contains $1: $(wc -l <<<"$found") symbols, e.g. $(head -3 <<<"$found" | tr '\n' ' ')" >&2
    failed=1
  fi
}
check "Foundation" '^\$s10Foundation|10FoundationE'
check "CoreFoundation" '^_?__CFInitialize$'
check "ICU" '^_ZN6icu_[0-9]+|^icudt[0-9]+_dat$'

if [ "$failed" -eq 0 ]; then
  echo "check-no-icu: $BIN has no Foundation and no ICU ($(du -h "$BIN" | cut -f1))"
fi
exit "$failed"
