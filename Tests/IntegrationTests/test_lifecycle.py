# SPDX-License-Identifier: Apache-2.0
"""SIGTERM (also mid-request), and `vaultkeeper status` reading the running daemon's state file."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

import vk_harness as h


# The hanging request's own timeout: far beyond the wait for the exit below, so an exit within
# that wait shows the stop did not wait for the request (no stopwatch needed).
HANG_TIMEOUT = "10m"


def _assert_graceful(d: h.Daemon) -> None:
    rc = d.wait_exit(timeout=30)
    assert rc == 0, d.stderr()
    stopping = [f for _, f in ((t, h.fields(m)) for t, m in d.notes()) if f.get("STOPPING") == "1"]
    assert stopping, d.notes()
    assert d.entries("stopping"), d.stderr()


def test_sigterm_while_a_health_request_hangs(sim, daemons, config, keyfile):
    d = daemons(config(sim, key_file=keyfile(sim), vault_extra={"timeout": HANG_TIMEOUT}))
    sim.wait_unsealed()
    d.wait_status("vault active")
    before = sim.state()["requests_total"]
    sim.fault(kind="hang", paths=["/v1/sys/health"])
    sim.wait_state(lambda s: s["requests_total"] > before, timeout=30, what="a hanging health request")
    d.signal(signal.SIGTERM)
    _assert_graceful(d)


def test_sigterm_while_an_unseal_request_hangs(sim, daemons, config, keyfile):
    sim.fault(kind="hang", paths=["/v1/sys/unseal"])
    d = daemons(config(sim, key_file=keyfile(sim), vault_extra={"timeout": HANG_TIMEOUT}))
    sim.wait_state(lambda s: s["unseal_requests"] >= 1, timeout=30, what="a hanging unseal request")
    d.signal(signal.SIGTERM)
    _assert_graceful(d)


def test_sigterm_before_ready(sim, daemons, config, keyfile):
    """Stopped while the first health result is still outstanding (TLS handshake hangs)."""
    sim.fault(kind="hang", stage="accept")
    d = daemons(config(sim, key_file=keyfile(sim), vault_extra={"timeout": HANG_TIMEOUT}))
    sim.wait_state(lambda s: s["connections_total"] >= 1, timeout=30, what="the daemon's connection")
    assert not [m for _, m in d.notes() if "READY=1" in m]
    d.signal(signal.SIGTERM)
    _assert_graceful(d)


def test_sigint_stops_too(sim, daemons, config, keyfile):
    d = daemons(config(sim, key_file=keyfile(sim)))
    sim.wait_unsealed()
    d.wait_ready()
    d.signal(signal.SIGINT)
    _assert_graceful(d)


def test_status_command_reads_the_state_file(sim, daemons, config, keyfile):
    d = daemons(config(sim, key_file=keyfile(sim)))
    sim.wait_unsealed()
    d.wait_status("vault active")
    d.wait_state(lambda s: s["nodes"][0]["state"] == "active")

    r = h.run_cli(["status", "--state-file", str(d.state_file)])
    assert r.returncode == 0, r
    lines = r.stdout.splitlines()
    assert lines[0].startswith("vault active (1.19.0)") and "1/1 nodes ok" in lines[0], r
    assert f"daemon pid {d.proc.pid}," in r.stdout and str(d.config) in r.stdout
    assert f"  {sim.address}: active 1.19.0" in r.stdout

    r = h.run_cli(["status", "--state-file", str(d.state_file), "--json"])
    assert r.returncode == 0, r
    report = json.loads(r.stdout)
    assert report["pid"] == d.proc.pid
    assert report["nodes"][0]["state"] == "active"
    assert report["nodes"][0]["unseal_attempts"] == {"success": 3}

    assert d.stop() == 0
    r = h.run_cli(["status", "--state-file", str(d.state_file)])
    assert r.returncode == 3, r
    assert "(not running)" in r.stdout


def test_status_without_a_state_file(tmp_path):
    r = h.run_cli(["status", "--state-file", str(tmp_path / "missing.json")])
    assert r.returncode == 3, r
    assert "is `vaultkeeper run` running?" in r.stderr


def test_state_file_in_runtime_directory(sim, daemons, config, keyfile, tmp_path):
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    env = {"RUNTIME_DIRECTORY": f"{runtime}:{tmp_path / 'other'}"}
    d = daemons(config(sim, key_file=keyfile(sim)), env=env, pass_state_file=False)
    sim.wait_unsealed()
    d.wait_state(lambda s: s["nodes"][0]["state"] == "active")
    assert d.state_file == runtime / "state.json"
    assert os.stat(d.state_file).st_mode & 0o777 == 0o644
    r = h.run_cli(["status"], env=env)
    assert r.returncode == 0, r
    assert f"{sim.address}: active" in r.stdout


def test_status_reports_a_stale_state_file(tmp_path):
    path = tmp_path / "state.json"
    now = time.time()
    path.write_text(json.dumps({"pid": os.getpid(), "started_at": now - 600, "updated_at": now - 300,
                                "config": "/etc/vaultkeeper/vaultkeeper.toml",
                                "nodes": [{"address": "https://127.0.0.1:8200", "state": "active", "since": now - 600,
                                           "last_check": now - 300, "latency_ms": 1, "unseal_attempts": {},
                                           "consecutive_failures": 0}]}))
    r = h.run_cli(["status", "--state-file", str(path)])
    assert r.returncode == 3, r
    assert "stale" in r.stdout


def test_forced_native_journal_without_journald_loses_nothing(sim, daemons, config, keyfile):
    """--journal with no journald socket: every entry falls back to stderr instead of vanishing."""
    d = daemons(config(sim, key_file=keyfile(sim)), extra_args=["--journal"])
    sim.wait_unsealed()
    d.wait_ready()
    # READY=1 is sent right before the "started" entry is logged: wait for the entry itself.
    d.wait_entry("started", timeout=30)
    assert d.entries("unsealed") and d.entries("started"), d.stderr()
