# SPDX-License-Identifier: Apache-2.0
"""The one launcher and control-channel client of vault_sim.py, shared by the simulator's own
fidelity tests (conftest.py here) and the daemon's integration tests (IntegrationTests/vk_harness.py,
which adds the secret ledger and the waits those tests need on top of it).

It starts the simulator on loopback (TLS when given a certificate), reads the ports it bound from
its port files, and talks to its plain-HTTP control channel. Nothing here sleeps as a
precondition: every wait polls for the event it names and only turns a hang into a failure.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

VAULT_SIM = Path(__file__).resolve().parent / "vault_sim.py"

# How long the simulator may take to bind its ports on a busy machine: a ceiling, not a speed.
START_CEILING = 15.0


def wait_until(pred: Callable[[], Any], timeout: float, interval: float = 0.02, what: str = "condition") -> Any:
    """Returns pred()'s first truthy value; AssertionError naming `what` once `timeout` passed.
    The one polling wait of the Python test layers (vk_harness re-exports it)."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class SimProcess:
    """One vault_sim.py process and its control channel.

    `tls` is a (certificate, key) pair of paths, or None for plain HTTP. `init` asks the simulator
    to initialise itself with (shares, threshold) and write the init answer to `init_output`.
    `listen=False` starts only the control channel (for tests of the listener's absence)."""

    def __init__(self, workdir: Path | str, *, tls: Optional[tuple[str, str]], init: Optional[tuple[int, int]] = None,
                 extra: Iterable[str] = (), port: int = 0, listen: bool = True, state_dir: Optional[Path | str] = None,
                 own_session: bool = False):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.state_dir = Path(state_dir) if state_dir else self.workdir / "state"
        self.init_output = self.workdir / "init.json"
        port_file, cport_file = self.workdir / "port", self.workdir / "cport"
        for p in (port_file, cport_file):
            if p.exists():
                p.unlink()
        cmd = [sys.executable, str(VAULT_SIM), "--control-listen", "127.0.0.1:0", "--control-port-file", str(cport_file),
               "--state-dir", str(self.state_dir), "--init-output", str(self.init_output)]
        if listen:
            cmd += ["--listen", f"127.0.0.1:{port}", "--port-file", str(port_file)]
        if tls:
            cmd += ["--tls-cert", tls[0], "--tls-key", tls[1]]
        if init:
            cmd += ["--init-shares", str(init[0]), "--init-threshold", str(init[1])]
        cmd += list(extra)
        # One log per process: a second simulator in the same directory must not mix into it.
        self.stderr_path = self.workdir / f"sim-stderr-{time.monotonic_ns()}.log"
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self._stderr, start_new_session=own_session)
        try:
            self.cport = self._read_port(cport_file)
            self.port: Optional[int] = self._read_port(port_file) if listen else None
            if init:
                wait_until(lambda: self.init_output.exists() and self.init_output.stat().st_size > 0, START_CEILING,
                           what=str(self.init_output))
        except BaseException:
            self.stop()
            raise
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"

    def _read_port(self, path: Path) -> int:
        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"vault_sim exited early ({self.proc.returncode}): {self.stderr_text()}")
            return path.exists() and path.read_text().strip()
        return int(wait_until(ready, START_CEILING, what=str(path)))

    # control channel -----------------------------------------------------
    def control(self, method: str, path: str, body: Optional[dict] = None) -> Any:
        data = json.dumps(body).encode() if body is not None else (b"{}" if method == "POST" else None)
        req = urllib.request.Request(f"http://127.0.0.1:{self.cport}{path}", data=data, method=method)
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def state(self) -> dict:
        return self.control("GET", "/state")

    def wait_state(self, pred: Callable[[dict], bool], timeout: float, what: str = "simulator state") -> dict:
        last: dict = {}

        def check():
            nonlocal last
            last = self.state()
            return last if pred(last) else None
        try:
            return wait_until(check, timeout, what=what)
        except AssertionError as e:
            raise AssertionError(f"{e}; last state: {last}") from None

    def init_json(self) -> dict:
        return json.loads(self.init_output.read_text())

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    # lifecycle -----------------------------------------------------------
    def stop(self) -> tuple[Optional[int], str]:
        """Ends the process (SIGTERM, then SIGKILL after 10 s); returns its exit code and stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self._stderr.closed:
            self._stderr.close()
        return self.proc.returncode, self.stderr_text()
