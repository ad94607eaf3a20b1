# SPDX-License-Identifier: Apache-2.0
"""The unseal duty against a sealed simulator over real TLS: start-up, restarts, the deliberate
seal, wrong shares, duplicates, foreign progress, too few shares."""

from __future__ import annotations

import json
import signal
import time

import pytest

import vk_harness as h
from vk_harness import MID


def test_sealed_at_start_is_unsealed_with_exactly_threshold_shares(sim, daemons, config, keyfile):
    d = daemons(config(sim, key_file=keyfile(sim)))
    sim.wait_unsealed(timeout=5)
    ready_at = d.wait_ready()
    unsealed = d.wait_entry("unsealed", contains="sealed at start-up")
    assert unsealed[0].level == "notice"
    assert "vault.unseal_shares=3" in unsealed[0].text

    # READY=1 carries a STATUS built from a real health result, never the placeholder state.
    ready = [h.fields(m) for t, m in d.notes() if h.fields(m).get("READY") == "1"]
    assert len(ready) == 1, d.notes()
    assert "unknown" not in ready[0].get("STATUS", ""), ready
    assert "(1.19.0)" in ready[0]["STATUS"], ready
    assert ready_at >= d.started

    d.wait_status("vault active (1.19.0)")
    d.wait_status("1/1 nodes ok")
    st = sim.state()
    assert st["unseal_key_submissions"] == 3  # threshold, never more
    assert st["unseal_requests"] == 3  # and no resets or retries
    assert st["progress"] == 0 and not st["sealed"]

    report = d.wait_state(lambda s: s["nodes"][0]["state"] == "active")
    node = report["nodes"][0]
    assert node["address"] == sim.address
    assert node["unseal_attempts"] == {"success": 3}
    assert node["last_unseal"] > 0
    assert node["version"] == "1.19.0"
    assert report["pid"] == d.proc.pid
    # The init JSON carries a root token: warned about once, never used.
    assert len(d.entries(level="warning", contains="root token")) == 1
    requests = sim.requests()
    assert not any(r["has_token"] for r in requests)
    assert all(r["x_vault_request"] for r in requests), requests
    health = [r for r in requests if r["path"] == "/v1/sys/health"]
    assert health and all("sealedcode=503" in r["query"] and "standbycode=429" in r["query"] for r in health)
    assert sim.state()["connections_total"] == 1  # one kept-alive connection for everything


def test_status_never_says_sealed_right_after_unsealing(sim, daemons, config, keyfile):
    d = daemons(config(sim, key_file=keyfile(sim)))
    sim.wait_unsealed()
    d.wait_ready()
    d.wait_status("vault active")
    contradictory = [s for s in d.statuses() if s.startswith("vault sealed") and "unsealed 0s ago" in s]
    assert not contradictory, contradictory


def test_ready_waits_for_the_first_health_result(sim, daemons, config, keyfile):
    sim.unseal_now()
    sim.fault(kind="latency", ms=1200, paths=["/v1/sys/health"], count=1)
    d = daemons(config(sim, key_file=keyfile(sim)))
    ready_at = d.wait_ready(timeout=30)
    # Not before the slow first answer (a lower bound, which load cannot break), and carrying
    # it: READY=1 sent before any health result was known would say so in its STATUS.
    assert ready_at - d.started >= 1.1
    ready = [h.fields(m) for _, m in d.notes() if "READY=1" in m][0]
    assert ready["STATUS"].startswith("vault active (1.19.0)"), ready
    assert d.entries("started"), d.stderr()


def test_watchdog_pings_while_duties_progress(sim, daemons, config, keyfile):
    d = daemons(config(sim, key_file=keyfile(sim)), watchdog_usec=600_000)
    sim.wait_unsealed()
    d.wait_ready()
    pings = h.wait_until(lambda: (lambda p: p if len(p) >= 4 else None)(
        [t for t, m in d.notes() if "WATCHDOG=1" in m.split("\n")]), 30, what="four watchdog pings")
    gaps = [b - a for a, b in zip(pings, pings[1:])]
    assert max(gaps) < 0.6, gaps  # every half interval (300 ms), always inside WATCHDOG_USEC


def test_no_watchdog_pings_without_watchdog_usec(sim, daemons, config, keyfile):
    d = daemons(config(sim, key_file=keyfile(sim)))
    sim.wait_unsealed()
    d.wait_ready()
    sim.wait_health_checks(3)
    assert not [m for _, m in d.notes() if "WATCHDOG=1" in m], d.notes()


@pytest.mark.parametrize("down_ms", [300, 0])
def test_restart_is_unsealed_again_each_time(sim, daemons, config, keyfile, down_ms):
    """down_ms=0: the listener is back at once, so only the closed kept-alive connection tells
    a restart from a deliberate seal."""
    # The regular interval is far longer than the wait below: being unsealed within it shows the
    # restart was seen at once (closed connection, reconnect polling), not at the next look.
    d = daemons(config(sim, key_file=keyfile(sim), health={"interval": "10m", "fast_interval": "100ms"}))
    sim.wait_unsealed()
    d.wait_status("vault active")
    for i in range(1, 4):
        sim.restart(down_ms=down_ms)
        st = sim.wait_unsealed(timeout=30)
        assert st["restarts"] == i
        d.wait_entry("unsealed", contains="sealed after a restart", count=i)
    st = sim.state()
    assert st["unseal_key_submissions"] == 12  # 3 per unseal, 4 unseals
    assert not d.entries("deliberate_seal"), d.stderr()
    report = d.wait_state(lambda s: s["nodes"][0]["unseal_attempts"].get("success") == 12)
    assert report["nodes"][0]["state"] == "active"


def test_deliberate_seal_is_respected_until_vaultkeeper_unseal(sim, daemons, config, keyfile):
    cfg = config(sim, key_file=keyfile(sim), health={"interval": "500ms", "fast_interval": "100ms"})
    d = daemons(cfg)
    sim.wait_unsealed()
    d.wait_status("vault active")
    before = sim.state()["unseal_requests"]

    sim.seal()
    entry = d.wait_entry("deliberate_seal", timeout=3)[0]
    assert entry.level == "critical"
    assert "`vaultkeeper unseal`" in entry.text
    assert f"vault.addr={sim.address}" in entry.text
    sim.wait_health_checks(4)  # four more looks at the sealed node
    st = sim.state()
    assert st["sealed"], "a deliberately sealed Vault was unsealed"
    assert st["unseal_requests"] == before
    assert len(d.entries("deliberate_seal")) == 1  # said once, not per poll
    assert "deliberately sealed" in d.wait_status("deliberately sealed")
    report = d.wait_state(lambda s: s["nodes"][0]["state"] == "sealed")
    assert report["nodes"][0]["hold"] == "deliberately sealed"

    # The operator's override.
    r = h.run_cli(["unseal", "--config", str(cfg)])
    assert r.returncode == 0, r
    assert f"{sim.address}: sealed → active" in r.stdout, r
    assert not sim.state()["sealed"]
    assert sim.state()["unseal_key_submissions"] == before + 3
    d.wait_status("vault active")
    d.wait_state(lambda s: s["nodes"][0]["state"] == "active" and s["nodes"][0].get("hold") is None)

    # A later restart of Vault is unsealed automatically again.
    sim.restart(down_ms=200)
    sim.wait_unsealed(timeout=3)
    d.wait_entry("unsealed", contains="sealed after a restart")


def test_restart_in_the_middle_of_unsealing(sim, daemons, config, keyfile):
    """Vault restarts while our share is in flight: the attempt is lost, the next one succeeds."""
    sim.fault(kind="latency", ms=600, paths=["/v1/sys/unseal"], count=1)
    d = daemons(config(sim, key_file=keyfile(sim)))
    sim.wait_state(lambda s: s["unseal_requests"] >= 1, timeout=5, what="first share in flight")
    sim.restart(down_ms=200)
    st = sim.wait_unsealed(timeout=5)
    assert st["restarts"] == 1
    d.wait_status("vault active")
    assert not d.entries("deliberate_seal") and not d.entries("wrong_key")


@pytest.mark.parametrize("version", ["1.12.0", "1.15.6+ent"])
def test_other_vault_versions(sims, daemons, config, keyfile, version):
    s = sims("sim", extra=["--version", version] + (["--legacy-wrong-key-500"] if version < "1.13" else []))
    d = daemons(config(s, key_file=keyfile(s)))
    s.wait_unsealed(timeout=5)
    d.wait_status(f"vault active ({version})")


def test_restart_after_a_deliberate_seal_is_unsealed(sim, daemons, config, keyfile):
    d = daemons(config(sim, key_file=keyfile(sim)))
    sim.wait_unsealed()
    d.wait_status("vault active")
    sim.seal()
    d.wait_entry("deliberate_seal", timeout=3)
    sim.restart(down_ms=200)
    sim.wait_unsealed(timeout=3)
    d.wait_entry("unsealed", contains="sealed after a restart")
    d.wait_state(lambda s: s["nodes"][0]["state"] == "active" and s["nodes"][0].get("hold") is None)


def test_unseal_disabled_only_watches(sim, daemons, config, keyfile):
    d = daemons(config(sim, key_file=keyfile(sim), unseal={"enabled": False}))
    d.wait_ready()
    d.wait_entry("sealed")
    sim.wait_health_checks(3)
    assert sim.state()["sealed"] and sim.state()["unseal_requests"] == 0
    assert "vault sealed" in d.statuses()[-1]


def test_unseal_errors_are_logged_once_and_backed_off(sim, daemons, config, keyfile):
    """A 5xx on /sys/unseal (not a wrong key) is retried with a backoff, not hammered."""
    sim.fault(kind="status", code=503, paths=["/v1/sys/unseal"])
    started = time.time()  # the simulator's log uses the same clock
    d = daemons(config(sim, key_file=keyfile(sim)))
    entry = d.wait_entry("unseal_failed", contains="failed", timeout=30)[0]
    assert entry.level == "error"
    attempts = h.wait_until(lambda: (lambda a: a if len(a) >= 6 else None)(
        [r for r in sim.requests() if r["path"] == "/v1/sys/unseal"]), 30, what="six unseal attempts")
    # Backoff from fast_interval (100 ms) doubling, ±10% jitter: the sixth attempt comes at least
    # 0.9 × (100 + 200 + 400 + 800 + 1600) ms = 2.79 s after the start; a retry every 100 ms would
    # be there after 0.5 s. A lower bound: a busy machine only makes the attempts later.
    spent = attempts[5]["time"] - started
    assert spent >= 2.7, f"six unseal attempts within {spent:.2f}s of a Vault answering 503: no backoff"
    assert sim.state()["sealed"]
    assert len(d.entries("unseal_failed")) == 1, [e.text for e in d.entries("unseal_failed")]
    sim.clear_faults()
    sim.wait_unsealed(timeout=30)
    d.wait_status("vault active")


def test_unseal_command_with_wrong_keys_fails(sim, config, tmp_path, foreign_init):
    keys = h.write_key_json(tmp_path / "other.json", foreign_init)
    r = h.run_cli(["unseal", "--config", str(config(sim, key_file=keys))])
    assert r.returncode == h.EX_UNAVAILABLE, r
    assert "sealed → sealed" in r.stdout
    assert MID["wrong_key"] in r.stderr
    assert sim.state()["unseal_key_submissions"] == 3


def test_unseal_command_for_one_node(sims, config, keyfile):
    a = sims("a")
    b = sims("b", same_cluster_as=a)
    cfg = config(a, key_file=keyfile(a), peers=[b])
    r = h.run_cli(["unseal", "--config", str(cfg), "--node", b.address])
    assert r.returncode == 0, r
    assert r.stdout.strip() == f"{b.address}: sealed → active"
    assert a.state()["sealed"] and a.state()["unseal_requests"] == 0
    assert not b.state()["sealed"]
    r = h.run_cli(["unseal", "--config", str(cfg), "--node", "https://127.0.0.1:1"])
    assert r.returncode == 64, r


def test_unseal_command_when_already_unsealed(sim, config, keyfile):
    sim.unseal_now()
    r = h.run_cli(["unseal", "--config", str(config(sim, key_file=keyfile(sim)))])
    assert r.returncode == 0, r
    assert "active → active" in r.stdout
    assert sim.state()["unseal_requests"] == 0


def test_deliberate_seal_before_our_start_is_unsealed_at_start_up(sim, daemons, config, keyfile):
    cfg = config(sim, key_file=keyfile(sim))
    d = daemons(cfg)
    sim.wait_unsealed()
    d.wait_status("vault active")
    assert d.stop() == 0
    sim.seal()
    d2 = daemons(cfg, name="vk2")
    sim.wait_unsealed(timeout=5)
    d2.wait_entry("unsealed", contains="sealed at start-up")


def test_unseal_after_always_unseals_a_deliberate_seal(sim, daemons, config, keyfile):
    d = daemons(config(sim, key_file=keyfile(sim), unseal={"after": "always"}))
    sim.wait_unsealed()
    d.wait_status("vault active")
    sim.seal()
    sim.wait_unsealed(timeout=3)
    d.wait_entry("unsealed", contains="unseal.after = always")
    assert not d.entries("deliberate_seal")


def test_deliberate_seal_survives_a_reload(sim, daemons, config, keyfile):
    """A reload replaces the transports: that new connection is ours, not a Vault restart."""
    cfg = config(sim, key_file=keyfile(sim))
    d = daemons(cfg)
    sim.wait_unsealed()
    d.wait_status("vault active")
    sim.seal()
    d.wait_entry("deliberate_seal", timeout=3)
    d.signal(signal.SIGHUP)
    d.wait_entry("config_reloaded")
    sim.wait_health_checks(3)  # looks after the reload
    assert sim.state()["sealed"], "the reload unsealed a deliberately sealed Vault"
    assert not d.entries("unsealed", contains="after a restart")


@pytest.mark.parametrize("legacy500", [False, True], ids=["400", "legacy-500"])
def test_wrong_shares_raise_a_critical_entry_and_back_off(sims, daemons, config, tmp_path, foreign_init, legacy500):
    sim = sims("sim", extra=["--legacy-wrong-key-500"] if legacy500 else [])
    keys = h.write_key_json(tmp_path / "other-cluster.json", foreign_init)
    d = daemons(config(sim, key_file=keys))
    entry = d.wait_entry("wrong_key", timeout=5)[0]
    assert entry.level == "critical"
    assert str(keys) in entry.text
    assert "message authentication failed" in entry.text
    d.wait_ready()
    sim.wait_health_checks(5)  # five more looks: a tight loop would show here
    st = sim.state()
    assert st["sealed"]
    assert st["unseal_key_submissions"] == 3, st  # one round, then a long backoff
    assert len(d.entries("wrong_key")) == 1
    report = d.wait_state(lambda s: s["nodes"][0]["hold"] == "wrong unseal key")
    assert report["nodes"][0]["unseal_attempts"].get("wrong_key") == 1
    assert "wrong unseal key" in d.statuses()[-1]


def test_fixed_key_file_is_used_after_a_reload(sim, daemons, config, tmp_path, foreign_init):
    """The wrong-key backoff belongs to the old shares: new shares after SIGHUP are tried now."""
    keys = h.write_key_json(tmp_path / "keys.json", foreign_init)
    d = daemons(config(sim, key_file=keys))
    d.wait_entry("wrong_key")
    h.write_key_json(keys, sim.init_json())  # the operator puts the right shares in place
    d.signal(signal.SIGHUP)
    d.wait_entry("config_reloaded")
    sim.wait_unsealed(timeout=3)


def test_foreign_share_already_in_our_attempt_is_a_duplicate(sim, daemons, config, keyfile):
    """Our first share is slowed down; meanwhile another operator submits share #1, so when
    the daemon sends its share #1 Vault ignores it as a duplicate: the planner must move on to
    share #2 and still finish with exactly one extra submission."""
    sim.fault(kind="latency", ms=1000, paths=["/v1/sys/unseal"], count=1)
    d = daemons(config(sim, key_file=keyfile(sim), unseal={"foreign_progress_grace": "30s"}))
    sim.wait_state(lambda s: s["unseal_requests"] >= 1, timeout=5, what="first share in flight")
    assert sim.foreign_share(index=1)["progress"] == 1
    sim.wait_unsealed(timeout=5)
    st = sim.state()
    assert st["foreign_shares"] == 1
    assert st["unseal_key_submissions"] == 3  # shares 0, 1 (duplicate), 2
    assert st["unseal_requests"] == 3  # no reset needed
    report = d.wait_state(lambda s: s["nodes"][0]["state"] == "active")
    assert report["nodes"][0]["unseal_attempts"] == {"success": 2, "duplicate": 1}
    d.wait_entry("unsealed", contains="with 3 shares")


def test_same_share_twice_in_hex_and_base64_is_not_a_tight_loop(sim, daemons, config, tmp_path):
    """Shares are compared by their bytes: 3 lines but only 2 distinct shares is too few."""
    init = sim.init_json()
    keys = h.write_key_lines(tmp_path / "keys.txt", [
        init["unseal_keys_b64"][0], init["unseal_keys_hex"][0], init["unseal_keys_b64"][1]])
    d = daemons(config(sim, key_file=keys))
    d.wait_ready()
    sim.wait_health_checks(5)
    st = sim.state()
    assert st["sealed"]
    assert st["unseal_key_submissions"] <= 3, f"{st['unseal_key_submissions']} shares submitted over five looks"
    assert d.entries("too_few_shares"), d.stderr()


def test_foreign_progress_is_left_alone_for_the_grace_then_reset(sim, daemons, config, keyfile):
    assert sim.foreign_share()["progress"] == 1
    started = time.time()  # the simulator's log uses the same clock
    d = daemons(config(sim, key_file=keyfile(sim), unseal={"foreign_progress_grace": "2s"}))
    waiting = d.wait_entry("foreign_progress", contains="started elsewhere is at 1/3", timeout=30)[0]
    assert waiting.level == "info"

    entry = d.wait_entry("foreign_reset", timeout=30)[0]
    assert entry.level == "warning"
    sim.wait_unsealed(timeout=30)
    # Left alone for the grace: the daemon's first request to sys/unseal (the reset) came no
    # sooner than the grace after the start. A lower bound, which load cannot break.
    unseal_log = [r for r in sim.requests() if r["path"] == "/v1/sys/unseal"]
    assert unseal_log[0]["time"] - started >= 1.8, unseal_log[0]["time"] - started
    st = sim.state()
    assert st["unseal_key_submissions"] == 3
    assert st["unseal_requests"] == 4  # one reset + three shares
    d.wait_entry("unsealed", contains="sealed at start-up")


def test_foreign_progress_that_keeps_moving_is_given_more_time(sim, daemons, config, keyfile):
    sim.foreign_share(index=4)
    d = daemons(config(sim, key_file=keyfile(sim), unseal={"foreign_progress_grace": "1500ms"}))
    t0 = time.monotonic()
    d.wait_entry("foreign_progress", timeout=3)
    time.sleep(1.0)
    assert sim.foreign_share(index=3)["progress"] == 2  # the other operator carries on
    time.sleep(max(0.0, t0 + 2.2 - time.monotonic()))
    st = sim.state()
    assert st["sealed"] and st["progress"] == 2 and st["unseal_requests"] == 0, st
    assert not d.entries("foreign_reset")
    d.wait_entry("foreign_reset", timeout=4)
    sim.wait_unsealed(timeout=3)


def test_foreign_progress_with_a_long_grace_is_not_touched(sim, daemons, config, keyfile):
    sim.foreign_share()
    d = daemons(config(sim, key_file=keyfile(sim), unseal={"foreign_progress_grace": "1h"}))
    d.wait_ready()
    d.wait_entry(contains="leaving it alone for up to 1h", timeout=30)
    sim.wait_health_checks(4)
    st = sim.state()
    assert st["sealed"] and st["progress"] == 1
    assert st["unseal_requests"] == 0
    assert not d.entries("foreign_reset")
    assert len(d.entries(contains="started elsewhere")) == 1  # once per attempt, not per poll


def test_foreign_progress_with_zero_grace_is_reset_at_once(sim, daemons, config, keyfile):
    sim.foreign_share()
    d = daemons(config(sim, key_file=keyfile(sim), unseal={"foreign_progress_grace": "0s"}))
    sim.wait_unsealed(timeout=3)
    d.wait_entry("foreign_reset")
    assert sim.state()["unseal_key_submissions"] == 3


def test_too_few_shares_in_a_plain_file(sim, daemons, config, tmp_path):
    init = sim.init_json()
    keys = h.write_key_lines(tmp_path / "keys.txt", init["unseal_keys_b64"][:2])
    d = daemons(config(sim, key_file=keys))
    entry = d.wait_entry("too_few_shares", timeout=3)[0]
    assert entry.level == "critical"
    assert "holds 2 unseal key shares" in entry.text and "3" in entry.text
    d.wait_ready()
    sim.wait_health_checks(3)
    assert sim.state()["unseal_requests"] == 0
    assert sim.state()["sealed"]
    report = d.wait_state(lambda s: s["nodes"][0]["state"] == "sealed")
    assert report["nodes"][0]["hold"] == "too few shares (2/3)"
    assert len(d.entries("too_few_shares")) == 1


def test_too_few_shares_in_init_json_is_said_at_start_up(sim, daemons, config, keyfile):
    d = daemons(config(sim, key_file=keyfile(sim, keep=2)))
    d.wait_ready()
    log = d.log()
    ids = [e.message_id for e in log]
    assert MID["too_few_shares"] in ids, d.stderr()
    assert ids.index(MID["too_few_shares"]) < ids.index(MID["started"]), "not reported at start-up"
    first = log[ids.index(MID["too_few_shares"])]
    assert first.level == "critical" and "holds 2 unseal key shares" in first.text
    sim.wait_health_checks(3)
    assert sim.state()["unseal_requests"] == 0


@pytest.mark.parametrize("code, template, mid", [
    (400, "invalid key: {share} is not part of this cluster", "wrong_key"),
    (502, "upstream rejected request body {{\"key\":\"{share}\"}}", "unseal_failed"),
], ids=["wrong-key-echo", "proxy-error-echo"])
def test_a_share_echoed_in_an_error_is_redacted(sim, daemons, config, keyfile, code, template, mid):
    """Vault never echoes keys, but a proxy in between might: the daemon must strip them."""
    share = sim.init_json()["unseal_keys_b64"][0]
    body = json.dumps({"errors": [template.format(share=share)]})
    sim.fault(kind="status", code=code, body=body, paths=["/v1/sys/unseal"], count=1)
    d = daemons(config(sim, key_file=keyfile(sim)))
    entry = d.wait_entry(mid, timeout=3)[0]
    assert "<redacted>" in entry.text, entry.text
    assert share not in d.stderr()
    assert share not in "".join(m for _, m in d.notes())
