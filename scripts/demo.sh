#!/usr/bin/env bash
# make demo: a sealed (simulated) Vault over real TLS and vaultkeeper in the foreground
# unsealing it. Ctrl-C stops both. Try, in a second terminal, the control commands printed below.
set -euo pipefail
BIN=${1:-.build/debug/vaultkeeper}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/vaultkeeper-demo.XXXXXX)
SIM_PID=""
cleanup() {
  [ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

python3 "$ROOT/Tests/Simulator/testca.py" "$WORK/pki" >/dev/null
python3 "$ROOT/Tests/Simulator/vault_sim.py" --listen 127.0.0.1:0 --port-file "$WORK/port" \
  --control-listen 127.0.0.1:0 --control-port-file "$WORK/control-port" \
  --tls-cert "$WORK/pki/server.pem" --tls-key "$WORK/pki/server-key.pem" \
  --state-dir "$WORK/vault" --init-shares 5 --init-threshold 3 --init-output "$WORK/unseal-keys.json" \
  2>"$WORK/simulator.log" &
SIM_PID=$!
for _ in $(seq 100); do [ -s "$WORK/port" ] && [ -s "$WORK/control-port" ] && break; sleep 0.05; done
PORT=$(cat "$WORK/port"); CONTROL=$(cat "$WORK/control-port")
chmod 0600 "$WORK/unseal-keys.json"
cat > "$WORK/vaultkeeper.toml" <<TOML
[vault]
address = "https://127.0.0.1:$PORT"
ca_file = "$WORK/pki/ca.pem"
server_name = "vault.test"

[health]
interval = "2s"

[unseal]
key_file = "$WORK/unseal-keys.json"
TOML

cat <<MSG
A simulated Vault is listening on https://127.0.0.1:$PORT, initialised and sealed (5 shares, threshold 3).
vaultkeeper starts now and unseals it. In another terminal try:
  curl -s -X POST localhost:$CONTROL/restart -d '{"down_ms":500}'   # Vault restarts sealed: unsealed again at once
  curl -s -X POST localhost:$CONTROL/seal                           # an operator seals it: vaultkeeper leaves it sealed
  $BIN unseal --config $WORK/vaultkeeper.toml                        # the override
  $BIN check --config $WORK/vaultkeeper.toml                         # Monitoring Plugins check
  $BIN status --state-file $WORK/state.json
Ctrl-C stops both.

MSG
"$BIN" run --config "$WORK/vaultkeeper.toml" --state-file "$WORK/state.json" &
VK_PID=$!
trap 'kill -TERM $VK_PID 2>/dev/null; cleanup' EXIT INT TERM
wait $VK_PID || true
