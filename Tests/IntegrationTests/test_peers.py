# SPDX-License-Identifier: Apache-2.0
"""Two nodes of one cluster: [vault] plus a [[peer]], each watched and unsealed on its own."""

from __future__ import annotations



def test_two_nodes_are_unsealed_and_restarted_independently(sims, daemons, config, keyfile):
    a = sims("a")
    b = sims("b", same_cluster_as=a)
    d = daemons(config(a, key_file=keyfile(a), peers=[b]))
    a.wait_unsealed()
    b.wait_unsealed()
    d.wait_ready()
    assert "2/2 nodes ok" in d.wait_status("2/2 nodes ok")
    report = d.wait_state(lambda s: [n["state"] for n in s["nodes"]] == ["active", "active"])
    assert [n["address"] for n in report["nodes"]] == [a.address, b.address]
    assert all(n["unseal_attempts"] == {"success": 3} for n in report["nodes"])

    # Restart only b: only b is unsealed again, a is left alone.
    a_before = a.state()["unseal_requests"]
    b.restart(down_ms=300)
    b.wait_unsealed(timeout=3)
    d.wait_entry("unsealed", contains=f"unsealed vault at {b.address} (sealed after a restart)")
    assert a.state()["unseal_requests"] == a_before
    assert b.state()["unseal_key_submissions"] == 6

    # While a is down, STATUS names the troubled node; then a comes back and is unsealed.
    a.restart(down_ms=800)
    status = d.wait_status("vault unreachable", timeout=3)
    assert "1/2 nodes ok" in status
    a.wait_unsealed(timeout=4)
    d.wait_entry("unsealed", contains=f"unsealed vault at {a.address} (sealed after a restart)")
    d.wait_status("2/2 nodes ok")
    assert b.state()["unseal_key_submissions"] == 6

    # A standby is a healthy node too.
    b.control("POST", "/role", {"role": "standby"})
    d.wait_state(lambda s: s["nodes"][1]["state"] == "standby")
    assert "2/2 nodes ok" in d.statuses()[-1]
    d.wait_entry("state_changed", contains=f"vault at {b.address} is now standby")


def test_peer_of_another_cluster_gets_one_wrong_key_round(sims, daemons, config, keyfile):
    a = sims("a")
    stranger = sims("stranger")
    d = daemons(config(a, key_file=keyfile(a), peers=[stranger]))
    a.wait_unsealed()
    entry = d.wait_entry("wrong_key", timeout=5)[0]
    assert f"vault.addr={stranger.address}" in entry.text
    d.wait_status("vault active", f"1/2 nodes ok ({stranger.address} sealed)")
    stranger.wait_health_checks(3)  # three more looks at the stranger
    assert stranger.state()["unseal_key_submissions"] == 3 and stranger.state()["sealed"]
