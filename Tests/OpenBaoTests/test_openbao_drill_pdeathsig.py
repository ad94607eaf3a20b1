# SPDX-License-Identifier: Apache-2.0
"""The restore drill's throwaway `bao server` never outlives vaultkeeper (issue #12), not even a
SIGKILLed one: it is started through `vaultkeeper exec-dying-with-parent`, which asks the kernel
(PR_SET_PDEATHSIG) to SIGKILL it when its parent goes, and the next drill removes the directory
the killed one left behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

import bao_harness as bh
import vk_harness as h
from test_openbao_drill import _assert_nothing_left, _config, _drill, _env, _production, _save


@pytest.fixture
def state():
    """The drill's state directory; short, since the server's socket lives under it."""
    path = Path(h.short_tmpdir("vk-pds-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _live_servers(state: Path) -> list[int]:
    """Live (not zombie) processes that exec'd the bao binary with this state directory's drill
    configuration. The helper that precedes the exec shares the command line but not the image."""
    needle = f"{state}/restore-drill/server.hcl".encode()
    binary = os.path.realpath(bh.bao_binary())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle not in (entry / "cmdline").read_bytes():
                continue
            if os.path.realpath(entry / "exe") != binary:
                continue
            # The third field of stat, after the parenthesised command name.
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            found.append(int(entry.name))
        except OSError:
            pass
    return found


def test_sigkill_of_vaultkeeper_kills_the_drill_server(bao, config, keyfile, tmp_path, state):
    node, init = bao
    _production(node, init)
    snap = _save(node, tmp_path / "prod.snap")
    cfg = _config(config, keyfile, tmp_path, node, init)
    env = dict(os.environ)
    env.pop("NOTIFY_SOCKET", None)
    env.update(_env(state))
    p = subprocess.Popen([h.VK_BIN, "snapshot", "drill", "--config", str(cfg), str(snap)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        servers = h.wait_until(lambda: _live_servers(state), 60, what="the drill's bao server running")
        assert all(int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1]) == p.pid
                   for pid in servers), "the server is vaultkeeper's child"
        # No SIGTERM handler, no cleanup: as if it crashed or the OOM killer took it.
        p.send_signal(signal.SIGKILL)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    h.LEDGER.capture("drill stdout", out)
    h.LEDGER.capture("drill stderr", err)
    assert p.returncode == -signal.SIGKILL
    # The kernel kills it; a generous ceiling, not a clock the test relies on.
    h.wait_until(lambda: not _live_servers(state), 60, what="the drill's server gone after vaultkeeper's SIGKILL")
    leftover = state / "restore-drill"
    assert leftover.exists(), "nothing cleaned up after a SIGKILL: the directory is the next drill's job"
    r = _drill(cfg, state, str(snap))
    assert r.returncode == 0, str(r)
    _assert_nothing_left(state)
