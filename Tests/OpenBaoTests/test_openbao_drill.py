# SPDX-License-Identifier: Apache-2.0
"""`vaultkeeper snapshot drill` against real OpenBao (issue #12): a production node's snapshot is
restored into a throwaway `bao server` on a Unix socket in a private directory, unsealed with the
shares vaultkeeper holds, and checked; whatever happens, nothing is left behind.

Every test ends by asserting that the drill's directory is gone and that no process still runs
the drill's server configuration.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

import bao_harness as bh
import snapshot_support as ss
import vk_harness as h

DRILL_PASSED = "fddd9c15a3224033b808525ad28f3ceb"
DRILL_FAILED = "af4a31646dba43a0b69f965e4b8aec2b"
MESSAGE_IDS = h.REPO / "Sources" / "VaultKeeper" / "Reporting" / "MessageID.swift"
CATALOG = h.REPO / "deploy" / "catalog" / "vaultkeeper.catalog"


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

@pytest.fixture
def state():
    """The drill's state directory. Short: the server's socket lives under it, and AF_UNIX paths
    are limited to 108 bytes."""
    path = Path(h.short_tmpdir("vk-drill-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _drill_processes(state: Path) -> list[int]:
    """Processes whose command line names this state directory's drill configuration."""
    needle = f"{state}/restore-drill/server.hcl".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            pass
    return found


def _assert_nothing_left(state: Path) -> None:
    assert not (state / "restore-drill").exists(), sorted(str(p) for p in (state / "restore-drill").rglob("*"))
    assert _drill_processes(state) == [], "a drill server outlived the drill"


def _env(state: Path, path: str | None = None) -> dict:
    bao_dir = str(Path(bh.bao_binary()).parent)
    return {"STATE_DIRECTORY": str(state), "PATH": path if path is not None else f"{bao_dir}:/usr/sbin:/usr/bin:/sbin:/bin"}


def _drill(cfg: Path, state: Path, *args: str, path: str | None = None, timeout: float = 180) -> h.CliResult:
    return h.run_cli(["snapshot", "drill", "--config", str(cfg), *args], env=_env(state, path), timeout=timeout)


def _production(node: bh.BaoNode, init: dict) -> str:
    """Unseals the node, waits for it to be active and writes a secret; returns its value."""
    node.unseal_with(init)
    node.wait_active()
    node.cli("secrets", "enable", "-path=secret", "kv-v2", token=node.root_token)
    value = f"drill-{time.monotonic_ns()}"
    node.cli("kv", "put", "secret/app", f"password={value}", token=node.root_token)
    return value


def _save(node: bh.BaoNode, path: Path) -> Path:
    node.cli("operator", "raft", "snapshot", "save", str(path), token=node.root_token)
    return path


def _config(config, keyfile, tmp_path: Path, node: bh.BaoNode, init: dict, drill: dict | None = None) -> Path:
    snaps = tmp_path / "snaps"
    snaps.mkdir(exist_ok=True)
    token = ss.secret_file(tmp_path / "token", node.root_token)
    cfg = ss.with_snapshot(config(node, key_file=keyfile(init, drop_root_token=True)),
                           {"directory": str(snaps), "token_file": str(token)})
    if drill:
        lines = ["", "[snapshot.drill]"] + [f"{k} = {h._toml_value(v)}" for k, v in drill.items()]
        cfg.write_text(cfg.read_text() + "\n".join(lines) + "\n")
    return cfg


def _untouched(node: bh.BaoNode, value: str, pid: int, port: int) -> None:
    assert node.running() and node.pid == pid, "production was restarted"
    assert node.api_port == port
    assert node.is_active(), node.health()
    assert ss.kv_get(node, "secret/app", node.root_token) == {"password": value}


def _failed(r: h.CliResult, stage: str, reason: str) -> None:
    assert r.returncode == 1, str(r)
    assert f"restore drill FAILED at {stage}: " in r.stdout and reason in r.stdout, str(r)
    entries = [e for e in h.parse_log(r.stderr) if e.message_id == DRILL_FAILED]
    assert len(entries) == 1 and f"drill.stage={stage}" in entries[0].text, str(r)


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------

def test_message_ids_are_catalogued():
    ids = MESSAGE_IDS.read_text()
    catalog = CATALOG.read_text()
    for mid in (DRILL_PASSED, DRILL_FAILED):
        assert f'"{mid}"' in ids
        assert f"-- {mid}\n" in catalog


def test_drill_passes_and_production_is_untouched(bao, config, keyfile, tmp_path, state):
    node, init = bao
    value = _production(node, init)
    pid, port = node.pid, node.api_port
    snap = _save(node, tmp_path / "prod.snap")
    meta_index = int(re.search(r"index (\d+)", h.run_cli(["snapshot", "verify", str(snap)]).stdout).group(1))
    r = _drill(_config(config, keyfile, tmp_path, node, init), state, str(snap))
    assert r.returncode == 0, str(r)
    for title in ("verifying the snapshot", "starting a throwaway server", "restoring the snapshot into it",
                  "unsealing it with the shares vaultkeeper holds", "checking it is active"):
        assert title in r.stdout, str(r)
    m = re.search(r"restore drill passed: .* \(raft index (\d+), applied (\d+)\) and unsealed with (\d+) of the shares", r.stdout)
    assert m, str(r)
    assert int(m.group(1)) == meta_index and int(m.group(2)) >= meta_index and int(m.group(3)) == 3, str(r)
    assert [e.message_id for e in h.parse_log(r.stderr) if e.message_id in (DRILL_PASSED, DRILL_FAILED)] == [DRILL_PASSED], str(r)
    _assert_nothing_left(state)
    _untouched(node, value, pid, port)


def test_newest_snapshot_in_the_directory_is_the_default(bao, config, keyfile, tmp_path, state):
    node, init = bao
    _production(node, init)
    cfg = _config(config, keyfile, tmp_path, node, init)
    r = h.run_cli(["snapshot", "now", "--config", str(cfg)], env=_env(state))
    assert r.returncode == 0, str(r)
    saved = re.search(r"saved (\S+):", r.stdout).group(1)
    r = _drill(cfg, state)
    assert r.returncode == 0, str(r)
    assert f"restore drill of {saved}" in r.stdout, str(r)
    _assert_nothing_left(state)


def test_rekeyed_production_fails_on_the_shares(baos, config, keyfile, tmp_path, state):
    node = baos("node1", listener_extra="  disable_unauthed_rekey_endpoints = false\n")
    init = node.operator_init(5, 3)
    value = _production(node, init)
    # `bao operator rekey`: new shares; vaultkeeper's key file still holds the old ones.
    started = json.loads(node.cli("operator", "rekey", "-init", "-key-shares=5", "-key-threshold=3", "-format=json").stdout)
    nonce = started["nonce"]
    final = None
    for key in bh.shares_b64(init)[:3]:
        out = node.cli("operator", "rekey", "-format=json", f"-nonce={nonce}", key).stdout
        if out.strip():
            final = json.loads(out)
    assert final and final.get("complete") is True and len(final["keys_base64"]) == 5, final
    for k in final["keys_base64"] + final["keys"]:
        h.LEDGER.secret(k, "rekeyed share")
    snap = _save(node, tmp_path / "rekeyed.snap")
    r = _drill(_config(config, keyfile, tmp_path, node, init), state, str(snap))
    _failed(r, "unseal", "the shares we hold do not unseal this snapshot: it was taken after a rekey, or from another cluster")
    _assert_nothing_left(state)
    assert ss.kv_get(node, "secret/app", node.root_token) == {"password": value}
    # The new shares do open it: the drill judged the shares, not the snapshot.
    cfg = _config(config, keyfile, tmp_path, node, {**init, "unseal_keys_b64": final["keys_base64"], "unseal_keys_hex": final["keys"]})
    r = _drill(cfg, state, str(snap))
    assert r.returncode == 0, str(r)
    _assert_nothing_left(state)


def test_another_clusters_snapshot_fails_on_the_shares(bao, baos, config, keyfile, tmp_path, state):
    node, init = bao
    _production(node, init)
    other = baos("other")
    other_init = other.operator_init(5, 3)
    _production(other, other_init)
    snap = _save(other, tmp_path / "other.snap")
    r = _drill(_config(config, keyfile, tmp_path, node, init), state, str(snap))
    _failed(r, "unseal", "the shares we hold do not unseal this snapshot")
    _assert_nothing_left(state)


def test_corrupt_snapshot_fails_verification(bao, config, keyfile, tmp_path, state):
    node, init = bao
    _production(node, init)
    snap = _save(node, tmp_path / "prod.snap")
    data = bytearray(snap.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged = tmp_path / "damaged.snap"
    damaged.write_bytes(bytes(data))
    r = _drill(_config(config, keyfile, tmp_path, node, init), state, str(damaged))
    _failed(r, "verify", "the snapshot cannot be used: ")
    _assert_nothing_left(state)


def test_missing_binary(bao, config, keyfile, tmp_path, state):
    node, init = bao
    _production(node, init)
    snap = _save(node, tmp_path / "prod.snap")
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    r = _drill(_config(config, keyfile, tmp_path, node, init), state, str(snap), path=str(empty))
    _failed(r, "start", "neither bao nor vault is on PATH")
    _assert_nothing_left(state)
    # A configured binary that is not there is a configuration error, named with its line.
    cfg = _config(config, keyfile, tmp_path, node, init, drill={"binary": str(tmp_path / "no-such-bao")})
    r = _drill(cfg, state, str(snap))
    assert r.returncode == 78, str(r)
    assert "snapshot.drill.binary" in r.stderr and "does not exist" in r.stderr, str(r)
    _assert_nothing_left(state)


def test_timeout_kills_the_server(bao, config, keyfile, tmp_path, state):
    node, init = bao
    value = _production(node, init)
    pid, port = node.pid, node.api_port
    snap = _save(node, tmp_path / "prod.snap")
    cfg = _config(config, keyfile, tmp_path, node, init, drill={"timeout": "1s", "binary": bh.bao_binary()})
    r = _drill(cfg, state, str(snap))
    assert r.returncode == 1, str(r)
    assert "the drill took longer than 1s ([snapshot.drill] timeout)" in r.stdout, str(r)
    _assert_nothing_left(state)
    _untouched(node, value, pid, port)


def test_sigterm_during_a_drill_leaves_nothing(bao, config, keyfile, tmp_path, state):
    node, init = bao
    value = _production(node, init)
    snap = _save(node, tmp_path / "prod.snap")
    cfg = _config(config, keyfile, tmp_path, node, init)
    env = dict(os.environ)
    env.pop("NOTIFY_SOCKET", None)
    env.update(_env(state))
    p = subprocess.Popen([h.VK_BIN, "snapshot", "drill", "--config", str(cfg), str(snap)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        # The server is running: the drill is in the middle of it.
        h.wait_until(lambda: _drill_processes(state), 60, what="the drill's server running")
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    h.LEDGER.capture("drill stdout", out)
    h.LEDGER.capture("drill stderr", err)
    assert p.returncode == 1, (out, err)
    assert b"the drill was stopped" in out, (out, err)
    _assert_nothing_left(state)
    assert ss.kv_get(node, "secret/app", node.root_token) == {"password": value}


def test_a_second_drill_while_one_runs_is_refused_and_touches_nothing(bao, config, keyfile, tmp_path, state):
    """The drill's listeners cannot be taken from it (the API is a socket in its own fresh 0700
    directory, the cluster port the kernel's pick), so the only thing that can be occupied is the
    drill workspace itself: a second drill (the daemon's scheduled one while an operator runs one
    by hand) must be refused at once and leave the running one alone."""
    node, init = bao
    value = _production(node, init)
    pid, port = node.pid, node.api_port
    snap = _save(node, tmp_path / "prod.snap")
    cfg = _config(config, keyfile, tmp_path, node, init)
    env = dict(os.environ)
    env.pop("NOTIFY_SOCKET", None)
    env.update(_env(state))
    p = subprocess.Popen([h.VK_BIN, "snapshot", "drill", "--config", str(cfg), str(snap)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        servers = h.wait_until(lambda: _drill_processes(state), 60, what="the first drill's server running")
        second = _drill(cfg, state, str(snap))
        _failed(second, "prepare", "another restore drill is running")
        assert all(Path(f"/proc/{s}").exists() for s in servers), "the second drill touched the first one's server"
        out, err = p.communicate(timeout=180)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    h.LEDGER.capture("drill stdout", out)
    h.LEDGER.capture("drill stderr", err)
    assert p.returncode == 0, (out, err)
    assert b"restore drill passed" in out, (out, err)
    _assert_nothing_left(state)
    _untouched(node, value, pid, port)


def test_leftover_of_a_crashed_drill_is_removed(bao, config, keyfile, tmp_path, state):
    node, init = bao
    _production(node, init)
    snap = _save(node, tmp_path / "prod.snap")
    leftover = state / "restore-drill" / "raft"
    leftover.mkdir(parents=True)
    (leftover / "junk").write_text("from a crash")
    r = _drill(_config(config, keyfile, tmp_path, node, init), state, str(snap))
    assert r.returncode == 0, str(r)
    _assert_nothing_left(state)


def test_encrypted_snapshot(bao, config, keyfile, tmp_path, state):
    node, init = bao
    value = _production(node, init)
    snap = _save(node, tmp_path / "prod.snap")
    identity = tmp_path / "identity.txt"
    subprocess.run(["age-keygen", "-o", str(identity)], check=True, capture_output=True)
    os.chmod(identity, 0o600)
    recipient = re.search(r"public key: (age1\S+)", identity.read_text()).group(1)
    encrypted = tmp_path / "prod.snap.age"
    subprocess.run(["age", "-r", recipient, "-o", str(encrypted), str(snap)], check=True)
    cfg = _config(config, keyfile, tmp_path, node, init)
    r = _drill(cfg, state, str(encrypted))
    _failed(r, "verify", "identity")  # without --identity it cannot be read
    _assert_nothing_left(state)
    r = _drill(cfg, state, "--identity", str(identity), str(encrypted))
    assert r.returncode == 0, str(r)
    _assert_nothing_left(state)
    assert ss.kv_get(node, "secret/app", node.root_token) == {"password": value}


def test_approle_credentials_log_in_to_the_restored_data(bao, config, keyfile, tmp_path, state):
    node, init = bao
    _production(node, init)
    # A snapshot taken before the AppRole existed: the credentials cannot log in to it.
    before = _save(node, tmp_path / "before.snap")
    creds = ss.approle_from_policy_comment(node, tmp_path / "approle")
    after = _save(node, tmp_path / "after.snap")
    snaps = tmp_path / "snaps"
    snaps.mkdir()
    cfg = ss.with_snapshot(config(node, key_file=keyfile(init, drop_root_token=True)),
                           {"directory": str(snaps), "role_id_file": str(creds.role_id_file),
                            "secret_id_file": str(creds.secret_id_file)})
    r = _drill(cfg, state, str(after))
    assert r.returncode == 0, str(r)
    assert "logging in with the snapshot credentials (AppRole)" in r.stdout and ", AppRole login ok," in r.stdout, str(r)
    _assert_nothing_left(state)
    r = _drill(cfg, state, str(before))
    _failed(r, "login", "the snapshot credentials do not log in to the restored data")
    _assert_nothing_left(state)
    assert creds.secret_id not in r.output and creds.role_id not in r.output
