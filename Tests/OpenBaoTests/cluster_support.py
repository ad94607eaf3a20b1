# SPDX-License-Identifier: Apache-2.0
"""A real 3-node OpenBao Raft cluster on loopback for the HA tests (test_openbao_ha.py), built on
bao_harness.BaoNode: node1 is initialised and unsealed first, node2 and node3 join it with
`retry_join` blocks and take the same shares once their join has reached it. Every node is the
official `bao` binary with its own Raft directory and TLS listener from the test CA.

Facts this relies on (OpenBao 2.7, measured here): a joined node starts as a non-voter and
autopilot promotes it once it has been healthy for `server_stabilization_time` (10 s by default,
shortened here); only voters count for leader elections, so a failover test must wait for three
voters first. After all nodes restart at once, electing a leader takes up to ~20 s.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Optional

import bao_harness as bh
import vk_harness as h


class BaoCluster:
    """Three `bao server` processes forming one Raft cluster (one set of unseal shares)."""

    def __init__(self, workdir: Path, pki: dict, size: int = 3):
        self.workdir = Path(workdir)
        first = bh.BaoNode(self.workdir / "bao-node1", pki, node_id="node1")
        self.nodes: list[bh.BaoNode] = [first]
        for i in range(2, size + 1):
            self.nodes.append(bh.BaoNode(self.workdir / f"bao-node{i}", pki, node_id=f"node{i}", join=[first]))
        self.init: dict = {}
        self.root_token: Optional[str] = None
        self.approle: Optional[tuple[str, str]] = None

    # forming ---------------------------------------------------------------
    def form(self, timeout: float = 90) -> "BaoCluster":
        first = self.nodes[0]
        first.start()
        self.init = first.operator_init(5, 3)
        self.root_token = self.init["root_token"]
        first.unseal_with(self.init)
        first.wait_active(timeout=60)
        # Autopilot promotes a joined non-voter after it has been stable this long (10 s by
        # default). Dead servers are never cleaned up: a stopped node stays a voter.
        status, body = first.request("POST", "sys/storage/raft/autopilot/configuration",
                                     {"server_stabilization_time": "2s", "cleanup_dead_servers": False},
                                     token=self.root_token)
        assert status in (200, 204), (status, body)
        for n in self.nodes[1:]:
            n.root_token = self.root_token
            n.start()
        for n in self.nodes[1:]:
            n.unseal_with(self.init)  # refused ("not initialized") until its join reached node1
        self.wait_voters(timeout=timeout)
        return self

    def raft_servers(self) -> list[dict]:
        """`bao operator raft list-peers` (the API behind it), asked of any unsealed node."""
        for n in self.nodes:
            if not n.running():
                continue
            try:
                status, body = n.request("GET", "sys/storage/raft/configuration", token=self.root_token, timeout=5)
            except OSError:
                continue
            if status == 200 and body and body.get("data"):
                return body["data"]["config"]["servers"]
        return []

    def wait_voters(self, timeout: float = 90) -> list[dict]:
        """Every node a voter, as `bao operator raft list-peers` shows it."""
        want = {n.node_id for n in self.nodes}

        def all_voters():
            servers = self.raft_servers()
            voters = {s["node_id"] for s in servers if s.get("voter")}
            return servers if voters == want and len(servers) == len(want) else None
        try:
            return h.wait_until(all_voters, timeout, interval=0.5, what="all three nodes Raft voters")
        except AssertionError as e:
            raise AssertionError(f"{e}; list-peers: {self.raft_servers()}\n{self.logs()}") from None

    # observation -----------------------------------------------------------
    def addresses(self) -> list[str]:
        return [n.address for n in self.nodes]

    def active(self) -> list[bh.BaoNode]:
        return [n for n in self.nodes if n.running() and n.is_active()]

    def wait_leader(self, timeout: float = 90, *, among: Optional[list[bh.BaoNode]] = None) -> bh.BaoNode:
        """The one node whose `sys/health` says active (200), waited for."""
        candidates = among if among is not None else self.nodes

        def one():
            found = [n for n in candidates if n.running() and n.is_active()]
            return found[0] if len(found) == 1 else None
        try:
            return h.wait_until(one, timeout, interval=0.2, what="an active node (leader elected)")
        except AssertionError as e:
            raise AssertionError(f"{e}\n{self.logs()}") from None

    def wait_all_unsealed(self, timeout: float = 90) -> None:
        try:
            h.wait_until(lambda: all(n.is_unsealed() for n in self.nodes), timeout, interval=0.05,
                         what="all three nodes unsealed")
        except AssertionError as e:
            states = {n.node_id: n.health()[0] for n in self.nodes}
            raise AssertionError(f"{e}; health codes {states}") from None

    def logs(self, n: int = 1500) -> str:
        return "\n".join(f"--- bao {node.node_id} ---\n{node.log_tail(n)}" for node in self.nodes)

    # process control -------------------------------------------------------
    def stop_all(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        """All processes signalled at once, then each waited for (SIGKILL past `timeout`)."""
        running = [n for n in self.nodes if n.running()]
        for n in running:
            n.proc.send_signal(sig)
        for n in running:
            try:
                n.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                n.proc.kill()
                n.proc.wait()

    def start_all(self) -> None:
        for n in self.nodes:
            n.start(wait=False)
        for n in self.nodes:
            n.wait_listening()

    def restart_all(self, sig: int = signal.SIGTERM) -> None:
        self.stop_all(sig)
        self.start_all()

    def heal(self, timeout: float = 90) -> None:
        """Back to three running, unsealed voters with a leader (after a test, also a failed one):
        the shares are submitted by the test itself here, not by a vaultkeeper."""
        for n in self.nodes:
            if not n.running():
                n.start()
        for n in self.nodes:
            if not n.is_unsealed():
                n.unseal_with(self.init)
        self.wait_leader(timeout=timeout)
        self.wait_voters(timeout=timeout)

    def enable_approle(self, policy_file: Path) -> tuple[str, str]:
        """The snapshot AppRole (once per cluster), set up on the current leader."""
        if self.approle is None:
            leader = self.wait_leader()
            leader.root_token = self.root_token
            self.approle = bh.enable_approle_for_snapshots(leader, policy_file)
            h.LEDGER.secret(self.approle[0], "HA cluster AppRole role ID")
        return self.approle

    def close(self) -> None:
        for n in self.nodes:
            n.close()
