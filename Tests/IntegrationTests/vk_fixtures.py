"""pytest hooks and fixtures shared by the layers that run the built binary (the simulator
integration tests and the real-OpenBao layer): each layer's conftest.py imports them."""

from __future__ import annotations

import os

import pytest

import vk_harness as h


def require_vaultkeeper_binary() -> None:
    if not os.access(h.VK_BIN, os.X_OK):
        raise pytest.UsageError(
            f"vaultkeeper binary not found at {h.VK_BIN}: build it (swift build --product vaultkeeper) or set VAULTKEEPER_BIN")


def pytest_collection_modifyitems(session, config, items):
    """The no-secrets check must see everything: run test_zz_no_secrets.py last, whatever order
    the files were given in."""
    items.sort(key=lambda item: item.nodeid.split("::")[0].endswith("test_zz_no_secrets.py"))


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> dict:
    return h.testca.make_pki(str(tmp_path_factory.mktemp("pki")))


@pytest.fixture
def daemons(tmp_path):
    """daemons(config_path, watchdog_usec=None, env=None, metrics_dir=None, name="vk") -> Daemon"""
    pool = h.DaemonPool(tmp_path / "run")
    yield pool.start
    pool.close()
