# SPDX-License-Identifier: Apache-2.0
"""`vaultkeeper snapshot restore` under attack (issue #10, item 6): a restore killed mid-send
leaves no decrypted snapshot on disk, and a file swapped on disk after it was verified is not
what gets sent. Real processes throughout: the built binary, the simulator holding the restore
request (fault `hang`) or the AppRole login (fault `latency`), SIGKILL, and rename(2)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

import test_snapshot as ts
import test_snapshot_restore as tr
import vk_harness as h
from vk_fixtures import needs

LOGIN_PATH = "/v1/auth/approle/login"


@pytest.fixture
def cli_procs() -> Iterator[list[subprocess.Popen]]:
    """Background `vaultkeeper` runs; each is killed (if still running) when the test ends."""
    started: list[subprocess.Popen] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        try:
            out, err = p.communicate(timeout=10)
        except (subprocess.TimeoutExpired, ValueError):
            continue
        h.LEDGER.capture(f"background {p.args} stdout", out)
        h.LEDGER.capture(f"background {p.args} stderr", err)


def _start_cli(procs: list[subprocess.Popen], args: list[str]) -> subprocess.Popen:
    env = dict(os.environ)
    env.pop("NOTIFY_SOCKET", None)
    p = subprocess.Popen([h.VK_BIN, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env)
    procs.append(p)
    return p


def _open_files(pid: int) -> list[str]:
    """What the process's descriptors point at (paths; sockets and pipes as the kernel names them)."""
    fd_dir = f"/proc/{pid}/fd"
    targets = []
    for fd in os.listdir(fd_dir):
        try:
            targets.append(os.readlink(f"{fd_dir}/{fd}"))
        except OSError:
            pass  # closed meanwhile
    return targets


def _copies_of(plaintext: bytes, directories: set[Path], original: Path) -> list[str]:
    """Files in `directories` (not descending) whose content is the decrypted snapshot."""
    found = []
    for d in directories:
        for entry in os.scandir(d):
            if entry.is_file(follow_symlinks=False) and Path(entry.path) != original \
                    and entry.stat().st_size == len(plaintext) and Path(entry.path).read_bytes() == plaintext:
                found.append(entry.path)
    return found


def test_a_restore_killed_mid_send_leaves_no_decrypted_snapshot(sims, config, tmp_path, cli_procs):
    needs(shutil.which("age") is not None and shutil.which("age-keygen") is not None, "the age tool (age, age-keygen)")
    import test_snapshot_age as ta
    s, cfg, path, _, _ = tr._setup(sims, config, tmp_path)
    snaps = path.parent
    plaintext = path.read_bytes()
    key = ta.Key(tmp_path, "restore")
    encrypted = tmp_path / (path.name + ".age")
    subprocess.run(["age", "-r", key.recipient, "-o", str(encrypted), str(path)], check=True)
    # Vault takes the request and never answers: the restore is caught in the middle of sending.
    s.fault(kind="hang", paths=[ts.SNAPSHOT_PATH])
    before = s.state()["requests_total"]
    p = _start_cli(cli_procs, ["snapshot", "restore", "--config", str(cfg), str(encrypted), "--confirm-overwrite",
                               "--identity", str(key.path)])
    h.wait_until(lambda: s.state()["requests_total"] > before or p.poll() is not None, timeout=30,
                 what="the restore request to reach Vault")
    assert p.poll() is None, "the restore ended before it was sending"
    # While it sends, the decrypted snapshot has no name anywhere: not in the snapshot directory,
    # and every file it holds open there is already unlinked.
    targets = _open_files(p.pid)
    named_while_sending = [t for t in targets if t.startswith(str(snaps) + "/") and not t.endswith(" (deleted)")]
    listing_while_sending = sorted(os.listdir(snaps))
    directories = {snaps} | {Path(t.removesuffix(" (deleted)")).parent for t in targets if t.startswith("/")
                             and not t.startswith(("/dev/", "/proc/"))}
    directories = {d for d in directories if d.is_dir()}
    copies_while_sending = _copies_of(plaintext, directories, path)
    # A kill gives it no chance to clean up; the kernel frees an unnamed file by itself.
    os.kill(p.pid, signal.SIGKILL)
    assert p.wait(timeout=10) == -signal.SIGKILL
    leftovers = _copies_of(plaintext, directories, path)
    assert not leftovers, f"decrypted snapshot left on disk after the kill: {leftovers}"
    assert ts._listing(snaps) == ([path.name], []), os.listdir(snaps)
    assert not named_while_sending, f"named files held open in {snaps} while sending: {named_while_sending}"
    assert listing_while_sending == [path.name], listing_while_sending
    assert not copies_while_sending, copies_while_sending
    assert s.state()["restores"] == 0


def test_a_file_swapped_after_verification_is_not_what_is_sent(sims, config, pki, tmp_path, cli_procs):
    # Two good snapshots of the same cluster, A and B. The operator restores A; between the
    # verification and the upload (held open by a slow AppRole login) someone renames B over A.
    approle = ts._new_approle()
    s = ts._start(sims, approle=approle)
    s.control("POST", "/approle", {"policies": tr.RESTORE_POLICIES})
    snaps = ts._snap_dir(tmp_path)
    # A request timeout longer than the slow login below.
    cfg = ts._approle_config(config, {"address": s.address, "ca_file": pki["ca"], "timeout": "40s"}, tmp_path, approle, snaps)
    path_a, _, index_a = ts._assert_saved(ts._now(cfg), snaps)
    path_b, _, index_b = ts._assert_saved(ts._now(cfg), snaps)
    assert index_a != index_b
    chosen = tmp_path / "restore-me.snap"
    shutil.copyfile(path_a, chosen)
    other = tmp_path / "other.snap"
    shutil.copyfile(path_b, other)
    s.fault(kind="latency", ms=15000, paths=[LOGIN_PATH], count=1)
    before = s.state()["requests_total"]
    p = _start_cli(cli_procs, ["snapshot", "restore", "--config", str(cfg), str(chosen), "--confirm-overwrite"])
    # The login is asked for only after the file was verified.
    h.wait_until(lambda: s.state()["requests_total"] > before or p.poll() is not None, timeout=30,
                 what="the AppRole login after verification")
    assert p.poll() is None, "the restore ended before it logged in"
    os.rename(other, chosen)
    out, err = p.communicate(timeout=60)
    h.LEDGER.capture("swapped restore stdout", out)
    h.LEDGER.capture("swapped restore stderr", err)
    assert p.returncode == 0, (out, err)
    st = s.state()
    assert st["restores"] == 1, st
    assert st["last_restore"]["index"] == index_a, f"sent the swapped-in file (index {st['last_restore']['index']}), verified index {index_a}"
    assert f"raft index {index_a}".encode() in out, out
