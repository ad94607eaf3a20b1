#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs, only where missing, what `make deb` and `make e2e` need from the machine's
# configured apt sources: dpkg-dev (dpkg-shlibdeps), lintian, debootstrap, systemd-container
# (systemd-nspawn) and binutils (strip). pytest comes from scripts/install-deps.sh.
set -euo pipefail
"$(dirname "$0")/apt-ensure.sh" dpkg-dev binutils lintian debootstrap systemd-container util-linux
python3 -c "import pytest" 2>/dev/null || python3 -m pip install -q pytest
