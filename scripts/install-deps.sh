#!/usr/bin/env bash
# Installs what building and testing vaultkeeper needs, only what is missing, from the
# package sources this machine is already configured with (apt and pip).
set -euo pipefail

"$(dirname "$0")/apt-ensure.sh" libcurl4-openssl-dev libsystemd-dev zlib1g-dev pkg-config dbus util-linux procps openssl age

pip_missing=()
for m in hvac:hvac cryptography:cryptography pytest:pytest requests:requests; do
  module=${m%%:*}; package=${m##*:}
  python3 -c "import $module" 2>/dev/null || pip_missing+=("$package")
done
if [ ${#pip_missing[@]} -gt 0 ]; then
  echo "pip installing: ${pip_missing[*]}" >&2
  # Debian's own python3 refuses system-wide pip installs (PEP 668); these are test-only tools.
  python3 -m pip install -q "${pip_missing[@]}" 2>/dev/null \
    || python3 -m pip install -q --break-system-packages "${pip_missing[@]}"
fi
