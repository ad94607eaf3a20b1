"""The health duty against a Vault that is down, slow, answering 5xx or garbage, or hanging."""

from __future__ import annotations

import time

import vk_harness as h


def test_vault_down_is_a_known_result(daemons, config, pki):
    port = h.free_port()
    d = daemons(config({"address": f"https://127.0.0.1:{port}", "ca_file": pki["ca"]}))
    ready_at = d.wait_ready(timeout=5)
    assert ready_at - d.started < 4
    ready = [h.fields(m) for _, m in d.notes() if "READY=1" in m][0]
    assert ready["STATUS"].startswith("vault unreachable"), ready
    assert "0/1 nodes ok" in ready["STATUS"]
    report = d.wait_state(lambda s: s["nodes"][0]["state"] == "unreachable")
    assert report["nodes"][0]["problem"].startswith("connect"), report
    entry = d.wait_entry("unreachable")[0]
    assert entry.level == "warning"  # a routine restart must not page anyone


def test_vault_coming_up_later_is_unsealed(tmp_path, daemons, config, sims, pki):
    port = h.free_port()
    # The key file must exist before the daemon starts: initialise the node, then stop it.
    s = sims("sim", port=port)
    keys = h.write_key_json(tmp_path / "keys.json", s.init_json())
    s.stop()
    cfg = config({"address": f"https://127.0.0.1:{port}", "ca_file": pki["ca"]}, key_file=keys)
    d = daemons(cfg)
    d.wait_ready()
    d.wait_entry("unreachable")
    # Same state dir, same port: the "restarted process" comes up sealed.
    s2 = h.Sim(tmp_path / "sim", pki, name="sim-again", port=port, init=None)
    try:
        s2.wait_unsealed(timeout=5)
        d.wait_entry("recovered")
        d.wait_entry("unsealed")
        d.wait_status("vault active")
    finally:
        s2.stop()


def test_uninitialized_vault_is_watched_not_unsealed(sims, daemons, config, foreign_init, tmp_path):
    s = sims("sim", init=None)
    keys = h.write_key_json(tmp_path / "keys.json", foreign_init)
    d = daemons(config(s, key_file=keys))
    d.wait_ready()
    entry = d.wait_entry("state_changed", contains="not initialized")[0]
    assert entry.level == "warning"
    assert d.wait_status("vault uninitialized")
    time.sleep(0.5)
    assert s.state()["unseal_requests"] == 0


def test_slow_vault_is_still_unsealed(sim, daemons, config, keyfile):
    sim.fault(kind="latency", ms=300)
    d = daemons(config(sim, key_file=keyfile(sim)))
    sim.wait_unsealed(timeout=6)
    d.wait_status("vault active", timeout=3)
    report = d.wait_state(lambda s: s["nodes"][0]["state"] == "active")
    assert report["nodes"][0]["latency_ms"] >= 250
    assert not d.entries("unreachable") and not d.entries("protocol_error")
    assert sim.state()["unseal_key_submissions"] == 3


def test_5xx_on_health_is_a_protocol_error_logged_once(sim, daemons, config, keyfile):
    d = daemons(config(sim, key_file=keyfile(sim)))
    sim.wait_unsealed()
    d.wait_status("vault active")
    sim.fault(kind="status", code=500, paths=["/v1/sys/health"])
    d.wait_entry("protocol_error")
    time.sleep(2.5)
    entries = d.entries("protocol_error")
    assert len(entries) == 1, [e.text for e in entries]
    assert "unexpected HTTP status 500" in entries[0].text
    report = d.wait_state(lambda s: s["nodes"][0]["state"] == "protocol-error")
    assert "500" in report["nodes"][0]["problem"]
    assert "protocol-error" in d.statuses()[-1]

    sim.clear_faults()
    d.wait_entry("recovered", timeout=5)
    d.wait_status("vault active")
    # A 500 is not a restart: nothing was sealed, nothing to unseal.
    assert sim.state()["unseal_key_submissions"] == 3


def test_garbage_on_health_is_a_protocol_error(sim, daemons, config, keyfile):
    sim.unseal_now()
    sim.fault(kind="garbage", paths=["/v1/sys/health"])
    d = daemons(config(sim, key_file=keyfile(sim)))
    d.wait_ready()
    entry = d.wait_entry("protocol_error")[0]
    assert "not Vault health JSON" in entry.text
    report = d.wait_state(lambda s: s["nodes"][0]["state"] == "protocol-error")
    assert "not Vault health JSON" in report["nodes"][0]["problem"]
    assert "<html>" not in d.stderr()  # the body is not copied into the journal


def test_hanging_vault_times_out_as_unreachable(sim, daemons, config, keyfile):
    sim.fault(kind="hang")
    d = daemons(config(sim, key_file=keyfile(sim), vault_extra={"timeout": "1s"}))
    ready_at = d.wait_ready(timeout=4)
    assert 0.9 <= ready_at - d.started < 4, ready_at - d.started
    report = d.wait_state(lambda s: s["nodes"][0]["state"] == "unreachable")
    assert report["nodes"][0]["problem"].startswith("timeout"), report
    assert "unreachable" in d.statuses()[-1]
    sim.clear_faults()
    sim.wait_unsealed(timeout=6)
    d.wait_status("vault active", timeout=3)


def test_protocol_errors_back_off(sim, daemons, config, keyfile):
    """A Vault that answers 500 is not restarting: no 50 ms reconnect polling, a real backoff."""
    d = daemons(config(sim, key_file=keyfile(sim)))
    sim.wait_unsealed()
    d.wait_status("vault active")
    sim.control("POST", "/requests/clear")
    sim.fault(kind="status", code=500, paths=["/v1/sys/health"])
    time.sleep(3.0)
    polls = [r for r in sim.requests() if r["path"] == "/v1/sys/health"]
    # fast_interval 100 ms doubling per failure: ~6 looks in 3 s; allow twice that.
    assert len(polls) <= 12, f"{len(polls)} health checks in 3 s against a Vault answering 500"
