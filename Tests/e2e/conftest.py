"""Session fixtures for the end-to-end suite: one booted Debian 12 container for all tests.

Preconditions are checked loudly: without root, systemd-nspawn, debootstrap or a built .deb
the suite FAILS (it never skips), because a green run must mean "tested under real systemd".
"""
from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import rootfs  # noqa: E402
from machine import Machine  # noqa: E402

CACHE = os.environ.get("E2E_CACHE", os.path.join(ROOT, ".e2e-cache"))
ARTIFACTS = os.path.join(CACHE, "last-run")


def find_deb() -> str:
    explicit = os.environ.get("VAULTKEEPER_DEB")
    if explicit:
        return explicit
    debs = sorted(glob.glob(os.path.join(ROOT, "out", "vaultkeeper_*.deb")), key=os.path.getmtime)
    if not debs:
        pytest.fail("e2e: no out/vaultkeeper_*.deb: run `make deb` first (make e2e does)", pytrace=False)
    return debs[-1]


def preflight() -> None:
    problems = []
    if os.geteuid() != 0:
        problems.append("must run as root (systemd-nspawn, nsenter)")
    for tool in ("systemd-nspawn", "nsenter", "debootstrap"):
        if shutil.which(tool) is None:
            problems.append(f"{tool} is not installed (apt-get install systemd-container debootstrap util-linux)")
    if not os.path.isdir("/sys/fs/cgroup"):
        problems.append("no /sys/fs/cgroup: systemd cannot boot in a container here")
    if problems:
        pytest.fail("e2e: THIS MACHINE CANNOT RUN THE END-TO-END SUITE:\n  " + "\n  ".join(problems), pytrace=False)


@pytest.fixture(scope="session")
def deb() -> str:
    return find_deb()


@pytest.fixture(scope="session")
def machine(deb):
    preflight()
    base = rootfs.ensure(CACHE)
    run_dir = os.path.join(CACHE, f"run-{os.getpid()}")
    m = Machine(base, run_dir)
    # SIGTERM (e.g. from `timeout`) becomes KeyboardInterrupt, so the teardown below still runs.
    previous = signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        m.prepare()
        stage_files(m, deb)
        try:
            m.boot()
        except Exception as e:
            pytest.fail(f"e2e: THE CONTAINER DID NOT BOOT UNDER systemd-nspawn: {e}\n--- console ---\n{m.console()}", pytrace=False)
        yield m
    finally:
        try:
            save_artifacts(m)
        finally:
            m.shutdown()
            m.cleanup()
            signal.signal(signal.SIGTERM, previous)


def stage_files(m: Machine, deb: str) -> None:
    """Puts what the container needs into its root before boot (the .deb itself is installed
    with apt by a test, so postinst runs under a live systemd)."""
    root = m.root
    os.makedirs(os.path.join(root, "opt/vault-sim"), exist_ok=True)
    for name in ("vault_sim.py", "testca.py"):
        shutil.copy(os.path.join(ROOT, "Tests", "Simulator", name), os.path.join(root, "opt/vault-sim", name))
    shutil.copy(os.path.join(HERE, "files", "vault.service"), os.path.join(root, "etc/systemd/system/vault.service"))
    shutil.copy(deb, os.path.join(root, "root", "vaultkeeper.deb"))
    # Test PKI, made inside by the container's own python (python3-cryptography).
    os.makedirs(os.path.join(root, "etc/vault.d"), exist_ok=True)


def save_artifacts(m: Machine) -> None:
    """Keeps the journal and console of the last run for debugging (git-ignored)."""
    if m.pid1 is None or m.nspawn is None or m.nspawn.poll() is not None:
        return
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    os.makedirs(ARTIFACTS, exist_ok=True)
    try:
        out = m.run(["journalctl", "-o", "short-precise", "--no-pager"], check=False, timeout=30).stdout
        with open(os.path.join(ARTIFACTS, "journal.txt"), "w") as f:
            f.write(out)
        shutil.copy(m.console_path, os.path.join(ARTIFACTS, "console.log"))
    except Exception as e:  # artifacts are a convenience; never mask the real result
        print(f"e2e: could not save artifacts: {e}", file=sys.stderr)
