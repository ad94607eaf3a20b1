# SPDX-License-Identifier: Apache-2.0
"""Reporting never blocks the unseal path: a notify socket that nobody reads (a service manager
that stopped reading, a stuck stand-in) makes `sd_notify` block. The daemon must go on checking
and unsealing, keep writing its state file, deliver its datagrams in order once the socket is
read again, and stop on SIGTERM without waiting for the socket."""

from __future__ import annotations

import os
import socket

import vk_harness as h


def stuck_notify_socket() -> tuple[socket.socket, str, int]:
    """A bound datagram socket nobody reads, filled until the kernel refuses one more datagram
    (net.unix.max_dgram_qlen): from now on every blocking sender to it waits."""
    directory = h.short_tmpdir("vkstuck-")
    path = os.path.join(directory, "notify")
    stuck = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    stuck.bind(path)
    filler = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    filler.setblocking(False)
    filled = 0
    try:
        while True:
            filler.sendto(b"FILLER=1", path)
            filled += 1
    except BlockingIOError:
        pass
    finally:
        filler.close()
    assert filled > 0
    return stuck, path, filled


def read_datagrams(sock: socket.socket, until, timeout: float) -> list[str]:
    got: list[str] = []
    sock.settimeout(0.2)

    def more():
        try:
            got.append(sock.recv(65536).decode(errors="replace"))
        except socket.timeout:
            pass
        return until(got)

    h.wait_until(more, timeout, interval=0, what="datagrams from the daemon")
    return got


def test_unseals_after_restarts_while_nobody_reads_the_notify_socket(sim, daemons, config, keyfile):
    stuck, path, filled = stuck_notify_socket()
    try:
        d = daemons(config(sim, key_file=keyfile(sim)), env={"NOTIFY_SOCKET": path})
        sim.wait_unsealed(timeout=10)
        d.wait_entry("unsealed", contains="sealed at start-up", timeout=10)
        d.wait_entry("started", timeout=10)
        # Every restart is unsealed although each STATUS the daemon sends waits on the socket.
        for i in range(1, 4):
            sim.restart(down_ms=200)
            sim.wait_unsealed(timeout=15)
            d.wait_entry("unsealed", contains="sealed after a restart", count=i, timeout=15)
        # The state file (`vaultkeeper status`) is written by its own thread, not behind STATUS.
        report = d.wait_state(lambda s: s["nodes"][0]["state"] == "active" and s["nodes"][0]["unseal_attempts"].get("success", 0) >= 12,
                              timeout=15)
        assert report["pid"] == d.proc.pid
        assert not any(m for _, m in d.notes()), "the harness's own notify socket must get nothing here"

        # Once the socket is read again the queued datagrams arrive: READY=1 with a STATUS from a
        # real health result, and STATUS coalesced while blocked (not one per check).
        got = read_datagrams(stuck, lambda g: any("READY=1" in m.split("\n") for m in g[filled:]), timeout=30)
        assert got[:filled] == ["FILLER=1"] * filled
        daemon_sent = got[filled:]
        ready = [m for m in daemon_sent if "READY=1" in m.split("\n")]
        assert len(ready) == 1, daemon_sent
        assert "STATUS=vault" in ready[0], ready
        assert len(daemon_sent) <= 8, f"STATUS should coalesce while blocked, got {len(daemon_sent)}: {daemon_sent}"

        # Block it again: SIGTERM must still end the daemon (STOPPING=1 waits in the queue, the
        # stop does not wait for it past its bound).
        filler = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        filler.setblocking(False)
        try:
            while True:
                filler.sendto(b"FILLER=2", path)
        except BlockingIOError:
            pass
        finally:
            filler.close()
        assert d.stop(timeout=30) == 0
        d.wait_entry("stopping", timeout=5)
    finally:
        stuck.close()
