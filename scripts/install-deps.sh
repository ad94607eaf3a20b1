#!/usr/bin/env bash
# Installs what building and testing vaultkeeper needs, only what is missing, from the
# package sources this machine is already configured with (apt and pip).
set -euo pipefail

"$(dirname "$0")/apt-ensure.sh" libcurl4-openssl-dev libsystemd-dev zlib1g-dev pkg-config dbus util-linux procps openssl age

pip_missing=()
# moto[server] is the S3 peer of test_snapshot_s3.py (moto_server), boto3 sets it up.
for m in hvac:hvac cryptography:cryptography pytest:pytest requests:requests boto3:boto3 flask:moto[server] moto:moto[server]; do
  module=${m%%:*}; package=${m##*:}
  python3 -c "import $module" 2>/dev/null || pip_missing+=("$package")
done
if [ ${#pip_missing[@]} -gt 0 ]; then
  mapfile -t pip_missing < <(printf '%s\n' "${pip_missing[@]}" | sort -u)
  echo "pip installing: ${pip_missing[*]}" >&2
  # Debian's own python3 refuses system-wide pip installs (PEP 668); these are test-only tools.
  python3 -m pip install -q "${pip_missing[@]}" 2>/dev/null \
    || python3 -m pip install -q --break-system-packages "${pip_missing[@]}"
fi
