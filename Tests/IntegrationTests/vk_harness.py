# SPDX-License-Identifier: Apache-2.0
"""Harness for the vaultkeeper integration tests: the Vault simulator, the daemon under test with
an sd_notify socket, one-shot CLI runs, config/key-file writers, and the session ledger of every
byte the daemon produced (checked for key material at the end of the session).

Everything here drives real processes: the built `vaultkeeper` binary against `vault_sim.py`
over real TLS. No mocks.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SIM_DIR = REPO / "Tests" / "Simulator"
VK_BIN = os.environ.get("VAULTKEEPER_BIN") or str(REPO / ".build" / "debug" / "vaultkeeper")

if str(SIM_DIR) not in sys.path:
    sys.path.insert(0, str(SIM_DIR))

import testca  # noqa: E402  (the project's test PKI)
from sim_process import SimProcess, wait_until  # noqa: E402  (the one simulator launcher and client; the polling wait)

# MESSAGE_IDs (Sources/VaultKeeper/Reporting/MessageID.swift) - the alerting contract.
MID = {
    "started": "49e81896291f47b191a6fe71add851d3",
    "stopping": "4ea8d8b9b0154f9d8949debde1f5a0ec",
    "sealed": "73e6171de4dc4fdb9dc3d43cd1189dd8",
    "unsealed": "7128e551b505414cbe85725495e8fad8",
    "unseal_failed": "7f2fda94236f49128aa0d7bcac60b505",
    "wrong_key": "fa12a65c7df74152bd862a36bab0efba",
    "deliberate_seal": "978f6bbf58354cbb9115621df492a3be",
    "too_few_shares": "f6e97d8e02b448409a07feca005b0282",
    "unreachable": "ea4e16d4e27348e3ba29bf43ecbb0059",
    "protocol_error": "40b50cc0a96e423f9226587364788faf",
    "recovered": "fb258f3c210a42d3b94b33a939b36bcc",
    "state_changed": "5824bcf4280d48f99aabe41b3c8db0b5",
    "auto_unseal": "d7c54e25357d445091756abc702fbb57",
    "foreign_progress": "d2b164477fd046fda8bfc330078aab1e",
    "foreign_reset": "d76b27e92c04427db7ce4ef601c54adb",
    "config_reloaded": "1d5490b5bcfe4a5bb26d67e2746dcbc2",
    "config_rejected": "e976abdc5c5b4c99bfcd535883e26905",
    "snapshot_taken": "84f7f11d5d6845a6acd36e657edb909b",
    "snapshot_failed": "c1e436df243645568fb743beb50043a5",
    "snapshot_verification_failed": "43bf65ff2d7942e49fa392620a5a291a",
    "snapshot_low_space": "372611e705e5402e971933690a69f412",
    "snapshot_uploaded": "c7f37e5d9e604c05abed831af2dd51ea",
    "snapshot_upload_failed": "9d4d572bc21b41f0b8b65d2ad9da6aba",
    "snapshot_retention_deleted": "8beed31d844943a98530726a2f3468c5",
    "snapshots_stale": "5cf60e403f0848569894521364cc516f",
    "snapshot_future_dated": "8194b03a80ce475c828af668249fc04a",
    "snapshot_drill_passed": "fddd9c15a3224033b808525ad28f3ceb",
    "snapshot_drill_failed": "af4a31646dba43a0b69f965e4b8aec2b",
    "certificate_invalid": "d57aa9c709114b13bb26338ed60fe32c",
    "certificate_reloaded": "efd885999ddf4c6097490f5ce5fe9661",
    "certificate_reload_failed": "ad8a7a9a59074b96bc03928ad877d73a",
    "certificate_not_served": "b36ba2238aab40258a8e8b0c67440bf5",
    "certificate_expiring": "c337c52fc42341b5bca73990432090bf",
    "certificate_probe_failed": "0cb4110e53b245fc8f6c63787b814977",
}

EX_USAGE = 64
EX_DATAERR = 65
EX_UNAVAILABLE = 69
EX_NOPERM = 77
EX_CONFIG = 78


# ---------------------------------------------------------------------------
# The session ledger: secrets that must never appear, and everything captured.
# ---------------------------------------------------------------------------

class Ledger:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.secrets: dict[bytes, str] = {}
        self.captures: list[tuple[str, bytes]] = []

    def secret(self, value: Any, label: str) -> None:
        if not value:
            return
        raw = value.encode() if isinstance(value, str) else bytes(value)
        with self.lock:
            self.secrets.setdefault(raw, label)

    def register_init(self, init: dict, label: str) -> None:
        """Every share of an `operator init` output, in every textual form, plus the root token."""
        for kind in ("unseal", "recovery"):
            for i, h in enumerate(init.get(f"{kind}_keys_hex") or []):
                raw = bytes.fromhex(h)
                self.secret(h.lower(), f"{label} {kind} share {i} (hex)")
                self.secret(h.upper(), f"{label} {kind} share {i} (HEX)")
                self.secret(base64.b64encode(raw), f"{label} {kind} share {i} (b64)")
                # Without padding too, and the URL-safe alphabet: any rendering counts as a leak.
                self.secret(base64.b64encode(raw).rstrip(b"="), f"{label} {kind} share {i} (b64, unpadded)")
                self.secret(base64.urlsafe_b64encode(raw).rstrip(b"="), f"{label} {kind} share {i} (b64url)")
            for i, b in enumerate(init.get(f"{kind}_keys_b64") or []):
                self.secret(b, f"{label} {kind} share {i} (b64 as listed)")
        self.secret(init.get("root_token"), f"{label} root token")

    def capture(self, label: str, data: bytes | str | None) -> None:
        if data is None:
            return
        raw = data.encode() if isinstance(data, str) else bytes(data)
        with self.lock:
            self.captures.append((label, raw))

    def leaks(self) -> list[str]:
        found = []
        with self.lock:
            for label, data in self.captures:
                for secret, what in self.secrets.items():
                    if secret in data:
                        found.append(f"{what} found in {label}")
        return found


LEDGER = Ledger()


# ---------------------------------------------------------------------------
# Small utilities
# ---------------------------------------------------------------------------

# The default bound of every wait for an event (an entry, a status, a state, an exit): only a
# ceiling that turns a hang into a failure, never a speed requirement, so generous enough for a
# full parallel run on two busy cores. Per-test deadlines (conftest.py) still bound each test.
WAIT_CEILING = 30.0


@contextlib.contextmanager
def deadline(seconds: int, what: str = "test"):
    """Turns a hang into a failure: SIGALRM after `seconds` raises TimeoutError in the test."""
    def on_alarm(signum, frame):
        raise TimeoutError(f"{what} exceeded {seconds}s")
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def monotonic_usec() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def short_tmpdir(prefix: str) -> str:
    """AF_UNIX paths are limited to 108 bytes; pytest's tmp_path can be longer."""
    return tempfile.mkdtemp(prefix=prefix, dir="/tmp")


# ---------------------------------------------------------------------------
# The Vault simulator
# ---------------------------------------------------------------------------

class Sim(SimProcess):
    """One vault_sim.py process (TLS by default) and its control channel (sim_process.SimProcess),
    with its init answer registered in the session ledger and the waits the daemon's tests use."""

    def __init__(self, workdir: Path, pki: dict, *, extra: Iterable[str] = (), tls: bool = True,
                 cert: str = "server", init: Optional[tuple[int, int]] = (5, 3), name: str = "sim",
                 port: int = 0, same_cluster_as: Optional["Sim"] = None):
        workdir = Path(workdir)
        self.name = name
        self.pki = pki
        self.tls = tls
        if same_cluster_as is not None:
            # Another node of the same cluster: a copy of its seal state (same shares), sealed.
            shutil.copytree(same_cluster_as.state_dir, workdir / "state")
            init = None
        super().__init__(workdir, tls=(pki[cert], pki[f"{cert}-key"]) if tls else None, init=init, extra=extra,
                         port=port, own_session=True)
        if init:
            LEDGER.register_init(self.init_json(), f"simulator {name}")
        self.address = self.url

    def requests(self) -> list[dict]:
        return self.control("GET", "/requests")

    def wait_connection_attempts(self, more: int, timeout: float = 30.0,
                                 invariant: Optional[Callable[[dict], bool]] = None) -> None:
        """Waits until `more` further connections were accepted (the daemon's attempts, also those
        its TLS check then rejects), checking `invariant` on every state seen on the way."""
        def state() -> dict:
            st = self.state()
            assert invariant is None or invariant(st), st
            return st
        target = state()["connections_total"] + more
        wait_until(lambda: state()["connections_total"] >= target, timeout, what=f"{more} more connection attempts")

    def health_checks(self) -> int:
        return sum(1 for r in self.requests() if r["path"] == "/v1/sys/health")

    def wait_health_checks(self, more: int, timeout: float = 30.0) -> None:
        """Waits until `more` further health checks were answered (the simulator logs each): the
        event that stands in for "a few poll intervals later". Each is a look at the node, and
        a chance to do what a test says must not happen; the bound only turns a hang into a
        failure."""
        target = self.health_checks() + more
        wait_until(lambda: self.health_checks() >= target, timeout, what=f"{more} more health checks")

    def fault(self, **spec) -> Any:
        return self.control("POST", "/fault", spec)

    def clear_faults(self) -> Any:
        return self.control("POST", "/fault/clear")

    def seal(self) -> Any:
        return self.control("POST", "/seal")

    def unseal_now(self) -> Any:
        return self.control("POST", "/unseal")

    def restart(self, down_ms: int = 300) -> Any:
        return self.control("POST", "/restart", {"down_ms": down_ms})

    def foreign_share(self, index: Optional[int] = None) -> Any:
        return self.control("POST", "/foreign-share", {} if index is None else {"index": index})

    def wait_state(self, pred: Callable[[dict], bool], timeout: float = WAIT_CEILING, what: str = "simulator state") -> dict:
        return super().wait_state(pred, timeout, what)

    def wait_unsealed(self, timeout: float = WAIT_CEILING) -> dict:
        return self.wait_state(lambda s: not s["sealed"] and s["listening"] and not s["down"], timeout,
                               "simulator unsealed")


# ---------------------------------------------------------------------------
# Config and key files
# ---------------------------------------------------------------------------

def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value))


def render_config(vault: dict, *, health: Optional[dict] = None, unseal: Optional[dict] = None,
                  peers: Iterable[dict] = (), metrics: Optional[dict] = None) -> str:
    out = ["[vault]"] + [f"{k} = {_toml_value(v)}" for k, v in vault.items()]
    for name, table in (("health", health), ("unseal", unseal), ("metrics", metrics)):
        if table is not None:
            out += ["", f"[{name}]"] + [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    for peer in peers:
        out += ["", "[[peer]]"] + [f"{k} = {_toml_value(v)}" for k, v in peer.items()]
    return "\n".join(out) + "\n"


FAST_HEALTH = {"interval": "1s", "fast_interval": "100ms"}


def write_key_json(path: Path, init: dict, *, drop_root_token: bool = False, keep: Optional[int] = None) -> Path:
    data = dict(init)
    if drop_root_token:
        data.pop("root_token", None)
    if keep is not None:
        data["unseal_keys_b64"] = data["unseal_keys_b64"][:keep]
        data["unseal_keys_hex"] = data["unseal_keys_hex"][:keep]
    path.write_text(json.dumps(data, indent=2))
    os.chmod(path, 0o600)
    return path


def write_key_lines(path: Path, keys: Iterable[str]) -> Path:
    path.write_text("# unseal key shares, one per line\n" + "\n".join(keys) + "\n")
    os.chmod(path, 0o600)
    return path


# ---------------------------------------------------------------------------
# Captured process output
# ---------------------------------------------------------------------------

LINE_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (\w+) vaultkeeper: (.*)$")


@dataclass
class LogEntry:
    time: str
    level: str
    text: str  # message plus logfmt metadata

    @property
    def message_id(self) -> Optional[str]:
        m = re.search(r"(?:^| )message_id=([0-9a-f]{32})(?: |$)", self.text)
        return m.group(1) if m else None


def parse_log(text: str) -> list[LogEntry]:
    entries = []
    for line in text.splitlines():
        m = LINE_RE.match(line)
        if m:
            entries.append(LogEntry(m.group(1), m.group(2), m.group(3)))
    return entries


@dataclass
class CliResult:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def __str__(self) -> str:
        return f"{' '.join(self.args)} -> {self.returncode}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"


def run_cli(args: list[str], *, timeout: float = 20, env: Optional[dict] = None,
            preexec: Optional[list[str]] = None) -> CliResult:
    cmd = list(preexec or []) + [VK_BIN] + list(args)
    full_env = dict(os.environ)
    full_env.pop("NOTIFY_SOCKET", None)
    full_env.update(env or {})
    p = subprocess.run(cmd, capture_output=True, timeout=timeout, env=full_env, stdin=subprocess.DEVNULL)
    label = f"`vaultkeeper {' '.join(args)}`"
    LEDGER.capture(f"{label} stdout", p.stdout)
    LEDGER.capture(f"{label} stderr", p.stderr)
    return CliResult(cmd, p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"))


class SocketThread:
    """A socket served on a thread of its own until close(): `handle` gets each connection
    accepted on a listening stream socket, or each datagram read from a datagram socket. The
    socket polls every 100 ms so that close() ends the thread promptly."""

    def __init__(self, sock: socket.socket, handle: Callable[[Any], None], *, datagrams: bool = False) -> None:
        self.sock = sock
        self.sock.settimeout(0.1)
        self._handle = handle
        self._datagrams = datagrams
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stop_flag.is_set():
            try:
                item = self.sock.recv(65536) if self._datagrams else self.sock.accept()[0]
            except socket.timeout:
                continue
            except OSError:
                return
            self._handle(item)

    def close(self) -> None:
        self.stop_flag.set()
        self.thread.join(timeout=2)
        self.sock.close()


def relay(handler: Any, host: str, port: int, path: str, *, body: Optional[bytes], timeout: float,
          rewrite: Callable[[str, str], str] = lambda name, value: value) -> None:
    """Sends the request `handler` (an http.server handler) received to host:port and writes the
    answer back through it: the test proxies' forwarding step. `rewrite(name, value)` may falsify
    a response header on the way."""
    headers = {k: v for k, v in handler.headers.items() if k.lower() not in ("expect", "connection", "proxy-connection")}
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(handler.command, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        handler.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection"):
                handler.send_header(k, rewrite(k, v))
        if resp.getheader("Content-Length") is None:
            handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(data)
    finally:
        conn.close()


def loopback_listener(backlog: int = 16) -> socket.socket:
    """A TCP socket listening on 127.0.0.1 at a port the kernel picks."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(backlog)
    return sock


class NotifySocket:
    """An AF_UNIX datagram socket standing in for systemd's notify socket."""

    def __init__(self) -> None:
        self.dir = short_tmpdir("vkn-")
        self.path = os.path.join(self.dir, "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(self.path)
        self.messages: list[tuple[float, str]] = []
        self.raw: list[bytes] = []
        self.lock = threading.Lock()
        self._server = SocketThread(sock, self._received, datagrams=True)

    def _received(self, data: bytes) -> None:
        with self.lock:
            self.raw.append(data)
            self.messages.append((time.monotonic(), data.decode(errors="replace")))

    def snapshot(self) -> list[tuple[float, str]]:
        with self.lock:
            return list(self.messages)

    def close(self) -> None:
        self._server.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def fields(datagram: str) -> dict[str, str]:
    out = {}
    for line in datagram.split("\n"):
        if "=" in line:
            k, v = line.split("=", 1)
            out[k] = v
    return out


class Daemon:
    """`vaultkeeper run` with a notify socket, captured stderr/stdout and a state file."""

    def __init__(self, workdir: Path, config: Path, *, watchdog_usec: Optional[int] = None,
                 env: Optional[dict] = None, extra_args: Iterable[str] = (), name: str = "vk",
                 journal_stream: bool = False, pass_state_file: bool = True, preexec: Iterable[str] = ()):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config = Path(config)
        self.name = name
        self.state_file = self.workdir / f"{name}-state.json"
        self.notify = NotifySocket()
        full_env = dict(os.environ)
        for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM", "RUNTIME_DIRECTORY",
                  "CREDENTIALS_DIRECTORY", "LISTEN_FDS"):
            full_env.pop(k, None)
        full_env["NOTIFY_SOCKET"] = self.notify.path
        if watchdog_usec is not None:
            full_env["WATCHDOG_USEC"] = str(watchdog_usec)
        full_env.update(env or {})
        self.stderr_path = self.workdir / f"{name}-stderr.log"
        self.stdout_path = self.workdir / f"{name}-stdout.log"
        self._stderr = open(self.stderr_path, "wb")
        self._stdout = open(self.stdout_path, "wb")
        if journal_stream:
            # Pretend stderr is systemd's journal stream (with no native journal socket here).
            st = os.fstat(self._stderr.fileno())
            full_env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        # `preexec` runs first and execs the daemon (same PID), e.g. a private mount namespace.
        self.args = [*preexec, VK_BIN, "run", "--config", str(self.config), *extra_args]
        if pass_state_file:
            self.args += ["--state-file", str(self.state_file)]
        elif env and "RUNTIME_DIRECTORY" in env:
            self.state_file = Path(env["RUNTIME_DIRECTORY"].split(":")[0]) / "state.json"
        self.started = time.monotonic()
        try:
            self.proc = subprocess.Popen(self.args, stdout=self._stdout, stderr=self._stderr, stdin=subprocess.DEVNULL,
                                         env=full_env, start_new_session=True)
        except BaseException:
            self.notify.close()
            self._stderr.close()
            self._stdout.close()
            raise
        self.metrics_dir: Optional[Path] = None
        self.stop_requested = False
        self._closed = False

    # observation -----------------------------------------------------------
    def stderr(self) -> str:
        return self.stderr_path.read_bytes().decode(errors="replace")

    def log(self) -> list[LogEntry]:
        return parse_log(self.stderr())

    def entries(self, mid: Optional[str] = None, level: Optional[str] = None,
                contains: Optional[str] = None) -> list[LogEntry]:
        out = []
        for e in self.log():
            if mid is not None and e.message_id != MID.get(mid, mid):
                continue
            if level is not None and e.level != level:
                continue
            if contains is not None and contains not in e.text:
                continue
            out.append(e)
        return out

    def wait_entry(self, mid: Optional[str] = None, *, level: Optional[str] = None, contains: Optional[str] = None,
                   count: int = 1, timeout: float = WAIT_CEILING) -> list[LogEntry]:
        def check():
            if self.proc.poll() is not None and not self.entries(mid, level, contains):
                raise AssertionError(f"daemon exited ({self.proc.returncode}) before logging {mid or contains}:\n{self.stderr()}")
            found = self.entries(mid, level, contains)
            return found if len(found) >= count else None
        try:
            return wait_until(check, timeout, what=f"log entry {mid or ''} {contains or ''} x{count}")
        except AssertionError as e:
            raise AssertionError(f"{e}\n--- daemon stderr ---\n{self.stderr()}") from None

    def notes(self) -> list[tuple[float, str]]:
        return self.notify.snapshot()

    def wait_note(self, pred: Callable[[dict], bool], *, timeout: float = WAIT_CEILING, after: float = 0.0,
                  what: str = "notification") -> tuple[float, dict]:
        def check():
            for t, d in self.notes():
                if t >= after and pred(fields(d)):
                    return (t, fields(d))
            return None
        try:
            return wait_until(check, timeout, what=what)
        except AssertionError as e:
            notes = "\n".join(f"{t - self.started:7.3f} {d!r}" for t, d in self.notes())
            raise AssertionError(f"{e}\n--- notifications ---\n{notes}\n--- daemon stderr ---\n{self.stderr()}") from None

    def statuses(self) -> list[str]:
        return [fields(d)["STATUS"] for _, d in self.notes() if "STATUS" in fields(d)]

    def wait_status(self, *needles: str, timeout: float = WAIT_CEILING, after: float = 0.0) -> str:
        """The first STATUS= (sent at or after `after`) that contains every needle."""
        return self.wait_note(lambda f: "STATUS" in f and all(n in f["STATUS"] for n in needles),
                              timeout=timeout, after=after, what=f"STATUS containing {needles!r}")[1]["STATUS"]

    def wait_ready(self, timeout: float = WAIT_CEILING) -> float:
        return self.wait_note(lambda f: f.get("READY") == "1", timeout=timeout, what="READY=1")[0]

    def read_state(self) -> Optional[dict]:
        try:
            raw = self.state_file.read_bytes()
        except FileNotFoundError:
            return None
        LEDGER.capture(f"{self.name} state file", raw)
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return None  # cannot happen with an atomic writer; the test using it will fail

    def wait_state(self, pred: Callable[[dict], bool], timeout: float = WAIT_CEILING, what: str = "state file") -> dict:
        def check():
            st = self.read_state()
            return st if st and pred(st) else None
        try:
            return wait_until(check, timeout, interval=0.05, what=what)
        except AssertionError as e:
            raise AssertionError(f"{e}; last: {self.read_state()}\n--- daemon stderr ---\n{self.stderr()}") from None

    def read_metrics(self) -> Optional[str]:
        if self.metrics_dir is None:
            return None
        try:
            raw = (self.metrics_dir / "vaultkeeper.prom").read_bytes()
        except FileNotFoundError:
            return None
        LEDGER.capture(f"{self.name} metrics file", raw)
        return raw.decode()

    # control ---------------------------------------------------------------
    def signal(self, sig: int) -> None:
        if sig in (signal.SIGTERM, signal.SIGINT):
            self.stop_requested = True
        self.proc.send_signal(sig)

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait_exit(self, timeout: float = WAIT_CEILING) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self, timeout: float = WAIT_CEILING) -> int:
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.proc.poll() is None:
            # What the process exposes about itself is captured output too: keys must never
            # be in its argv or environment.
            for what in ("cmdline", "environ"):
                try:
                    LEDGER.capture(f"{self.name} /proc {what}", Path(f"/proc/{self.proc.pid}/{what}").read_bytes())
                except OSError:
                    pass
            # A daemon that already ignored one stop request gets little more patience.
            grace = 0.5 if self.stop_requested else 5
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        time.sleep(0.05)  # let the last datagrams arrive
        self.notify.close()
        self._stderr.close()
        self._stdout.close()
        LEDGER.capture(f"{self.name} stderr", self.stderr_path.read_bytes())
        LEDGER.capture(f"{self.name} stdout", self.stdout_path.read_bytes())
        for raw in self.notify.raw:
            LEDGER.capture(f"{self.name} notify datagram", raw)
        self.read_state()
        self.read_metrics()
        LEDGER.capture(f"{self.name} argv", "\0".join(self.args))


class DaemonPool:
    """The daemons one test started (the `daemons` fixture): `start(config, …)`, then `close()`
    in the finalizer stops each and hands its output to the ledger, also when the test failed."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.started: list[Daemon] = []

    def start(self, config: Path, *, metrics_dir: Optional[Path] = None, name: str = "vk", **kw: Any) -> Daemon:
        d = Daemon(self.workdir, config, name=name, **kw)
        d.metrics_dir = metrics_dir
        self.started.append(d)
        return d

    def close(self) -> None:
        for d in self.started:
            d.close()


def assert_no_key_material_captured() -> None:
    """The session's last check (vk_fixtures.no_secrets_leaked): nothing vaultkeeper produced
    holds a registered secret. That the capture machinery works (a daemon's datagrams, stderr and
    argv, a server's secrets) is test_zz_no_secrets.py's test_a_daemons_output_is_captured."""
    leaks = LEDGER.leaks()
    assert not leaks, "secrets found in vaultkeeper's output:\n" + "\n".join(leaks[:50])
