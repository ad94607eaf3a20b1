#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The release build that `make release` does, taken through the shared Swift build lock
# (/tmp/vk-swift.lock: builds share 2 cores), with exactly the same flags so the build is reused.
# If an ancestor process already holds the lock (someone ran `flock /tmp/vk-swift.lock make …`),
# build directly: taking it again from a child would wait forever.
set -euo pipefail
LOCK=${SWIFT_LOCK_FILE:-/tmp/vk-swift.lock}
SWIFT=${SWIFT:-swift}
build=("$SWIFT" build -c release --static-swift-stdlib --product vaultkeeper)

pid=$PPID
while [ "$pid" -gt 1 ] 2>/dev/null; do
  if tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -Eq "^(/usr/bin/)?flock (-[a-z]+ )*$LOCK "; then
    exec "${build[@]}"
  fi
  pid=$(awk '{print $4}' "/proc/$pid/stat" 2>/dev/null || echo 1)
done
command -v flock >/dev/null || exec "${build[@]}"
exec flock "$LOCK" "${build[@]}"
