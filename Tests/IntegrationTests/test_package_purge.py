# SPDX-License-Identifier: Apache-2.0
"""The package's postrm on purge (issue #10, item 8): the state in /var/lib/vaultkeeper goes, the
backups in /var/lib/vaultkeeper/snapshots (the default [snapshot] directory) stay, and the purge
says where they are. The real script runs as dpkg would run it, with /var/lib replaced by an
empty tmpfs in a private mount namespace, so the host is never touched. (The end-to-end suite
checks the same with the real package: Tests/e2e/test_systemd.py.)"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

import vk_harness as h
from vk_fixtures import needs

POSTRM = h.REPO / "packaging" / "debian" / "postrm"
# Only what the script needs: no deb-systemd-helper or systemctl that could touch the host.
TOOLS = ("sh", "find", "rm", "rmdir", "ls", "mkdir", "touch", "cat")

@pytest.fixture(autouse=True)
def _preconditions():
    needs(os.geteuid() == 0 and shutil.which("unshare") is not None, "root and unshare(1) for a private mount namespace")


def _purge(tmp_path: Path, prepare: str) -> tuple[subprocess.CompletedProcess, str]:
    """Runs `postrm purge` after `prepare` (shell) set up /var/lib/vaultkeeper; returns the run
    and what remained under /var/lib (find output)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        (bin_dir / tool).symlink_to(shutil.which(tool))
    script = (f"mount -t tmpfs tmpfs /var/lib && {prepare} && "
              f"PATH={bin_dir} sh {POSTRM} purge; echo \"rc=$?\"; echo ---; cd /var/lib && find . | sort")
    p = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                       capture_output=True, text=True, timeout=60)
    out, _, listing = p.stdout.partition("---\n")
    assert "rc=0" in out, (p.stdout, p.stderr)
    return p, listing


def test_purge_keeps_the_backups_and_says_where(tmp_path):
    prepare = ("mkdir -p /var/lib/vaultkeeper/snapshots /var/lib/vaultkeeper/other && "
               "touch /var/lib/vaultkeeper/snapshot-state.json /var/lib/vaultkeeper/other/x "
               "/var/lib/vaultkeeper/snapshots/vaultkeeper-c-20261207T000000Z-42.snap "
               "/var/lib/vaultkeeper/snapshots/vaultkeeper-c-20261207T010000Z-43.snap.age")
    p, listing = _purge(tmp_path, prepare)
    assert listing.split() == [".", "./vaultkeeper", "./vaultkeeper/snapshots",
                               "./vaultkeeper/snapshots/vaultkeeper-c-20261207T000000Z-42.snap",
                               "./vaultkeeper/snapshots/vaultkeeper-c-20261207T010000Z-43.snap.age"], listing
    assert "the snapshots (backups) in /var/lib/vaultkeeper/snapshots are kept" in p.stderr, p.stderr


def test_purge_without_backups_removes_everything(tmp_path):
    prepare = "mkdir -p /var/lib/vaultkeeper/snapshots && touch /var/lib/vaultkeeper/snapshot-state.json"
    p, listing = _purge(tmp_path, prepare)
    assert listing.split() == ["."], listing
    assert "kept" not in p.stderr, p.stderr
