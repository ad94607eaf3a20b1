# SPDX-License-Identifier: Apache-2.0
"""Real OpenBao as the second target of the simulator's fidelity suite (test_simulator.py).

The server is the official `bao` binary, started by Tests/OpenBaoTests/bao_harness.py (Raft
storage in a temporary directory, a TLS listener on 127.0.0.1 with a certificate from the test
CA). One node serves the whole session: it is initialised once with `bao operator init` (5
shares, threshold 3), given the policies and the AppRole mount the tests use, and put back to
"initialised, sealed, no unseal progress" before every test.

Raft runs with `performance_multiplier = 1` (a real setting of the storage stanza): a single
node then elects itself in about a second instead of the 5-6 s of the default multiplier, which
is what makes one init per session and a real process restart per test affordable.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

HERE = Path(__file__).resolve().parent
for _d in (HERE.parent / "OpenBaoTests", HERE.parent / "IntegrationTests"):
    if str(_d) not in sys.path:
        sys.path.insert(0, str(_d))

import bao_harness as bh  # noqa: E402
import vk_harness as h  # noqa: E402

SHARES, THRESHOLD = 5, 3
APPROLE_ROLE = "vaultkeeper"
APPROLE_POLICIES = ["default", "snapshot"]
# The simulator's built-in policies (vault_sim.POLICY_RULES), written as real ACL policies.
POLICIES = {
    "snapshot": 'path "sys/storage/raft/snapshot" {\n  capabilities = ["read"]\n}\n',
    "snapshot-restore": ('path "sys/storage/raft/snapshot" {\n  capabilities = ["read", "update"]\n}\n'
                         'path "sys/storage/raft/snapshot-force" {\n  capabilities = ["update"]\n}\n'),
}


def bao_binary() -> str:
    return bh.bao_binary()


def new_node(workdir: Path, pki: dict, **kw: Any) -> bh.BaoNode:
    """A BaoNode (not started); bao_harness gives its Raft storage production election timing."""
    return bh.BaoNode(Path(workdir), pki, **kw)


def api(node: bh.BaoNode, method: str, path: str, body: Optional[dict] = None, *, token: Optional[str] = None,
        expect: int = 200) -> Any:
    status, payload = node.request(method, path, body, token=token or node.root_token)
    assert status == expect, (method, path, status, payload)
    return payload


def unseal_and_wait_active(node: bh.BaoNode, init: dict, timeout: float = 60) -> None:
    keys = bh.shares_b64(init)
    threshold = int(init.get("unseal_threshold") or len(keys))
    for k in keys[:threshold]:
        status, body = node.request("PUT", "sys/unseal", {"key": k})
        assert status == 200, (status, body)
    node.wait_unsealed()
    node.wait_active(timeout)


class OpenBaoServer:
    """The session's real OpenBao node and what the fidelity tests need of it."""

    def __init__(self, workdir: Path, pki: dict):
        self.node = new_node(workdir, pki, node_id="node1")
        self.init: dict = {}
        self.init_text = ""
        self.secret_ids = 0

    @property
    def root(self) -> str:
        return self.init["root_token"]

    def start(self) -> "OpenBaoServer":
        self.node.start()
        out = self.node.cli("operator", "init", f"-key-shares={SHARES}", f"-key-threshold={THRESHOLD}",
                            "-format=json")
        self.init_text = out.stdout.decode()
        self.init = json.loads(self.init_text)
        bh.register_init(self.init, "simulator fidelity: bao operator init")
        self.node.root_token = self.root
        unseal_and_wait_active(self.node, self.init)
        for name, text in POLICIES.items():
            api(self.node, "PUT", f"sys/policies/acl/{name}", {"policy": text}, expect=204)
        api(self.node, "POST", "sys/auth/approle", {"type": "approle"}, expect=204)
        self.set_approle(ttl=3600, max_ttl=4 * 3600)
        self.node.seal()
        self.node.wait_sealed()
        return self

    def reset(self) -> None:
        """Before each test: running, initialised, sealed, no unseal progress."""
        if not self.node.running():
            self.node.start()
        st = self.node.seal_status()
        if not st["sealed"]:
            self.node.wait_active(60)          # a standby cannot be sealed: after a restart it elects itself first
            self.node.seal()
            self.node.wait_sealed()
        elif st["progress"]:
            status, body = self.node.request("PUT", "sys/unseal", {"reset": True})
            assert status == 200 and body["progress"] == 0, (status, body)

    def close(self) -> None:
        self.node.close()

    # the same services the simulator offers on its control channel, done the operator's way -----
    def make_token(self, policies: list[str], ttl: int, renewable: bool = True) -> str:
        """A service token (auth/token/create with the root token); exactly `policies`."""
        body = {"policies": list(policies), "ttl": f"{ttl}s", "renewable": renewable,
                "no_default_policy": "default" not in policies}
        token = api(self.node, "POST", "auth/token/create", body)["auth"]["client_token"]
        h.LEDGER.secret(token, "fidelity test token")
        return token

    def set_approle(self, ttl: int, max_ttl: int) -> str:
        """(Re)writes the role; returns its role_id."""
        api(self.node, "POST", f"auth/approle/role/{APPROLE_ROLE}",
            {"token_policies": APPROLE_POLICIES, "token_ttl": ttl, "token_max_ttl": max_ttl, "secret_id_ttl": 0},
            expect=204)
        return api(self.node, "GET", f"auth/approle/role/{APPROLE_ROLE}/role-id")["data"]["role_id"]

    def approle(self, ttl: int, max_ttl: int) -> tuple[str, str]:
        role_id = self.set_approle(ttl, max_ttl)
        secret_id = api(self.node, "POST", f"auth/approle/role/{APPROLE_ROLE}/secret-id")["data"]["secret_id"]
        h.LEDGER.secret(secret_id, "fidelity AppRole secret ID")
        return role_id, secret_id


def foreign_snapshot(workdir: Path, pki: dict) -> bytes:
    """A Raft snapshot of ANOTHER real OpenBao cluster (its own unseal keys), taken by its root."""
    node = new_node(workdir, pki, node_id="foreign")
    try:
        node.start()
        init = node.api_init(1, 1)
        unseal_and_wait_active(node, init)
        status, body = node.request("GET", "sys/storage/raft/snapshot", token=node.root_token, raw=True)
        assert status == 200 and body[:2] == b"\x1f\x8b", (status, body[:200])
        return body
    finally:
        node.close()
