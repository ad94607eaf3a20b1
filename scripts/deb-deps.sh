#!/usr/bin/env bash
# Installs, only where missing, what `make deb` and `make e2e` need from the machine's
# configured apt sources: dpkg-dev (dpkg-shlibdeps), lintian, debootstrap, systemd-container
# (systemd-nspawn) and binutils (strip). pytest comes from scripts/install-deps.sh.
set -euo pipefail
packages=(dpkg-dev binutils lintian debootstrap systemd-container util-linux)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
python3 -c "import pytest" 2>/dev/null || python3 -m pip install -q pytest
