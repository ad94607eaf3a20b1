# SPDX-License-Identifier: Apache-2.0
"""The health and unseal duty against one real OpenBao 2.7 node (Raft storage, TLS listener from
the test CA): READY after the first real answer, unseal at start, real process restarts by
SIGTERM and SIGKILL, a deliberate `sys/seal`, another cluster's shares, foreign unseal progress,
the `unseal` override, `check` and `status`."""

from __future__ import annotations

import json
import signal

import pytest

import bao_harness as bh
import vk_harness as h

VERSION = bh.BAO_VERSION


def test_ready_only_after_the_first_real_result_then_unsealed_at_start(bao, daemons, config, keyfile):
    node, init = bao
    assert node.seal_status()["sealed"]
    d = daemons(config(node, key_file=keyfile(init)))
    d.wait_ready(timeout=15)
    ready = [h.fields(m) for _, m in d.notes() if h.fields(m).get("READY") == "1"]
    assert len(ready) == 1, d.notes()
    # READY carries a STATUS made from OpenBao's own answer, never a placeholder.
    assert f"({VERSION})" in ready[0]["STATUS"], ready
    assert "unknown" not in ready[0]["STATUS"], ready
    node.wait_unsealed(timeout=10)
    entry = d.wait_entry("unsealed", contains="sealed at start-up", timeout=10)[0]
    assert "vault.unseal_shares=3" in entry.text, entry.text
    node.wait_active()
    d.wait_status(f"vault active ({VERSION})", timeout=15)
    report = d.wait_state(lambda s: s["nodes"][0]["state"] == "active", timeout=15)
    assert report["nodes"][0]["version"] == VERSION
    assert report["nodes"][0]["unseal_attempts"] == {"success": 3}, report
    # OpenBao's cluster identity is reported as OpenBao gives it.
    assert report["nodes"][0]["cluster_id"] == node.request("GET", "sys/health")[1]["cluster_id"]


def test_fifty_real_restarts_are_each_unsealed_none_missed(bao, daemons, config, keyfile):
    """SIGTERM (OpenBao seals and shuts down cleanly) and SIGKILL (connections simply die),
    alternating: every one of the 50 new processes is unsealed by the daemon."""
    node, init = bao
    d = daemons(config(node, key_file=keyfile(init)))
    node.wait_unsealed(timeout=10)
    d.wait_entry("unsealed", contains="sealed at start-up", timeout=10)
    restarts = 50
    for i in range(1, restarts + 1):
        node.restart(signal.SIGTERM if i % 2 else signal.SIGKILL)
        node.wait_unsealed(timeout=15)
        d.wait_entry("unsealed", contains="sealed after a restart", count=i, timeout=15)
    assert node.starts == restarts + 1
    assert len(d.entries("unsealed", contains="sealed after a restart")) == restarts
    assert not d.entries("deliberate_seal"), d.stderr()
    assert not d.entries("wrong_key"), d.stderr()
    report = d.wait_state(lambda s: s["nodes"][0]["unseal_attempts"].get("success", 0) >= 3 * (restarts + 1))
    # Exactly the threshold each time: nothing sent twice, nothing sent to an unsealed node.
    assert report["nodes"][0]["unseal_attempts"] == {"success": 3 * (restarts + 1)}, report
    assert d.running()


def test_deliberate_seal_is_kept_until_the_override(bao, daemons, config, keyfile, tmp_path):
    node, init = bao
    cfg = config(node, key_file=keyfile(init), health={"interval": "200ms", "fast_interval": "50ms"})
    d = daemons(cfg)
    node.wait_unsealed(timeout=10)
    node.wait_active()
    d.wait_status("vault active", timeout=15)

    node.seal()  # PUT sys/seal with the root token: the operator's emergency brake
    entry = d.wait_entry("deliberate_seal", timeout=10)[0]
    assert entry.level == "critical"
    assert f"vault.addr={node.address}" in entry.text
    d.wait_state(lambda s: s["nodes"][0].get("hold") == "deliberately sealed")
    # 60 polls later it is still sealed, with no share sent: the hold is the claim under test.
    bh.wait_quiet(3.0, node.is_unsealed)
    assert node.seal_status()["progress"] == 0
    assert len(d.entries("deliberate_seal")) == 1
    report = d.read_state()
    assert report["nodes"][0]["unseal_attempts"] == {"success": 3}, report

    r = h.run_cli(["unseal", "--config", str(cfg)], timeout=30)
    assert r.returncode == 0, r
    assert f"{node.address}: sealed → " in r.stdout, r
    node.wait_unsealed(timeout=5)
    d.wait_state(lambda s: s["nodes"][0]["state"] == "active" and s["nodes"][0].get("hold") is None, timeout=15)

    # The brake is released: the next real restart is unsealed again.
    node.restart(signal.SIGKILL)
    node.wait_unsealed(timeout=15)
    d.wait_entry("unsealed", contains="sealed after a restart", timeout=15)


def test_another_clusters_shares_get_openbaos_wrong_key_answer_and_a_backoff(bao, daemons, config, tmp_path,
                                                                             foreign_bao_init):
    node, _ = bao
    keys = h.write_key_json(tmp_path / "other-cluster.json", foreign_bao_init)
    d = daemons(config(node, key_file=keys))
    entry = d.wait_entry("wrong_key", timeout=15)[0]
    assert entry.level == "critical"
    assert str(keys) in entry.text
    # OpenBao's own words for a combined key that does not open the barrier.
    assert "message authentication failed" in entry.text, entry.text
    d.wait_state(lambda s: s["nodes"][0].get("hold") == "wrong unseal key")
    # No hammering: one round of shares, then the (10 min) backoff, however many polls pass.
    bh.wait_quiet(3.0, lambda: len(d.entries("wrong_key")) > 1 or node.seal_status()["progress"] != 0)
    report = d.read_state()
    assert report["nodes"][0]["unseal_attempts"].get("wrong_key") == 1, report
    assert node.seal_status()["sealed"]
    assert "wrong unseal key" in d.statuses()[-1]


def test_foreign_progress_from_bao_operator_unseal_is_left_alone_then_reset(bao, daemons, config, keyfile):
    node, init = bao
    share = bh.shares_b64(init)[4]  # not one of the three the daemon would send first
    out = node.cli("operator", "unseal", "-format=json", share)
    assert json.loads(out.stdout)["progress"] == 1
    d = daemons(config(node, key_file=keyfile(init), unseal={"foreign_progress_grace": "2s"}))
    waiting = d.wait_entry("foreign_progress", contains="started elsewhere is at 1/3", timeout=10)[0]
    assert waiting.level == "info"
    assert node.seal_status()["progress"] == 1  # untouched while the grace runs
    reset = d.wait_entry("foreign_reset", timeout=10)[0]
    assert reset.level == "warning"
    node.wait_unsealed(timeout=10)
    d.wait_entry("unsealed", contains="sealed at start-up", timeout=10)


def test_check_and_status_against_real_openbao(bao, daemons, config, keyfile):
    node, init = bao
    cfg = config(node, key_file=keyfile(init))
    r = h.run_cli(["check", "--config", str(cfg)], timeout=30)
    assert r.returncode == 2, r  # sealed is CRITICAL
    assert "sealed" in r.stdout.lower(), r

    d = daemons(cfg)
    node.wait_unsealed(timeout=10)
    node.wait_active()
    d.wait_state(lambda s: s["nodes"][0]["state"] == "active", timeout=15)
    r = h.run_cli(["check", "--config", str(cfg)], timeout=30)
    assert r.returncode == 0, r
    assert r.stdout.startswith("VAULT OK: active"), r
    assert VERSION in r.stdout, r

    r = h.run_cli(["status", "--state-file", str(d.state_file)])
    assert r.returncode == 0, r
    assert node.address in r.stdout and "active" in r.stdout, r
    r = h.run_cli(["status", "--state-file", str(d.state_file), "--json"])
    assert r.returncode == 0, r
    assert json.loads(r.stdout)["nodes"][0]["state"] == "active"


@pytest.mark.parametrize("form", ["operator-init-json", "raw-sys-init-answer"])
def test_both_key_file_forms_unseal_real_openbao(baos, daemons, config, tmp_path, form):
    """`bao operator init -format=json` output, and the raw `PUT /v1/sys/init` answer (`keys`,
    `keys_base64`) that operators save with curl or a provisioning tool."""
    node = baos("node1")
    init = node.operator_init(3, 2) if form == "operator-init-json" else node.api_init(3, 2)
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps(init, indent=2))
    keys.chmod(0o600)
    d = daemons(config(node, key_file=keys))
    node.wait_unsealed(timeout=10)
    entry = d.wait_entry("unsealed", contains="sealed at start-up", timeout=10)[0]
    assert "vault.unseal_shares=2" in entry.text, entry.text
    # Both forms carry a root token: warned about once, never used.
    assert len(d.entries(level="warning", contains="root token")) == 1, d.stderr()
