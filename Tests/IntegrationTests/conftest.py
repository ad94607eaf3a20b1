# SPDX-License-Identifier: Apache-2.0
"""Fixtures for the vaultkeeper integration tests (see vk_harness.py for the pieces).

Every process a test starts (simulators, daemons) is registered with a fixture whose finalizer
stops it, also when the test fails. A per-test alarm turns a hang into a failure.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Optional

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import vk_harness as h  # noqa: E402
from vk_fixtures import daemons, no_secrets_leaked, pki, require_vaultkeeper_binary  # noqa: E402,F401

TEST_TIMEOUT = 60


def pytest_configure(config):
    require_vaultkeeper_binary()


@pytest.fixture(autouse=True)
def _per_test_timeout():
    with h.deadline(TEST_TIMEOUT):
        yield


@pytest.fixture
def sims(tmp_path, pki):
    """sims(name="sim", extra=[...], init=(5, 3), cert="server", tls=True) -> Sim"""
    started: list[h.Sim] = []

    def start(name: str = "sim", **kw: Any) -> h.Sim:
        s = h.Sim(tmp_path / name, pki, name=name, **kw)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


@pytest.fixture
def sim(sims) -> h.Sim:
    """One sealed, initialised (5 shares, threshold 3) simulator over TLS."""
    return sims("sim")


@pytest.fixture
def keyfile(tmp_path):
    """keyfile(sim, name="keys.json", **write_key_json options) -> Path (mode 0600)."""
    def make(s: h.Sim, name: str = "keys.json", **kw: Any) -> Path:
        return h.write_key_json(tmp_path / name, s.init_json(), **kw)
    return make


@pytest.fixture
def config(tmp_path, pki):
    """config(sim_or_vault, key_file=None, health=FAST, unseal={...}, peers=[...], metrics=None, name="vk.toml").

    `sim_or_vault` is a Sim (address + the test CA) or a dict for the [vault] table.
    """
    def make(target: Any, *, key_file: Optional[Path] = None, health: Optional[dict] = None,
             unseal: Optional[dict] = None, peers: Any = (), metrics: Optional[dict] = None,
             name: str = "vk.toml", vault_extra: Optional[dict] = None) -> Path:
        if isinstance(target, h.Sim):
            vault = {"address": target.address}
            if target.tls:
                vault["ca_file"] = pki["ca"]
        else:
            vault = dict(target)
        vault.update(vault_extra or {})
        unseal_table = dict(unseal or {})
        if key_file is not None:
            unseal_table.setdefault("key_file", str(key_file))
        peer_tables = [({"address": p.address} if isinstance(p, h.Sim) else dict(p)) for p in peers]
        text = h.render_config(vault, health=health if health is not None else dict(h.FAST_HEALTH),
                               unseal=unseal_table or None, peers=peer_tables, metrics=metrics)
        path = tmp_path / name
        path.write_text(text)
        return path
    return make


@pytest.fixture(scope="session")
def foreign_init(tmp_path_factory, pki) -> dict:
    """The `operator init` output of ANOTHER cluster (5 shares, threshold 3): valid-looking
    shares that combine to a wrong key for every other simulator."""
    s = h.Sim(tmp_path_factory.mktemp("foreign"), pki, name="foreign", tls=False)
    try:
        return s.init_json()
    finally:
        s.stop()
