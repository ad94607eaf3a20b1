# SPDX-License-Identifier: Apache-2.0
"""Key buffers locked in RAM and excluded from core dumps; the process not dumpable; no core
files. Observed from outside through /proc, as an operator (or an attacker) would."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path


import vk_harness as h
from vk_fixtures import needs

NOBODY = 65534


def _vmas(pid: int) -> list[tuple[int, set[str]]]:
    """(size in kB, VmFlags) of every mapping."""
    out, size = [], 0
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        if line.startswith("Size:"):
            size = int(line.split()[1])
        elif line.startswith("VmFlags:"):
            out.append((size, set(line.split()[1:])))
    return out


def _status(pid: int) -> dict[str, str]:
    return dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":\t" in line)


def test_key_memory_is_locked_and_excluded_from_core_dumps(sim, daemons, config, keyfile):
    d = daemons(config(sim, key_file=keyfile(sim)))
    sim.wait_unsealed()
    d.wait_ready()
    pid = d.proc.pid
    # Five shares, each in its own page-aligned buffer: locked (lo) and not dumped (dd).
    secret_kb = sum(size for size, flags in _vmas(pid) if {"lo", "dd"} <= flags)
    assert secret_kb >= 5 * 4, _vmas(pid)
    assert int(_status(pid)["VmLck"].split()[0]) >= 5 * 4
    limits = Path(f"/proc/{pid}/limits").read_text()
    core = next(line for line in limits.splitlines() if line.startswith("Max core file size"))
    assert core.split()[4:6] == ["0", "0"], core
    assert not d.entries(contains="could not lock key memory")


def test_unprivileged_daemon_is_not_dumpable(sim, pki):
    """Run as nobody: /proc/PID of a non-dumpable process belongs to root, so other processes of
    the same user cannot read its memory or attach to it."""
    needs(os.geteuid() == 0, "root (to switch users)")
    work = Path(tempfile.mkdtemp(prefix="vk-hard-", dir="/tmp"))
    proc = None
    try:
        os.chmod(work, 0o755)
        ca = work / "ca.pem"
        shutil.copy(pki["ca"], ca)
        os.chmod(ca, 0o644)
        keys = h.write_key_json(work / "keys.json", sim.init_json())
        os.chown(keys, NOBODY, NOBODY)
        cfg = work / "vk.toml"
        cfg.write_text(h.render_config({"address": sim.address, "ca_file": str(ca)}, health=h.FAST_HEALTH,
                                       unseal={"key_file": str(keys)}))
        os.chmod(cfg, 0o644)
        err = work / "stderr.log"
        with open(err, "wb") as ef:
            proc = subprocess.Popen(
                ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                 h.VK_BIN, "run", "--config", str(cfg), "--state-file", str(work / "state.json")],
                stdout=subprocess.DEVNULL, stderr=ef, stdin=subprocess.DEVNULL, start_new_session=True)
            sim.wait_unsealed(timeout=5)
            status = _status(proc.pid)
            assert status["Uid"].split()[0] == str(NOBODY), status["Uid"]
            assert os.stat(f"/proc/{proc.pid}/status").st_uid == 0, "the daemon is dumpable"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=5) == 0
        h.LEDGER.capture("unprivileged daemon stderr", err.read_bytes())
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)
