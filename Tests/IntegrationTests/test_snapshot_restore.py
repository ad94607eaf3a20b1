# SPDX-License-Identifier: Apache-2.0
"""`vaultkeeper snapshot restore`: verified before anything is sent, an explicit confirmation, the
archive streamed to the active node, Vault's refusals (other cluster's keys, missing policy)
explained, age-encrypted snapshots decrypted into a private temporary file that is removed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path


import test_snapshot as ts
import vk_harness as h
from vk_fixtures import needs

RESTORE_POLICIES = ["default", "snapshot", "snapshot-restore"]


def _restore_requests(s: h.Sim) -> list[dict]:
    return [r for r in s.requests() if r["path"].startswith(ts.SNAPSHOT_PATH) and r["method"] in ("PUT", "POST")]


def _setup(sims, config, tmp_path: Path, *, sim: h.Sim | None = None):
    """A simulator, a snapshot of it saved by vaultkeeper, and a config whose token may restore."""
    s = sim or ts._start(sims)
    token = ts._make_token(s, policies=RESTORE_POLICIES)
    snaps = ts._snap_dir(tmp_path)
    cfg = ts._token_config(config, s, tmp_path, token, snaps)
    path, _, index = ts._assert_saved(ts._now(cfg), snaps)
    return s, cfg, path, index, token


def _restore(cfg: Path, *args: str) -> h.CliResult:
    return h.run_cli(["snapshot", "restore", "--config", str(cfg), *args], timeout=30)


def test_restore_needs_confirmation_and_then_vault_takes_it(sims, config, tmp_path):
    s, cfg, path, index, token = _setup(sims, config, tmp_path)
    r = _restore(cfg, str(path))
    assert r.returncode == h.EX_USAGE, str(r)
    assert "OK: verified" in r.stdout and "replaces ALL data" in r.stdout and "--confirm-overwrite" in r.stdout, str(r)
    assert f"raft index {index}" in r.stdout
    assert not _restore_requests(s) and s.state()["restores"] == 0

    s.control("POST", "/raft", {"index": index + 500})  # Vault moved on since the snapshot
    r = _restore(cfg, str(path), "--confirm-overwrite")
    assert r.returncode == 0, str(r)
    assert f"restore accepted by {s.address}" in r.stdout and "seals itself" in r.stdout, str(r)
    ts._assert_no_secrets(r, token)
    st = s.state()
    assert st["restores"] == 1 and st["last_restore"]["index"] == index and st["last_restore"]["force"] is False
    assert [(q["status"], q["has_token"]) for q in _restore_requests(s)] == [(204, True)]


def test_a_damaged_file_is_never_sent(sims, config, tmp_path):
    s, cfg, path, _, _ = _setup(sims, config, tmp_path)
    damaged = tmp_path / "damaged.snap"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    r = _restore(cfg, str(damaged), "--confirm-overwrite")
    assert r.returncode == 1, str(r)
    assert "BAD: " in r.stdout and "nothing was sent to Vault" in r.stdout, str(r)
    assert not _restore_requests(s)


def test_snapshot_of_another_cluster_needs_force(sims, config, tmp_path):
    # Taken from cluster A, restored into cluster B (its own unseal keys): Vault asks for snapshot-force.
    a = ts._start(sims, "a")
    _, _, path, index, _ = _setup(sims, config, tmp_path / "a", sim=a)
    b = ts._start(sims, "b")
    token_b = ts._make_token(b, policies=RESTORE_POLICIES)
    cfg_b = ts._token_config(config, b, tmp_path, token_b, ts._snap_dir(tmp_path, "b-snaps"))
    r = _restore(cfg_b, str(path), "--confirm-overwrite")
    assert r.returncode == 1, str(r)
    assert "different unseal" in r.stdout and "--force" in r.stdout and "snapshot-force" in r.stdout, str(r)
    assert b.state()["restores"] == 0
    r = _restore(cfg_b, str(path), "--confirm-overwrite", "--force")
    assert r.returncode == 0 and "(snapshot-force)" in r.stdout, str(r)
    assert b.state()["last_restore"] == {**b.state()["last_restore"], "index": index, "force": True}


def test_the_snapshot_duty_token_cannot_restore_and_says_why(sims, config, tmp_path):
    s = ts._start(sims)
    token = ts._make_token(s)  # the shipped policy: read only
    snaps = ts._snap_dir(tmp_path)
    cfg = ts._token_config(config, s, tmp_path, token, snaps)
    path, _, _ = ts._assert_saved(ts._now(cfg), snaps)
    r = _restore(cfg, str(path), "--confirm-overwrite")
    assert r.returncode == 1 and "403" in r.stdout and "--token-file" in r.stdout, str(r)
    # An operator token from a file does it.
    operator = ts._make_token(s, policies=RESTORE_POLICIES)
    token_file = ts._secret_file(tmp_path / "operator-token", operator)
    r = _restore(cfg, str(path), "--confirm-overwrite", "--token-file", str(token_file))
    assert r.returncode == 0, str(r)
    ts._assert_no_secrets(r, operator, token)
    insecure = ts._secret_file(tmp_path / "loose-token", operator, mode=0o644)
    r = _restore(cfg, str(path), "--confirm-overwrite", "--token-file", str(insecure))
    assert r.returncode == h.EX_NOPERM, str(r)


def test_restore_through_a_standby_follows_the_redirect(sims, config, tmp_path):
    active = ts._start(sims, "a", extra=("--node-id", "node-a"))
    s, _, path, index, _ = _setup(sims, config, tmp_path / "a", sim=active)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "state").symlink_to(active.state_dir, target_is_directory=True)
    standby = ts._start(sims, "b", init=None, extra=("--node-id", "node-b", "--role", "standby", "--leader-address", active.address))
    token = ts._make_token(active, policies=RESTORE_POLICIES)
    # The active node is a configured [[peer]]: a redirect is followed only to a configured node.
    cfg = ts._token_config(config, standby, tmp_path, token, ts._snap_dir(tmp_path, "b-snaps"), peers=[active])
    r = _restore(cfg, str(path), "--confirm-overwrite")
    assert r.returncode == 0 and f"accepted by {active.address}" in r.stdout, str(r)
    assert [(q["status"], q["has_token"]) for q in _restore_requests(standby)] == [(307, True)]
    assert [(q["status"], q["has_token"]) for q in _restore_requests(active)] == [(204, True)]
    assert active.state()["last_restore"]["index"] == index


def test_encrypted_snapshot_is_decrypted_privately_and_restored(sims, config, tmp_path):
    needs(shutil.which("age") is not None and shutil.which("age-keygen") is not None, "the age tool (age, age-keygen)")
    import test_snapshot_age as ta
    s, cfg, path, index, _ = _setup(sims, config, tmp_path)
    key = ta.Key(tmp_path, "restore")
    encrypted = tmp_path / (path.name + ".age")
    subprocess.run(["age", "-r", key.recipient, "-o", str(encrypted), str(path)], check=True)
    snaps = path.parent
    r = _restore(cfg, str(encrypted), "--confirm-overwrite")
    assert r.returncode == 1 and "--identity" in r.stdout, str(r)
    r = _restore(cfg, str(encrypted), "--confirm-overwrite", "--identity", str(key.path))
    assert r.returncode == 0, str(r)
    assert s.state()["last_restore"]["index"] == index
    # The decrypted copy lived in the private snapshot directory and is gone.
    assert ts._listing(snaps) == ([path.name], [])
    # Wrong identity: not decrypted, nothing sent, nothing left behind.
    other = ta.Key(tmp_path, "other")
    before = len(_restore_requests(s))
    r = _restore(cfg, str(encrypted), "--confirm-overwrite", "--identity", str(other.path))
    assert r.returncode == 1 and "nothing was sent" in r.stdout, str(r)
    assert len(_restore_requests(s)) == before and ts._listing(snaps) == ([path.name], [])
