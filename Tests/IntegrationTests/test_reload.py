# SPDX-License-Identifier: Apache-2.0
"""SIGHUP: RELOADING=1 + MONOTONIC_USEC=, then READY=1; a bad config is rejected and the running
one keeps working."""

from __future__ import annotations

import signal
import time

import vk_harness as h


def _reload_notes(d: h.Daemon, after: float) -> list[tuple[float, dict]]:
    return [(t, h.fields(m)) for t, m in d.notes() if t >= after]


def test_sighup_with_a_good_config_adds_a_peer(sims, daemons, config, keyfile, tmp_path, pki):
    a = sims("a")
    b = sims("b", same_cluster_as=a)
    keys = keyfile(a)
    cfg = config(a, key_file=keys)
    d = daemons(cfg)
    a.wait_unsealed()
    d.wait_status("vault active")
    d.wait_ready()

    cfg.write_text(h.render_config({"address": a.address, "ca_file": pki["ca"]},
                                   health={"interval": "2s", "fast_interval": "100ms"},
                                   unseal={"key_file": str(keys)}, peers=[{"address": b.address}]))
    mark = time.monotonic()
    before_usec = h.monotonic_usec()
    d.signal(signal.SIGHUP)
    entry = d.wait_entry("config_reloaded")[0]
    assert entry.level == "notice" and "2 nodes" in entry.text

    # Datagrams to systemd go through their own queue (they never hold up a duty), so they may
    # arrive after the journal entry: wait for RELOADING=1 and a READY=1 after it.
    def reload_then_ready():
        notes = _reload_notes(d, mark)
        starts = [t for t, f in notes if f.get("RELOADING") == "1"]
        return notes if starts and any(f.get("READY") == "1" and t >= starts[0] for t, f in notes) else None
    notes = h.wait_until(reload_then_ready, h.WAIT_CEILING, what="RELOADING=1, then READY=1")
    reloading = [(t, f) for t, f in notes if f.get("RELOADING") == "1"]
    assert len(reloading) == 1, notes
    t_reload, f_reload = reloading[0]
    usec = int(f_reload["MONOTONIC_USEC"])
    assert before_usec <= usec <= h.monotonic_usec(), (before_usec, usec)
    ready_after = [t for t, f in notes if f.get("READY") == "1" and t >= t_reload]
    assert ready_after, notes
    d.wait_status("2/2 nodes ok", after=mark, timeout=6)
    report = d.wait_state(lambda s: len(s["nodes"]) == 2 and all(n["state"] == "active" for n in s["nodes"]))
    assert [n["address"] for n in report["nodes"]] == [a.address, b.address]
    assert d.running()

    # And back: drop the peer, start writing metrics.
    mdir = tmp_path / "textfile"
    mdir.mkdir()
    d.metrics_dir = mdir
    cfg.write_text(h.render_config({"address": a.address, "ca_file": pki["ca"]}, health=h.FAST_HEALTH,
                                   unseal={"key_file": str(keys)}, metrics={"textfile_dir": str(mdir)}))
    mark = time.monotonic()
    d.signal(signal.SIGHUP)
    d.wait_entry("config_reloaded", count=2)
    d.wait_status("1/1 nodes ok", after=mark)
    d.wait_state(lambda s: [n["address"] for n in s["nodes"]] == [a.address])
    h.wait_until(lambda: d.read_metrics(), 5, what="metrics file after the reload")
    assert b.address not in d.read_metrics()


def test_sighup_with_a_broken_config_keeps_the_running_one(sim, daemons, config, keyfile):
    cfg = config(sim, key_file=keyfile(sim))
    good = cfg.read_text()
    d = daemons(cfg)
    sim.wait_unsealed()
    d.wait_status("vault active")

    cfg.write_text(good + "\n[health]\nintervall = \"5s\"\n")  # duplicate table + unknown key
    mark = time.monotonic()
    d.signal(signal.SIGHUP)
    entry = d.wait_entry("config_rejected")[0]
    assert entry.level == "error"
    assert str(cfg) in entry.text
    notes = _reload_notes(d, mark)
    assert any(f.get("RELOADING") == "1" and "MONOTONIC_USEC" in f for _, f in notes), notes
    d.wait_note(lambda f: f.get("READY") == "1", after=mark, what="READY=1 after the rejected reload")
    assert d.running()
    assert not d.entries("config_reloaded")

    # Still on duty with the old configuration.
    sim.restart(down_ms=200)
    sim.wait_unsealed(timeout=3)
    d.wait_entry("unsealed", contains="sealed after a restart")

    # A fixed file is picked up by the next SIGHUP.
    cfg.write_text(good)
    d.signal(signal.SIGHUP)
    d.wait_entry("config_reloaded")


def test_sighup_with_an_insecure_key_file_is_rejected(sim, daemons, config, keyfile):
    import os
    keys = keyfile(sim)
    d = daemons(config(sim, key_file=keys))
    sim.wait_unsealed()
    d.wait_status("vault active")
    os.chmod(keys, 0o644)
    d.signal(signal.SIGHUP)
    entry = d.wait_entry("config_rejected")[0]
    assert "chmod 0600" in entry.text
    assert d.running()
    os.chmod(keys, 0o600)
    sim.restart(down_ms=200)
    sim.wait_unsealed(timeout=3)


def test_sighup_while_a_request_hangs(sim, daemons, config, keyfile):
    """A reload must not wait for a stuck request of the old generation."""
    # The hanging request's own timeout is far beyond every wait here: the reload and the stop
    # below complete while it still hangs, i.e. neither waits for it.
    d = daemons(config(sim, key_file=keyfile(sim), vault_extra={"timeout": "10m"}))
    sim.wait_unsealed()
    d.wait_status("vault active")
    before = sim.state()["requests_total"]
    sim.fault(kind="hang", paths=["/v1/sys/health"])
    sim.wait_state(lambda s: s["requests_total"] > before, timeout=30, what="a hanging health request")
    mark = time.monotonic()
    d.signal(signal.SIGHUP)
    d.wait_entry("config_reloaded", timeout=30)
    d.wait_note(lambda f: f.get("READY") == "1", after=mark, timeout=30, what="READY=1 after the reload")
    sim.clear_faults()
    d.stop_requested = True
    assert d.stop(timeout=30) == 0


def test_a_burst_of_sighups(sim, daemons, config, keyfile):
    d = daemons(config(sim, key_file=keyfile(sim)))
    sim.wait_unsealed()
    d.wait_status("vault active")
    for _ in range(5):
        d.signal(signal.SIGHUP)
        time.sleep(0.02)
    d.wait_entry("config_reloaded")
    sim.wait_health_checks(2)  # still looking after the burst
    assert d.running()
    sim.restart(down_ms=200)
    sim.wait_unsealed(timeout=3)
    d.wait_entry("unsealed", contains="sealed after a restart")
