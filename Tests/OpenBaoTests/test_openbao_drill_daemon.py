# SPDX-License-Identifier: Apache-2.0
"""The scheduled restore drill of `vaultkeeper run` against real OpenBao (issue #12): the daemon
takes snapshots on a short interval and, with `[snapshot.drill]` enabled, drills them into a
throwaway `bao server`; the journal, STATUS, the state file, the metrics and `vaultkeeper check`
show it, and production is untouched. After `bao operator rekey` of production the next drill
fails on the shares and `check` turns CRITICAL. SIGTERM during a drill leaves no throwaway
server and no directory behind.

Every wait is on an event (a journal entry, the state file, a process appearing), never on the clock.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
from pathlib import Path

import pytest

import bao_harness as bh
import snapshot_support as ss
import test_openbao_drill as td
import test_snapshot_duty as tsd
import vk_harness as h


@pytest.fixture
def state():
    """The daemon's state directory (snapshot and drill ledgers, the drill's workspace). Short:
    the throwaway server's socket lives under it."""
    path = Path(h.short_tmpdir("vk-dd-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _daemon_config(config, keyfile, tmp_path: Path, state: Path, node: bh.BaoNode, init: dict, mdir: Path) -> Path:
    snaps = tmp_path / "snaps"
    snaps.mkdir()
    token = ss.secret_file(tmp_path / "token", node.root_token)
    cfg = ss.with_snapshot(
        config(node, key_file=keyfile(init, drop_root_token=True), metrics={"textfile_dir": str(mdir)}),
        {"directory": str(snaps), "token_file": str(token), "interval": "2s", "min_free_space": "1MiB",
         "keep_last": 3, "state_file": str(state / "snapshot-state.json")})
    drill = {"enabled": True, "interval": "1s", "timeout": "2m", "binary": bh.bao_binary()}
    cfg.write_text(cfg.read_text() + "\n[snapshot.drill]\n" + "".join(f"{k} = {h._toml_value(v)}\n" for k, v in drill.items()))
    return cfg


def _check(cfg: Path, d: h.Daemon) -> h.CliResult:
    return h.run_cli(["check", "--config", str(cfg), "--state-file", str(d.state_file)], timeout=30)


def _rekey(node: bh.BaoNode, init: dict) -> None:
    """`bao operator rekey` of production: new shares; vaultkeeper's key file keeps the old ones."""
    started = json.loads(node.cli("operator", "rekey", "-init", "-key-shares=5", "-key-threshold=3", "-format=json").stdout)
    final = None
    for key in bh.shares_b64(init)[:3]:
        out = node.cli("operator", "rekey", "-format=json", f"-nonce={started['nonce']}", key).stdout
        if out.strip():
            final = json.loads(out)
    assert final and final.get("complete") is True, final
    for k in final["keys_base64"] + final["keys"]:
        h.LEDGER.secret(k, "rekeyed share")


def test_scheduled_drill_passes_then_fails_on_the_shares_after_a_rekey(baos, daemons, config, keyfile, tmp_path, state):
    node = baos("node1", listener_extra="  disable_unauthed_rekey_endpoints = false\n")
    init = node.operator_init(5, 3)
    value = td._production(node, init)
    pid, port = node.pid, node.api_port
    mdir = tmp_path / "textfile"
    mdir.mkdir()
    cfg = _daemon_config(config, keyfile, tmp_path, state, node, init, mdir)
    d = daemons(cfg, metrics_dir=mdir)

    # A snapshot, then a drill of it: one journal entry, with the file the snapshot duty wrote.
    taken = d.wait_entry("snapshot_taken", timeout=60)[0]
    passed = d.wait_entry("snapshot_drill_passed", timeout=120)[0]
    assert passed.level == "notice" and "restore drill passed: " in passed.text and "unsealed with 3 of the shares" in passed.text, passed
    assert re.search(r"snapshot\.file=\S+/snaps/vaultkeeper-\S+\.snap", passed.text), passed
    assert d.log().index(taken) < d.log().index(passed)
    d.wait_status("restore drill ok", timeout=30)
    s = d.wait_state(lambda s: (s.get("drill") or {}).get("last_result") == "passed", timeout=30, what="drill passed in the state file")
    drill = s["drill"]
    assert drill["last_passed"] > 0 and drill["last_duration_seconds"] > 0 and drill["last_passed_file"].startswith("vaultkeeper-"), drill
    ledger = json.loads((state / "drill-state.json").read_text())
    assert ledger["last_passed"]["file"].startswith("vaultkeeper-"), ledger
    assert (state / "drill-state.json").stat().st_mode & 0o777 == 0o600
    m = h.wait_until(lambda: x if (x := tsd._metrics(d)).get("vaultkeeper_snapshot_drill_last_success_timestamp_seconds") else None,
                     30, what="drill metrics")
    assert m["vaultkeeper_snapshot_drill_duration_seconds"] > 0, m
    assert m['vaultkeeper_snapshot_drill_failures_total{stage="unseal"}'] == 0, m
    assert m["vaultkeeper_snapshot_drill_last_failed_on_shares"] == 0, m
    c = _check(cfg, d)
    assert c.returncode == 0, str(c)
    assert "OK: restore drill last passed" in c.stdout and "'drill_age'=" in c.stdout, str(c)
    td._untouched(node, value, pid, port)

    # Production rekeyed: the next snapshot's drill fails on the shares, and says so everywhere.
    _rekey(node, init)
    failed = d.wait_entry("snapshot_drill_failed", timeout=120)[0]
    assert failed.level == "error" and "drill.stage=unseal" in failed.text and "drill.reason=shares-rejected" in failed.text, failed
    assert "the shares we hold do not unseal this snapshot: it was taken after a rekey, or from another cluster" in failed.text, failed
    d.wait_status("restore drill FAILED (shares)", timeout=30)
    s = d.wait_state(lambda s: (s.get("drill") or {}).get("last_result") == "failed", timeout=30, what="drill failed in the state file")
    assert s["drill"]["last_failure_stage"] == "unseal" and s["drill"]["last_failure_about_shares"] is True, s["drill"]
    m = h.wait_until(lambda: x if (x := tsd._metrics(d)).get("vaultkeeper_snapshot_drill_last_failed_on_shares") == 1 else None,
                     30, what="the shares failure in the metrics")
    assert m['vaultkeeper_snapshot_drill_failures_total{stage="unseal"}'] >= 1, m
    c = _check(cfg, d)
    assert c.returncode == 2, str(c)
    assert "restore drill FAILED on the shares" in c.stdout.splitlines()[0], str(c)
    assert "CRITICAL: restore drill failed on the shares" in c.stdout, str(c)

    # After a failure the next try waits an interval's worth (1 s here) and a newer snapshot; the
    # other duties kept their schedule throughout, and production was never touched.
    assert d.stop(timeout=60) == 0
    td._assert_nothing_left(state)
    assert node.running() and node.pid == pid and node.api_port == port and node.is_active()
    assert ss.kv_get(node, "secret/app", node.root_token) == {"password": value}


def test_sigterm_during_a_scheduled_drill_leaves_nothing(bao, daemons, config, keyfile, tmp_path, state):
    node, init = bao
    value = td._production(node, init)
    mdir = tmp_path / "textfile"
    mdir.mkdir()
    cfg = _daemon_config(config, keyfile, tmp_path, state, node, init, mdir)
    d = daemons(cfg, metrics_dir=mdir)
    # The drill's server is running: the daemon is in the middle of a drill.
    h.wait_until(lambda: td._drill_processes(state), 120, interval=0.02, what="the scheduled drill's server running")
    d.signal(signal.SIGTERM)
    assert d.wait_exit(timeout=60) == 0, d.stderr()
    td._assert_nothing_left(state)
    assert d.entries(contains="interrupted: vaultkeeper is stopping or reloading"), d.stderr()
    assert not d.entries("snapshot_drill_failed"), "a stop is not a failed drill"
    assert ss.kv_get(node, "secret/app", node.root_token) == {"password": value}
