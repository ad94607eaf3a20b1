# SPDX-License-Identifier: Apache-2.0
"""Real ACME issuance and renewal for the certificate tests: Debian's `pebble` (the Let's Encrypt
ACME test server) and real `certbot` writing its own `live/`/`archive/` layout.

Nothing here imitates either program. pebble runs on loopback ports with its own HTTPS endpoint
certificate from the test CA (Tests/Simulator/testca.py); certbot talks to it with
`REQUESTS_CA_BUNDLE` naming that CA. pebble makes a new root and intermediate on every start:
the root is fetched from its management endpoint (`/roots/0`) and is the only trust anchor the
clients of the issued certificate get, so every verification follows the real chain
leaf → pebble intermediate (sent by the server, from certbot's fullchain.pem) → pebble root.

pebble issues for DNS names only, and certbot 2.x asks for nothing else, so the certificate
names `vault.test`: clients connect to 127.0.0.1 and verify that name (vaultkeeper's
`[vault] server_name`, Python's `server_hostname`, the bao CLI's `BAO_TLS_SERVER_NAME`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import urllib.request
from pathlib import Path
from typing import Optional

import vk_harness as h
import bao_harness as bh

PEBBLE_BIN = "/usr/bin/pebble"
CERTBOT_BIN = "/usr/bin/certbot"


def _require(path: str, package: str) -> str:
    found = path if os.access(path, os.X_OK) else shutil.which(os.path.basename(path))
    if not found:
        raise RuntimeError(f"`{os.path.basename(path)}` is missing: run scripts/install-deps.sh (apt-get install {package})")
    return found


class Pebble:
    """One `pebble` process: ACME directory at `directory`, management interface (roots) at
    `management`, both HTTPS with the test CA's server certificate."""

    def __init__(self, workdir: Path, pki: dict):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.pki = pki
        self.port = bh.stable_port()
        self.mgmt_port = bh.stable_port()
        # certbot --standalone binds http_port (pebble is told so, though with
        # PEBBLE_VA_ALWAYS_VALID it never connects); tls_port is unused but must be set.
        self.http_port = bh.stable_port()
        self.tls_port = bh.stable_port()
        self.directory = f"https://127.0.0.1:{self.port}/dir"
        self.management = f"https://127.0.0.1:{self.mgmt_port}"
        self.config_path = self.workdir / "pebble.json"
        self.config_path.write_text(json.dumps({"pebble": {
            "listenAddress": f"127.0.0.1:{self.port}",
            "managementListenAddress": f"127.0.0.1:{self.mgmt_port}",
            "certificate": pki["server"],
            "privateKey": pki["server-key"],
            "httpPort": self.http_port,
            "tlsPort": self.tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }}, indent=2))
        self.log_path = self.workdir / "pebble.log"
        self.root_path = self.workdir / "pebble-root.pem"
        self.proc: Optional[subprocess.Popen] = None
        self._log = None

    def start(self) -> "Pebble":
        binary = _require(PEBBLE_BIN, "pebble")
        env = dict(os.environ)
        env.update(PEBBLE_VA_ALWAYS_VALID="1",  # no challenge is fetched: loopback only
                   PEBBLE_VA_NOSLEEP="1",       # no random validation delays
                   PEBBLE_WFE_NONCEREJECT="0")  # by default 5 % of good nonces are rejected
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([binary, "-config", str(self.config_path)], stdout=self._log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                     start_new_session=True)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"pebble exited ({self.proc.returncode}):\n{self.log_tail()}")
            try:
                for port in (self.port, self.mgmt_port):
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return True
            except OSError:
                return False
        h.wait_until(up, 30, interval=0.02, what="pebble listening")
        self.root_path.write_bytes(self.fetch("/roots/0"))
        return self

    def fetch(self, path: str) -> bytes:
        """GET from the management interface (over TLS checked against the test CA)."""
        ctx = ssl.create_default_context(cafile=self.pki["ca"])
        with urllib.request.urlopen(self.management + path, context=ctx, timeout=10) as r:
            body = r.read()
        assert body.startswith(b"-----BEGIN CERTIFICATE-----"), body[:200]
        return body

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None


class Certbot:
    """certbot with its config, work and logs directories under `workdir`, issuing from `pebble`
    with the standalone HTTP-01 authenticator on 127.0.0.1."""

    def __init__(self, workdir: Path, pebble: Pebble):
        self.workdir = Path(workdir)
        self.pebble = pebble
        self.config_dir = self.workdir / "config"
        self.dirs = ["--config-dir", str(self.config_dir), "--work-dir", str(self.workdir / "work"),
                     "--logs-dir", str(self.workdir / "logs")]

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
        env["REQUESTS_CA_BUNDLE"] = self.pebble.pki["ca"]  # the CA of pebble's own HTTPS endpoint
        p = subprocess.run([_require(CERTBOT_BIN, "certbot"), *args, *self.dirs, "--non-interactive"],
                           capture_output=True, env=env, stdin=subprocess.DEVNULL, timeout=timeout)
        if p.returncode != 0:
            log = self.workdir / "logs" / "letsencrypt.log"
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise AssertionError(f"certbot {' '.join(args)} -> {p.returncode}\nstdout:\n{p.stdout.decode(errors='replace')}\n"
                                 f"stderr:\n{p.stderr.decode(errors='replace')}\n--- letsencrypt.log ---\n{tail}\n"
                                 f"--- pebble ---\n{self.pebble.log_tail()}")
        return p

    def certonly(self, name: str, key_type: str = "ecdsa") -> "Lineage":
        """A first certificate for `name`. key_type: "ecdsa" (certbot's default, P-256),
        "ecdsa-secp384r1", or "rsa" (2048 bits); a renewal keeps the lineage's type."""
        kind, _, curve = key_type.partition("-")
        key_args = ["--key-type", kind] + (["--elliptic-curve", curve] if curve else [])
        self.run("certonly", "--standalone", "--http-01-address", "127.0.0.1",
                 "--http-01-port", str(self.pebble.http_port), "--server", self.pebble.directory,
                 "--register-unsafely-without-email", "--agree-tos", *key_args, "-d", name)
        lineage = Lineage(self.config_dir, name)
        lineage.register_keys()
        return lineage

    def renew(self, lineage: "Lineage") -> None:
        """`certbot renew --force-renewal` for this lineage. `--no-random-sleep-on-renew`: without
        a terminal certbot otherwise sleeps up to 8 minutes first."""
        before = lineage.version()
        self.run("renew", "--force-renewal", "--no-random-sleep-on-renew", "--cert-name", lineage.name)
        assert lineage.version() == before + 1, (before, lineage.version())
        lineage.register_keys()


class Lineage:
    """certbot's files for one certificate name: live/NAME/*.pem symlinks into archive/NAME/*N.pem."""

    def __init__(self, config_dir: Path, name: str):
        self.name = name
        self.live = config_dir / "live" / name
        self.archive = config_dir / "archive" / name

    @property
    def fullchain(self) -> str:
        return str(self.live / "fullchain.pem")

    @property
    def privkey(self) -> str:
        return str(self.live / "privkey.pem")

    def version(self) -> int:
        target = os.readlink(self.live / "cert.pem")  # ../../archive/NAME/certN.pem
        return int(os.path.basename(target)[len("cert"):-len(".pem")])

    def cert_pem(self, version: Optional[int] = None) -> bytes:
        path = self.live / "cert.pem" if version is None else self.archive / f"cert{version}.pem"
        return path.read_bytes()

    def leaf_sha256(self, version: Optional[int] = None) -> str:
        return sha256_hex(ssl.PEM_cert_to_DER_cert(self.cert_pem(version).decode()))

    def link(self, kind: str, target: str) -> None:
        """Re-points live/NAME/KIND.pem at archive/NAME/TARGET the way certbot does it: a new
        relative symlink renamed over the old one."""
        tmp = self.live / f"{kind}.pem.new"
        if tmp.is_symlink():
            tmp.unlink()
        os.symlink(f"../../archive/{self.name}/{target}", tmp)
        os.replace(tmp, self.live / f"{kind}.pem")

    def register_keys(self) -> None:
        """Every base64 line of every private key certbot made is a secret for
        test_zz_no_secrets.py: none may appear in anything vaultkeeper prints."""
        for path in sorted(self.archive.glob("privkey*.pem")):
            for i, line in enumerate(path.read_text().splitlines()):
                if line and not line.startswith("-----"):
                    h.LEDGER.secret(line, f"certbot {self.name} {path.name} line {i}")


def sha256_hex(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def served_leaf(port: int, ca_file: str, server_name: str, timeout: float = 5) -> bytes:
    """The DER leaf served on a fresh TLS handshake with 127.0.0.1:port, verified against
    `ca_file` for `server_name` (a handshake that does not verify raises)."""
    ctx = ssl.create_default_context(cafile=ca_file)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        with ctx.wrap_socket(raw, server_hostname=server_name) as tls:
            return tls.getpeercert(binary_form=True)


def served_sha256(port: int, ca_file: str, server_name: str) -> str:
    return sha256_hex(served_leaf(port, ca_file, server_name))


def bao_cli(node, *args: str, server_name: str, ca_file: str, token: Optional[str] = None,
            check: bool = True) -> subprocess.CompletedProcess:
    """The bao CLI against `node` at 127.0.0.1, verifying `server_name` in its certificate
    (BaoNode.cli verifies the address's host, which a certificate for a DNS name cannot cover)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    env.update(BAO_ADDR=node.address, BAO_CACERT=ca_file, BAO_TLS_SERVER_NAME=server_name)
    if token:
        env["BAO_TOKEN"] = token
    p = subprocess.run([bh.bao_binary(), *args], env=env, capture_output=True, timeout=60)
    if check and p.returncode != 0:
        raise AssertionError(f"bao {' '.join(args)} -> {p.returncode}: {p.stderr.decode(errors='replace')}")
    return p


def operator_init(node, *, server_name: str, ca_file: str, shares: int = 5, threshold: int = 3) -> dict:
    """`bao operator init -format=json` over the certbot certificate; registered with the ledger."""
    out = bao_cli(node, "operator", "init", f"-key-shares={shares}", f"-key-threshold={threshold}", "-format=json",
                  server_name=server_name, ca_file=ca_file)
    init = json.loads(out.stdout)
    bh.register_init(init, f"bao {node.node_id} init (certbot certificate)")
    node.root_token = init["root_token"]
    return init


def seal_status(node, *, server_name: str, ca_file: str) -> dict:
    p = bao_cli(node, "status", "-format=json", server_name=server_name, ca_file=ca_file, check=False)
    assert p.returncode in (0, 2), p  # 2: sealed
    return json.loads(p.stdout)
