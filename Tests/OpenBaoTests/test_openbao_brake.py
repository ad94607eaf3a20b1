# SPDX-License-Identifier: Apache-2.0
"""The emergency brake against a real OpenBao 2.7 node (issue #10, item 3).

An operator seals a node on purpose (`sys/seal`), then the node's process freezes (SIGSTOP) long
enough for vaultkeeper's health checks to time out, then resumes (SIGCONT). The process never
restarted, so the seal is still the operator's: vaultkeeper must keep it. Timeouts say nothing
about a new process; only a refused connection, a connection the server closed, a new main PID,
the override or the node seen unsealed end the hold (docs/operations.md#deliberate-seals).

The same for a `[[peer]]` node, and two positive controls: a real restart after the freeze (also
one whose process is killed while frozen) is still unsealed, and `vaultkeeper unseal` releases
the brake.
"""

from __future__ import annotations

import signal
from contextlib import contextmanager

import bao_harness as bh
import vk_harness as h

# Short request timeout so the freeze shows as timeouts quickly; fast polls so a wrong unseal
# after the resume would happen well inside the observation window.
TIMEOUT = {"timeout": "500ms"}
HEALTH = {"interval": "200ms", "fast_interval": "50ms"}
HOLD = "deliberately sealed"


def _node(state: dict, address: str) -> dict:
    return next(n for n in state["nodes"] if n["address"] == address)


@contextmanager
def _frozen(node: bh.BaoNode):
    """SIGSTOP the real `bao server` process; SIGCONT on the way out, whatever happens."""
    node.proc.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        if node.running():
            node.proc.send_signal(signal.SIGCONT)


def _wait_for_timeouts(d: h.Daemon, node: bh.BaoNode, checks: int = 6) -> None:
    """Until the daemon has seen the frozen node time out, several checks in a row (the state
    file counts them; about 4 s at 500 ms each): the freeze has really been seen as a run of
    timeouts, as in the report (frozen for 6 s)."""
    d.wait_entry("unreachable", contains=f"vault at {node.address} is unreachable: timeout", timeout=20)
    d.wait_state(lambda s: _node(s, node.address)["state"] == "unreachable"
                 and _node(s, node.address)["consecutive_failures"] >= checks
                 and "timeout" in (_node(s, node.address).get("problem") or ""),
                 timeout=30, what=f"{checks} timed-out checks of {node.address}")


def _seal_and_wait_for_the_hold(d: h.Daemon, node: bh.BaoNode) -> None:
    node.seal()  # PUT sys/seal with the root token: the operator's emergency brake
    d.wait_entry("deliberate_seal", contains=f"vault at {node.address} was sealed", timeout=15)
    d.wait_state(lambda s: _node(s, node.address).get("hold") == HOLD, timeout=15)


def _assert_still_held(d: h.Daemon, node: bh.BaoNode, shares_sent: int, *, in_status: bool = True) -> None:
    """The claim: after the resume the node stays sealed, with no share sent, and the daemon
    says it holds. The window covers dozens of polls at the fast interval."""
    d.wait_entry("recovered", contains=f"vault at {node.address} answers again: sealed", timeout=20)
    bh.wait_quiet(5.0, lambda: node.is_unsealed() or node.seal_status()["progress"] != 0)
    report = _node(d.read_state(), node.address)
    assert report.get("hold") == HOLD, report
    assert report["unseal_attempts"] == {"success": shares_sent}, report
    assert not d.entries("unsealed", contains="sealed after a restart"), d.stderr()
    assert len(d.entries("deliberate_seal", contains=node.address)) == 1, d.stderr()
    if in_status:  # STATUS names the hold of the [vault] node; a peer's is in the state file
        assert HOLD in d.statuses()[-1], d.statuses()[-1]


def test_a_deliberate_seal_holds_while_openbao_is_frozen_and_after_it_resumes(bao, daemons, config, keyfile):
    node, init = bao
    d = daemons(config(node, key_file=keyfile(init), health=HEALTH, vault_extra=TIMEOUT))
    node.wait_unsealed(timeout=15)
    d.wait_entry("unsealed", contains="sealed at start-up", timeout=15)
    node.wait_active()
    d.wait_status("vault active", timeout=15)
    _seal_and_wait_for_the_hold(d, node)
    pid = node.pid

    with _frozen(node):
        _wait_for_timeouts(d, node)
    assert node.running() and node.pid == pid  # the same process throughout: never restarted
    _assert_still_held(d, node, shares_sent=3)


def test_a_deliberate_seal_on_a_peer_holds_while_the_peer_is_frozen(baos, daemons, config, keyfile):
    """`[vault]` is another, independent node (unsealed by hand, healthy throughout); the peer is
    the node the daemon unseals, the operator seals, and that freezes."""
    local = baos("local")
    local.unseal_with(local.operator_init(1, 1))
    peer = baos("peer")
    init = peer.operator_init(5, 3)
    d = daemons(config(local, key_file=keyfile(init), peers=[peer], health=HEALTH, vault_extra=TIMEOUT))
    peer.wait_unsealed(timeout=15)
    d.wait_entry("unsealed", contains=f"unsealed vault at {peer.address} (sealed at start-up)", timeout=15)
    peer.wait_active()
    d.wait_state(lambda s: _node(s, peer.address)["state"] == "active", timeout=15)
    _seal_and_wait_for_the_hold(d, peer)
    pid = peer.pid

    with _frozen(peer):
        _wait_for_timeouts(d, peer)
    assert peer.running() and peer.pid == pid
    _assert_still_held(d, peer, shares_sent=3, in_status=False)
    # The [vault] node was never touched.
    assert _node(d.read_state(), local.address)["state"] == "active"
    assert not d.entries("unsealed", contains=local.address)


def test_after_the_brake_a_real_restart_is_still_unsealed(bao, daemons, config, keyfile):
    """Positive controls: a new process is unsealed. First one killed while frozen (it shows
    itself only as connections reset and refused while the node was timing out), then a
    SIGKILL and start of the running process after the brake was put back on."""
    node, init = bao
    d = daemons(config(node, key_file=keyfile(init), health=HEALTH, vault_extra=TIMEOUT))
    node.wait_unsealed(timeout=15)
    node.wait_active()
    d.wait_status("vault active", timeout=15)
    _seal_and_wait_for_the_hold(d, node)

    # Frozen, timing out, then killed (SIGKILL reaches a stopped process) and started again.
    with _frozen(node):
        _wait_for_timeouts(d, node)
        node.stop(signal.SIGKILL)
    # Started only once the daemon has met the closed port: the refusal is what it must see.
    d.wait_state(lambda s: "refused" in (_node(s, node.address).get("problem") or "")
                 or "Couldn't connect" in (_node(s, node.address).get("problem") or ""),
                 timeout=30, what="a refused connection seen by the daemon")
    node.start()
    node.wait_unsealed(timeout=20)
    entry = d.wait_entry("unsealed", contains="sealed after a restart", timeout=20)[0]
    assert "vault.restart_evidence=" in entry.text, entry.text
    d.wait_state(lambda s: _node(s, node.address).get("hold") is None and _node(s, node.address)["state"] == "active",
                 timeout=20)

    # The brake again, then a plain SIGKILL and start of the running process: unsealed too.
    node.wait_active()
    _seal_and_wait_for_the_hold(d, node)
    node.restart(signal.SIGKILL)
    node.wait_unsealed(timeout=20)
    d.wait_entry("unsealed", contains="sealed after a restart", count=2, timeout=20)
    assert len(d.entries("deliberate_seal")) == 2, d.stderr()
    report = d.wait_state(lambda s: _node(s, node.address)["unseal_attempts"].get("success", 0) >= 9)
    assert _node(report, node.address)["unseal_attempts"] == {"success": 9}, report


def test_vaultkeeper_unseal_releases_the_brake_after_the_freeze(bao, daemons, config, keyfile):
    node, init = bao
    cfg = config(node, key_file=keyfile(init), health=HEALTH, vault_extra=TIMEOUT)
    d = daemons(cfg)
    node.wait_unsealed(timeout=15)
    node.wait_active()
    d.wait_status("vault active", timeout=15)
    _seal_and_wait_for_the_hold(d, node)
    with _frozen(node):
        _wait_for_timeouts(d, node)
    d.wait_entry("recovered", contains=f"vault at {node.address} answers again: sealed", timeout=20)
    d.wait_state(lambda s: _node(s, node.address)["state"] == "sealed", timeout=20)
    assert not node.is_unsealed()
    assert _node(d.read_state(), node.address).get("hold") == HOLD

    r = h.run_cli(["unseal", "--config", str(cfg)], timeout=30)
    assert r.returncode == 0, r
    assert f"{node.address}: sealed → " in r.stdout, r
    node.wait_unsealed(timeout=10)
    d.wait_state(lambda s: _node(s, node.address)["state"] in ("active", "standby")
                 and _node(s, node.address).get("hold") is None, timeout=20)
    # Released for good: the next real restart is unsealed by the daemon.
    node.wait_active()
    node.restart(signal.SIGTERM)
    node.wait_unsealed(timeout=20)
    d.wait_entry("unsealed", contains="sealed after a restart", timeout=20)
