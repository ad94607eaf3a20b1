# SPDX-License-Identifier: Apache-2.0
"""Auto-unseal seal types (awskms, transit): monitor only, never submit a share."""

from __future__ import annotations


import pytest

import vk_harness as h


@pytest.fixture
def auto_sim(sims):
    # Recovery shares 5/3; the node unseals itself 2 s after (re)starting.
    return sims("auto", extra=["--seal-type", "awskms", "--auto-unseal-delay", "2"])


@pytest.fixture
def stray_keys(tmp_path, foreign_init):
    """A (misconfigured) Shamir key file next to an auto-unseal Vault."""
    return h.write_key_json(tmp_path / "keys.json", foreign_init)


def test_auto_unseal_is_monitored_never_fed(auto_sim, daemons, config, stray_keys):
    d = daemons(config(auto_sim, key_file=stray_keys))
    entry = d.wait_entry("auto_unseal", timeout=3)[0]
    assert entry.level == "notice"
    assert "awskms" in entry.text and "monitoring only" in entry.text
    assert auto_sim.state()["sealed"]
    auto_sim.wait_unsealed(timeout=4)  # it unseals itself
    d.wait_status("vault active")
    assert auto_sim.state()["unseal_requests"] == 0
    assert len(d.entries("auto_unseal")) == 1
    assert not d.entries("wrong_key") and not d.entries("too_few_shares")


def test_auto_unseal_with_after_always_still_never_submits(auto_sim, daemons, config, stray_keys):
    d = daemons(config(auto_sim, key_file=stray_keys, unseal={"after": "always"}))
    auto_sim.wait_unsealed(timeout=4)
    d.wait_status("vault active")
    auto_sim.seal()  # an operator seal: auto-unseal types stay sealed
    d.wait_status("vault sealed")
    auto_sim.wait_health_checks(3)  # three more looks at the sealed node
    st = auto_sim.state()
    assert st["sealed"] and st["unseal_requests"] == 0, st
