# SPDX-License-Identifier: Apache-2.0
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


@pytest.fixture(scope="session", autouse=True)
def no_secrets_leaked():
    """The session's leak check (test_zz_no_secrets.py describes it): its teardown runs after
    every test of the session, whatever their order or `-k` selection, and scans everything
    captured. A leak fails the session (an error at the teardown of its last test)."""
    yield
    h.assert_no_key_material_captured()


def needs(condition: bool, what: str) -> None:
    """Fails (never skips) a test whose precondition this machine does not meet, saying what is
    missing: a green run must mean the test ran."""
    if not condition:
        pytest.fail(f"this test needs {what}; it never skips (scripts/install-deps.sh installs the tools, "
                    f"and `make test` runs as root)", pytrace=False)


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> dict:
    return h.testca.make_pki(str(tmp_path_factory.mktemp("pki")))


@pytest.fixture
def daemons(tmp_path):
    """daemons(config_path, watchdog_usec=None, env=None, metrics_dir=None, name="vk") -> Daemon"""
    pool = h.DaemonPool(tmp_path / "run")
    yield pool.start
    pool.close()
