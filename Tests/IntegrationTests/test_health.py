# SPDX-License-Identifier: Apache-2.0
"""The health duty against a Vault that is down, slow, answering 5xx or garbage, or hanging.

No stopwatch here: "nothing happened" is checked after the daemon demonstrably looked again (the
simulator's own request log), and the backoff by a lower bound on when the simulator saw the
polls, which load can only make later. Waits have generous ceilings: they only turn a hang into
a failure."""

from __future__ import annotations

import time

import vk_harness as h

CEILING = 30  # seconds: a ceiling on a hang, never a speed requirement


def _health_polls(sim: h.Sim, status=None) -> list[dict]:
    return [r for r in sim.requests()
            if r["path"] == "/v1/sys/health" and (status is None or r["status"] == status)]


def _wait_health_polls(sim: h.Sim, count: int, status=None) -> list[dict]:
    """Waits until the simulator has answered `count` health checks (with `status`)."""
    return h.wait_until(lambda: (lambda polls: polls if len(polls) >= count else None)(_health_polls(sim, status)),
                        CEILING, what=f"{count} health checks" + (f" answered {status}" if status else ""))


def test_vault_down_is_a_known_result(daemons, config, pki):
    port = h.free_port()
    d = daemons(config({"address": f"https://127.0.0.1:{port}", "ca_file": pki["ca"]}))
    # Ready with Vault down the whole time: READY does not wait for Vault, and it carries the
    # result of a real look (below), not a placeholder.
    d.wait_ready(timeout=CEILING)
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
    assert d.wait_status("vault uninitialized", timeout=CEILING)
    # Three more looks at the uninitialised node, each a chance to (wrongly) unseal it.
    seen = len(_health_polls(s))
    _wait_health_polls(s, seen + 3)
    assert s.state()["unseal_requests"] == 0


def test_slow_vault_is_still_unsealed(sim, daemons, config, keyfile):
    sim.fault(kind="latency", ms=300)
    d = daemons(config(sim, key_file=keyfile(sim)))
    sim.wait_unsealed(timeout=CEILING)
    d.wait_status("vault active", timeout=CEILING)
    report = d.wait_state(lambda s: s["nodes"][0]["state"] == "active", timeout=CEILING)
    assert report["nodes"][0]["latency_ms"] >= 250  # a lower bound: load can only add to it
    assert not d.entries("unreachable") and not d.entries("protocol_error")
    assert sim.state()["unseal_key_submissions"] == 3


def test_5xx_on_health_is_a_protocol_error_logged_once(sim, daemons, config, keyfile):
    d = daemons(config(sim, key_file=keyfile(sim)))
    sim.wait_unsealed()
    d.wait_status("vault active")
    sim.fault(kind="status", code=500, paths=["/v1/sys/health"])
    d.wait_entry("protocol_error", timeout=CEILING)
    # Logged once across several failing looks, however long they take to come.
    _wait_health_polls(sim, 5, status=500)
    entries = d.entries("protocol_error")
    assert len(entries) == 1, [e.text for e in entries]
    assert "unexpected HTTP status 500" in entries[0].text
    report = d.wait_state(lambda s: s["nodes"][0]["state"] == "protocol-error")
    assert "500" in report["nodes"][0]["problem"]
    assert "protocol-error" in d.statuses()[-1]

    sim.clear_faults()
    d.wait_entry("recovered", timeout=CEILING)
    d.wait_status("vault active", timeout=CEILING)
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
    ready_at = d.wait_ready(timeout=CEILING)
    # READY waited for the first look to time out (a lower bound, which load cannot break) and
    # reports it: sent on that first result, not after more.
    assert ready_at - d.started >= 0.9, ready_at - d.started
    ready = [h.fields(m) for _, m in d.notes() if "READY=1" in m][0]
    assert ready["STATUS"].startswith("vault unreachable"), ready
    report = d.wait_state(lambda s: s["nodes"][0]["state"] == "unreachable", timeout=CEILING)
    assert report["nodes"][0]["problem"].startswith("timeout"), report
    assert "unreachable" in d.statuses()[-1]
    sim.clear_faults()
    sim.wait_unsealed(timeout=CEILING)
    d.wait_status("vault active", timeout=CEILING)


def test_protocol_errors_back_off(sim, daemons, config, keyfile):
    """A Vault that answers 500 is not restarting: no 50 ms reconnect polling, a real backoff."""
    d = daemons(config(sim, key_file=keyfile(sim)))
    sim.wait_unsealed()
    d.wait_status("vault active")
    sim.control("POST", "/requests/clear")
    faulted_at = time.time()  # the simulator's log uses the same clock
    sim.fault(kind="status", code=500, paths=["/v1/sys/health"])
    polls = _wait_health_polls(sim, 6, status=500)
    # fast_interval 100 ms doubling per failure, ±10% jitter: the sixth failing look comes at
    # least 0.9 × (100 + 200 + 400 + 800 + 1600) ms = 2.79 s after the fault. Polling every 50 ms
    # (the reconnect pace) or every fast_interval would be there after 0.25 s or 0.5 s, and a
    # backoff that stopped doubling at 400 ms after 1.9 s. A lower bound: a busy machine only
    # makes the looks later.
    spent = polls[5]["time"] - faulted_at
    assert spent >= 2.7, f"six health checks within {spent:.2f}s against a Vault answering 500: no backoff"
