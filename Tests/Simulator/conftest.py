"""pytest fixtures for the Vault simulator tests: a session test PKI and a simulator launcher."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from typing import Any, Optional

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import testca  # noqa: E402

VAULT_SIM = os.path.join(HERE, "vault_sim.py")


def _read_port(path: str, proc: subprocess.Popen, deadline: float) -> int:
    while time.monotonic() < deadline:
        if os.path.exists(path):
            with open(path) as f:
                txt = f.read().strip()
            if txt:
                return int(txt)
        if proc.poll() is not None:
            raise RuntimeError(f"vault_sim exited early with {proc.returncode}")
        time.sleep(0.02)
    raise TimeoutError(f"no port file {path}")


class SimProc:
    """One vault_sim.py subprocess (TLS by default) plus helpers for the control channel."""

    def __init__(self, workdir: str, pki: Optional[dict], extra: list[str], tls: bool = True,
                 state_dir: Optional[str] = None, init: Optional[tuple[int, int]] = None,
                 listen: bool = True):
        os.makedirs(workdir, exist_ok=True)
        self.workdir = workdir
        self.pki = pki
        self.tls = tls and pki is not None
        self.state_dir = state_dir or os.path.join(workdir, "state")
        self.init_output = os.path.join(workdir, "init.json")
        self.port_file = os.path.join(workdir, "port")
        self.cport_file = os.path.join(workdir, "cport")
        for p in (self.port_file, self.cport_file):
            if os.path.exists(p):
                os.unlink(p)
        cmd = [sys.executable, VAULT_SIM, "--control-port-file", self.cport_file,
               "--state-dir", self.state_dir, "--init-output", self.init_output]
        if listen:
            cmd += ["--listen", "127.0.0.1:0", "--port-file", self.port_file]
        if self.tls:
            cmd += ["--tls-cert", pki["server"], "--tls-key", pki["server-key"]]
        if init:
            cmd += ["--init-shares", str(init[0]), "--init-threshold", str(init[1])]
        cmd += extra
        self.stderr_path = os.path.join(workdir, f"stderr-{time.monotonic_ns()}.log")
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self._stderr)
        deadline = time.monotonic() + 15
        self.cport = _read_port(self.cport_file, self.proc, deadline)
        self.port = _read_port(self.port_file, self.proc, deadline) if listen else None
        scheme = "https" if self.tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.verify: Any = pki["ca"] if self.tls else False

    # ----- control channel -------------------------------------------------
    def control(self, method: str, path: str, body: Optional[dict] = None) -> Any:
        data = json.dumps(body).encode() if body is not None else (b"{}" if method == "POST" else None)
        req = urllib.request.Request(f"http://127.0.0.1:{self.cport}{path}", data=data, method=method)
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def state(self) -> dict:
        return self.control("GET", "/state")

    def wait_state(self, pred, timeout: float = 5.0) -> dict:
        deadline = time.monotonic() + timeout
        st = self.state()
        while not pred(st):
            if time.monotonic() > deadline:
                raise TimeoutError(f"state never matched: {st}")
            time.sleep(0.02)
            st = self.state()
        return st

    def init_output_json(self) -> dict:
        with open(self.init_output) as f:
            return json.load(f)

    def hvac(self):
        import hvac
        return hvac.Client(url=self.url, verify=self.verify, timeout=5)

    # ----- lifecycle ---------------------------------------------------------
    def stop(self) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()
        with open(self.stderr_path, encoding="utf-8", errors="replace") as f:
            return self.proc.returncode, f.read()


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> dict:
    return testca.make_pki(str(tmp_path_factory.mktemp("pki")))


@pytest.fixture
def sim_factory(tmp_path, pki):
    """sim_factory(extra_args=[], tls=True, init=(5, 3), state_dir=None, name='sim') -> SimProc"""
    started: list[SimProc] = []

    def start(extra: Optional[list[str]] = None, tls: bool = True, init: Optional[tuple[int, int]] = None,
              state_dir: Optional[str] = None, name: str = "sim", listen: bool = True) -> SimProc:
        s = SimProc(str(tmp_path / name), pki, list(extra or []), tls=tls, state_dir=state_dir,
                    init=init, listen=listen)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()
