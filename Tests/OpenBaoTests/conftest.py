# SPDX-License-Identifier: Apache-2.0
"""Fixtures for the real-OpenBao layer: the built `vaultkeeper` binary against real `bao server`
processes (see bao_harness.py), with the same daemon harness, notify socket and secrets ledger
as the simulator integration tests (Tests/IntegrationTests/vk_harness.py).

A missing `bao` fails the session at once with the reason; nothing here skips.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import pytest

HERE = Path(__file__).resolve().parent
for d in (HERE, HERE.parent / "IntegrationTests"):
    if str(d) not in sys.path:
        sys.path.insert(0, str(d))

import vk_harness as h  # noqa: E402
from vk_fixtures import daemons, no_secrets_leaked, pki, require_vaultkeeper_binary  # noqa: E402,F401
import bao_harness as bh  # noqa: E402

TEST_TIMEOUT = 240


def pytest_configure(config):
    require_vaultkeeper_binary()
    try:
        bh.bao_binary()
    except RuntimeError as e:
        raise pytest.UsageError(str(e))


@pytest.fixture(autouse=True)
def _per_test_timeout():
    with h.deadline(TEST_TIMEOUT):
        yield


@pytest.fixture
def baos(tmp_path, pki):
    """baos(node_id="node1", **BaoNode options) -> a started (not yet initialised) BaoNode."""
    started: list[bh.BaoNode] = []

    def start(node_id: str = "node1", *, run: bool = True, **kw: Any) -> bh.BaoNode:
        n = bh.BaoNode(tmp_path / f"bao-{node_id}", pki, node_id=node_id, **kw)
        started.append(n)
        if run:
            n.start()
        return n

    yield start
    for n in started:
        n.close()


@pytest.fixture
def bao(baos) -> tuple[bh.BaoNode, dict]:
    """One real OpenBao node, initialised by `bao operator init` (5 shares, threshold 3), sealed."""
    node = baos("node1")
    init = node.operator_init(5, 3)
    return node, init


@pytest.fixture(scope="session")
def foreign_bao_init(tmp_path_factory, pki) -> dict:
    """The `operator init` output of ANOTHER real OpenBao cluster (5 shares, threshold 3)."""
    node = bh.BaoNode(tmp_path_factory.mktemp("foreign-bao"), pki, node_id="foreign")
    node.start()
    try:
        return node.operator_init(5, 3)
    finally:
        node.close()


@pytest.fixture
def keyfile(tmp_path):
    """keyfile(init_dict, name="keys.json", drop_root_token=False) -> Path (mode 0600)."""
    def make(init: dict, name: str = "keys.json", **kw: Any) -> Path:
        return h.write_key_json(tmp_path / name, init, **kw)
    return make


@pytest.fixture
def config(tmp_path, pki):
    """config(node, key_file=None, health=FAST, unseal={...}, peers=[nodes], metrics=None, extra="")."""
    def make(node: bh.BaoNode, *, key_file: Optional[Path] = None, health: Optional[dict] = None,
             unseal: Optional[dict] = None, peers: Any = (), metrics: Optional[dict] = None,
             name: str = "vk.toml", vault_extra: Optional[dict] = None, extra: str = "") -> Path:
        vault = {"address": node.address, "ca_file": pki["ca"]}
        vault.update(vault_extra or {})
        unseal_table = dict(unseal or {})
        if key_file is not None:
            unseal_table.setdefault("key_file", str(key_file))
        peer_tables = [({"address": p.address} if isinstance(p, bh.BaoNode) else dict(p)) for p in peers]
        text = h.render_config(vault, health=health if health is not None else dict(h.FAST_HEALTH),
                               unseal=unseal_table or None, peers=peer_tables, metrics=metrics)
        path = tmp_path / name
        path.write_text(text + extra)
        return path
    return make
