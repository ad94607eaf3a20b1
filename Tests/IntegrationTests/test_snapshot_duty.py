# SPDX-License-Identifier: Apache-2.0
"""The scheduled snapshot duty of `vaultkeeper run` against the simulator: schedule and catch-up,
active-only, retention after success, token renewal and re-login, failures with retry, stale
alerts (journal, STATUS, metrics, `check`), SIGTERM mid-download, a full or read-only disk."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any


import test_snapshot as ts
import vk_harness as h
from vk_fixtures import needs

METRIC = re.compile(r"^([a-z_]+)(?:\{([^}]*)\})? (\S+)$")


def _config(config, sim: h.Sim, tmp_path: Path, snapshot: dict, *, metrics_dir: Path | None = None) -> Path:
    path = config(sim, metrics={"textfile_dir": str(metrics_dir)} if metrics_dir else None)
    lines = ["", "[snapshot]"] + [f"{k} = {h._toml_value(v)}" for k, v in snapshot.items()]
    path.write_text(path.read_text() + "\n".join(lines) + "\n")
    return path


def _approle_table(tmp_path: Path, approle: tuple[str, str], directory: Path, **more: Any) -> dict:
    table = {"directory": str(directory), "role_id_file": str(ts._secret_file(tmp_path / "role_id", approle[0])),
             "secret_id_file": str(ts._secret_file(tmp_path / "secret_id", approle[1])), "min_free_space": "1MiB",
             "state_file": str(tmp_path / "snapshot-state.json")}
    table.update(more)
    return table


def _snapshots(directory: Path) -> list[str]:
    files, temps = ts._listing(directory)
    assert not temps, f"temporary files left: {temps}"
    return files


def _metrics(d: h.Daemon) -> dict[str, float]:
    text = d.read_metrics() or ""
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        m = METRIC.match(line)
        assert m, f"not a sample line: {line!r}"
        out[m.group(1) + (f"{{{m.group(2)}}}" if m.group(2) else "")] = float(m.group(3))
    return out


def _sim_state(s: h.Sim) -> dict:
    return s.state()


def test_scheduled_snapshots_with_retention_ledger_status_and_metrics(sims, daemons, config, tmp_path):
    approle = ts._new_approle()
    s = ts._start(sims, approle=approle)
    snaps = ts._snap_dir(tmp_path)
    mdir = tmp_path / "textfile"
    mdir.mkdir()
    cfg = _config(config, s, tmp_path, _approle_table(tmp_path, approle, snaps, interval="2s", keep_last=2), metrics_dir=mdir)
    d = daemons(cfg, metrics_dir=mdir)
    d.wait_ready()
    # The first one is due at once (no ledger yet), then every 2 s.
    taken = d.wait_entry("snapshot_taken", count=4, timeout=20)
    assert all(e.level == "notice" for e in taken)
    assert "verified" in taken[0].text and "raft index" in taken[0].text
    # Retention ran after each success: only the two newest are left; the others were logged.
    files = h.wait_until(lambda: f if len(f := _snapshots(snaps)) == 2 else None, 5, what="two snapshots kept")
    deleted = d.wait_entry("snapshot_retention_deleted", count=2)
    assert all("not kept by any keep_* rule" in e.text for e in deleted)
    for name in files:
        st = os.stat(snaps / name)
        assert st.st_mode & 0o777 == 0o600
        assert ts.NAME_RE.match(name)
    # One login serves every snapshot (the token is kept and reused).
    assert _sim_state(s)["approle_logins"] == 1
    # The ledger records the newest snapshot.
    ledger = json.loads((tmp_path / "snapshot-state.json").read_text())
    assert ledger["last_success"]["file"] in _snapshots(snaps) + [e.text.split(": ", 1)[1].split(" ")[0].rsplit("/", 1)[-1] for e in deleted]
    assert os.stat(tmp_path / "snapshot-state.json").st_mode & 0o777 == 0o600
    status = d.wait_status("snapshot ", "ago")
    assert "STALE" not in status
    state = d.wait_state(lambda st: st.get("snapshot", {}).get("last_success"))
    assert state["snapshot"]["phase"] in ("idle", "running")
    # The metrics file is rewritten after the journal entries: wait for one that counts both
    # deletions the journal showed.
    m = h.wait_until(lambda: x if (x := _metrics(d)).get("vaultkeeper_snapshot_retention_deleted_total", 0) >= 2 else None,
                     h.WAIT_CEILING, what="snapshot metrics counting both deletions")
    assert abs(m["vaultkeeper_snapshot_last_success_timestamp_seconds"] - time.time()) < 30
    assert m["vaultkeeper_snapshot_last_size_bytes"] > 0
    assert m['vaultkeeper_snapshot_failures_total{reason="auth"}'] == 0
    assert m["vaultkeeper_snapshot_stale"] == 0
    assert m["vaultkeeper_snapshot_retention_deleted_total"] >= 2
    assert not d.entries("snapshot_failed")


def test_restart_remembers_the_last_snapshot_and_catches_up_once(sims, daemons, config, tmp_path):
    approle = ts._new_approle()
    s = ts._start(sims, approle=approle)
    snaps = ts._snap_dir(tmp_path)
    ledger_path = tmp_path / "snapshot-state.json"
    # A snapshot 10 minutes ago with an hourly schedule: nothing is due after a restart.
    ledger_path.write_text(json.dumps({"tracking_since": time.time() - 86400, "last_success": {
        "time": time.time() - 600, "file": "gone.snap", "raft_index": 1, "bytes": 1, "duration_seconds": 1}}))
    cfg = _config(config, s, tmp_path, _approle_table(tmp_path, approle, snaps, interval="1h"))
    d = daemons(cfg, name="recent")
    d.wait_ready()
    st = d.wait_state(lambda st: st.get("snapshot", {}).get("next_due"))
    assert 2900 < st["snapshot"]["next_due"] - time.time() < 3001
    time.sleep(2)
    assert not d.entries("snapshot_taken") and not _snapshots(snaps)
    d.stop()

    # Down for three intervals: exactly one catch-up snapshot soon after start, not three.
    ledger = json.loads(ledger_path.read_text())
    ledger["last_success"]["time"] = time.time() - 3 * 3600 - 5
    ledger_path.write_text(json.dumps(ledger))
    d = daemons(cfg, name="late")
    d.wait_entry("snapshot_taken", timeout=10)
    assert d.entries(contains="older than the schedule allows")
    time.sleep(3)
    assert len(d.entries("snapshot_taken")) == 1
    assert len(_snapshots(snaps)) == 1
    st = d.wait_state(lambda st: st.get("snapshot", {}).get("next_due"))
    assert 3500 < st["snapshot"]["next_due"] - time.time() < 3601
    assert json.loads(ledger_path.read_text())["last_success"]["file"] == _snapshots(snaps)[0]


def test_standby_skips_and_the_active_node_takes(sims, daemons, config, tmp_path):
    approle = ts._new_approle()
    s = ts._start(sims, approle=approle)
    s.control("POST", "/role", {"role": "standby"})
    snaps = ts._snap_dir(tmp_path)
    cfg = _config(config, s, tmp_path, _approle_table(tmp_path, approle, snaps, interval="2s", stale_after="2s"))
    d = daemons(cfg)
    d.wait_ready()
    d.wait_state(lambda st: st.get("snapshot", {}).get("phase") == "standby")
    time.sleep(3.5)
    # Not its job: no snapshot, no login, no stale alert, nothing about snapshots in STATUS.
    assert not _snapshots(snaps)
    assert _sim_state(s)["approle_logins"] == 0
    assert not d.entries("snapshots_stale")
    assert all("snapshot" not in st for st in d.statuses())
    # Leadership moves here: this node's vaultkeeper takes over at once (its last one is overdue).
    s.control("POST", "/role", {"role": "active"})
    d.wait_entry("snapshot_taken", timeout=10)
    assert len(_snapshots(snaps)) >= 1


def test_sealed_node_is_not_snapshotted_and_backups_go_stale(sims, daemons, config, tmp_path):
    approle = ts._new_approle()
    s = ts._start(sims, approle=approle, unseal=False)
    snaps = ts._snap_dir(tmp_path)
    cfg = _config(config, s, tmp_path, _approle_table(tmp_path, approle, snaps, interval="1h", stale_after="2s"))
    d = daemons(cfg)
    d.wait_ready()
    stale = d.wait_entry("snapshots_stale", timeout=8)
    assert stale[0].level == "error"
    assert "waiting: vault is sealed" in stale[0].text
    d.wait_status("backups STALE")
    assert not [r for r in s.requests() if r["path"].startswith(ts.SNAPSHOT_PATH)]
    assert not _snapshots(snaps)
    # Unsealed: the overdue snapshot is taken, and backups are fresh again.
    s.unseal_now()
    taken = d.wait_entry("snapshot_taken", timeout=10)
    assert "fresh again" in taken[0].text
    d.wait_status("snapshot ", "ago")


def test_token_is_renewed_between_snapshots_and_replaced_after_revocation(sims, daemons, config, tmp_path):
    approle = ts._new_approle()
    s = ts._start(sims, approle=approle)
    s.control("POST", "/approle", {"ttl": 3, "max_ttl": 600})
    snaps = ts._snap_dir(tmp_path)
    cfg = _config(config, s, tmp_path, _approle_table(tmp_path, approle, snaps, interval="4s"))
    d = daemons(cfg)
    d.wait_entry("snapshot_taken", timeout=10)
    # A 3 s token outlives the 4 s gaps only by renewal (at 2/3 of its TTL), never by a new login.
    h.wait_until(lambda: _sim_state(s)["token_renewals"] >= 2, 10, what="two renewals")
    d.wait_entry("snapshot_taken", count=2, timeout=10)
    assert _sim_state(s)["approle_logins"] == 1
    # Revoked behind our back: the next snapshot's 403 leads to one fresh login, and it succeeds.
    s.control("POST", "/tokens/revoke-all", {})
    before = len(d.entries("snapshot_taken"))
    d.wait_entry("snapshot_taken", count=before + 1, timeout=12)
    assert _sim_state(s)["approle_logins"] >= 2
    assert not d.entries("snapshot_failed")


def test_failures_retry_alert_stale_and_check_reports_it(sims, daemons, config, tmp_path):
    approle = ts._new_approle()
    s = ts._start(sims, approle=approle)
    snaps = ts._snap_dir(tmp_path)
    mdir = tmp_path / "textfile"
    mdir.mkdir()
    table = _approle_table(tmp_path, approle, snaps, interval="2s", stale_after="3s")
    wrong = approle[1][:-1] + ("0" if approle[1][-1] != "0" else "1")
    h.LEDGER.secret(wrong, "duty test wrong secret ID")
    ts._secret_file(tmp_path / "secret_id", wrong)
    cfg = _config(config, s, tmp_path, table, metrics_dir=mdir)
    d = daemons(cfg, metrics_dir=mdir)
    failed = d.wait_entry("snapshot_failed", count=2, timeout=10)  # retried, within the cadence
    assert "(auth)" in failed[0].text and "next attempt in" in failed[0].text
    d.wait_entry("snapshots_stale", timeout=8)
    d.wait_status("backups STALE")
    m = h.wait_until(lambda: x if (x := _metrics(d)).get("vaultkeeper_snapshot_stale") == 1 else None, 8, what="stale metric")
    assert m['vaultkeeper_snapshot_failures_total{reason="auth"}'] >= 2
    # `check` agrees: no good snapshot for longer than twice stale_after is CRITICAL.
    time.sleep(3.5)
    r = h.run_cli(["check", "--config", str(cfg)])
    assert r.returncode == 2, r
    assert "backups stale" in r.stdout and "CRITICAL: snapshots: no good snapshot yet" in r.stdout
    # The operator fixes the secret ID: the next retry succeeds, backups are fresh again.
    ts._secret_file(tmp_path / "secret_id", approle[1])
    taken = d.wait_entry("snapshot_taken", timeout=10)
    assert "fresh again" in taken[0].text
    r = h.run_cli(["check", "--config", str(cfg), "--snapshot-warning", "1h"])
    assert r.returncode == 0, r
    assert "OK: snapshots: last good snapshot" in r.stdout and "'snapshot_age'=" in r.stdout
    r = h.run_cli(["check", "--config", str(cfg), "--snapshot-warning", "soon"])
    assert r.returncode == 3 and "durations" in r.stdout, r


def test_sigterm_mid_download_leaves_no_partial_file(sims, daemons, config, tmp_path):
    approle = ts._new_approle()
    s = ts._start(sims, approle=approle)
    s.fault(kind="slow", bps=20_000, count=1)  # ~13 s for the whole stream
    snaps = ts._snap_dir(tmp_path)
    cfg = _config(config, s, tmp_path, _approle_table(tmp_path, approle, snaps, interval="1h"))
    d = daemons(cfg)
    h.wait_until(lambda: ts._listing(snaps)[1], 10, what="a download in progress")
    d.wait_state(lambda st: st.get("snapshot", {}).get("phase") == "running")
    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(timeout=10) == 0
    assert ts._listing(snaps) == ([], [])
    assert d.entries(contains="snapshot interrupted")
    assert not d.entries("snapshot_failed")


def test_leftovers_of_a_killed_run_are_removed_at_start(sims, daemons, config, tmp_path):
    approle = ts._new_approle()
    s = ts._start(sims, approle=approle)
    snaps = ts._snap_dir(tmp_path)
    (snaps / ".vaultkeeper-snapshot-killed.tmp").write_bytes(b"half a snapshot")
    (snaps / "operator-notes.txt").write_text("not ours")
    cfg = _config(config, s, tmp_path, _approle_table(tmp_path, approle, snaps, interval="1h"))
    d = daemons(cfg)
    d.wait_entry("snapshot_taken", timeout=10)
    assert d.entries(contains="removed 1 unfinished snapshot file")
    names = sorted(os.listdir(snaps))
    assert len(names) == 2 and "operator-notes.txt" in names, names
    assert any(ts.NAME_RE.match(n) for n in names), names


def _mount_tmpfs(path: Path, options: str) -> None:
    path.mkdir(mode=0o700)
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True)


def test_disk_full_on_a_small_tmpfs_keeps_nothing(sims, config, tmp_path):
    needs(os.geteuid() == 0, "root (to mount a small tmpfs)")
    s = ts._start(sims, extra=("--snapshot-gzip-level", "0"))
    token = ts._make_token(s)
    snaps = tmp_path / "tiny"
    _mount_tmpfs(snaps, "size=64k,mode=0700")
    try:
        cfg = ts._token_config(config, s, tmp_path, token, snaps, min_free_space="0")
        r = ts._now(cfg)
        assert r.returncode == 1, r
        assert f"the disk holding {snaps} is full" in r.stdout, r
        assert ts._listing(snaps) == ([], [])
    finally:
        subprocess.run(["umount", str(snaps)], check=False)


def test_unwritable_directory_fails_clearly(sims, config, tmp_path):
    needs(os.geteuid() == 0, "root (to mount a read-only tmpfs; root ignores mode bits)")
    s = ts._start(sims)
    token = ts._make_token(s)
    snaps = tmp_path / "ro"
    _mount_tmpfs(snaps, "size=1m,mode=0700,ro")
    try:
        cfg = ts._token_config(config, s, tmp_path, token, snaps)
        r = ts._now(cfg)
        assert r.returncode == 1, r
        assert f"cannot create a file in {snaps}" in r.stdout and "Read-only file system" in r.stdout, r
    finally:
        subprocess.run(["umount", str(snaps)], check=False)
