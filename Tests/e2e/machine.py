# SPDX-License-Identifier: Apache-2.0
"""A Debian 12 container booted with systemd-nspawn, driven from the host with nsenter.

The suite starts exactly one `systemd-nspawn` process (recorded in RUN/nspawn.pid), talks to
the container's PID 1 through `nsenter -t PID -a …`, and on teardown powers the container off,
waits for that nspawn process to end (SIGTERM, then SIGKILL to that one PID only if it hangs),
checks that no mount is left under the run directory, and removes it.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from typing import Any, Callable, Iterable

CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class MachineError(RuntimeError):
    pass


class CommandFailed(MachineError):
    def __init__(self, argv, proc):
        super().__init__(f"{' '.join(argv)} → rc={proc.returncode}\nstdout: {proc.stdout[-4000:]}\nstderr: {proc.stderr[-4000:]}")
        self.proc = proc


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.05, what: str = "condition") -> Any:
    end = time.monotonic() + timeout
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() > end:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


class Machine:
    def __init__(self, rootfs_cache: str, run_dir: str, name: str = "vk-e2e"):
        self.cache = rootfs_cache
        self.run_dir = run_dir
        self.root = os.path.join(run_dir, "root")
        self.name = name
        self.nspawn: subprocess.Popen | None = None
        self.pid1: int | None = None
        self.console_path = os.path.join(run_dir, "console.log")

    # ----- lifecycle -------------------------------------------------------------------------
    # systemd-nspawn creates these on first use; removed again if this run created them.
    NSPAWN_RUNTIME_DIRS = ("/run/systemd/nspawn/propagate", "/run/systemd/nspawn/locks", "/run/systemd/nspawn")

    def prepare(self) -> None:
        self._had_nspawn_dirs = {d for d in self.NSPAWN_RUNTIME_DIRS if os.path.exists(d)}
        if os.path.exists(self.run_dir):
            raise MachineError(f"{self.run_dir} exists (another run, or a crashed one: remove it)")
        os.makedirs(self.run_dir)
        subprocess.run(["cp", "-a", "--reflink=auto", self.cache, self.root], check=True)
        with open(os.path.join(self.root, "etc/hostname"), "w") as f:
            f.write(self.name + "\n")
        st = os.stat(self.root)
        # What nspawn leaves behind if it is killed hard: its lock on our root and the
        # propagation directory named after the machine.
        self._nspawn_leftovers = [f"/run/systemd/nspawn/locks/inode-{st.st_dev}:{st.st_ino}",
                                  f"/run/systemd/nspawn/propagate/{self.name}"]

    def boot(self, timeout: float = 60) -> None:
        console = open(self.console_path, "w")
        # --private-network: the container has its own loopback only, so Vault's 127.0.0.1:8200
        # inside can neither clash with nor reach anything on the host.
        # --capability=CAP_IPC_LOCK: nspawn's own seccomp filter allows the mlock() family only
        # to containers that hold it; vaultkeeper locks its key pages (under RLIMIT_MEMLOCK,
        # with an empty capability set of its own), as it can on a real host.
        # --system-call-filter=bpf: nspawn's filter refuses bpf(), which the container's systemd
        # needs to attach a unit's IP firewall; without it IPAddressDeny=/IPAddressAllow= are
        # accepted and not enforced, and the unit's allow-list (and the documented drop-in that
        # widens it, test_notify.py) could not be tested.
        argv = ["systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "--private-network",
                "--capability=CAP_IPC_LOCK", "--system-call-filter=bpf", f"--machine={self.name}", "--console=read-only",
                "-D", self.root, "-b"]
        self.nspawn = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        console.close()
        with open(os.path.join(self.run_dir, "nspawn.pid"), "w") as f:
            f.write(f"{self.nspawn.pid}\n")

        def find_pid1():
            if self.nspawn.poll() is not None:
                raise MachineError(f"systemd-nspawn exited with {self.nspawn.returncode}:\n{self.console()}")
            try:
                children = open(f"/proc/{self.nspawn.pid}/task/{self.nspawn.pid}/children").read().split()
            except OSError:
                return None
            for child in children:
                try:
                    if os.readlink(f"/proc/{child}/exe").endswith("/systemd"):
                        return int(child)
                except OSError:
                    pass
            return None

        self.pid1 = wait_until(find_pid1, timeout, what="the container's systemd (PID 1)")
        state = wait_until(self._system_state, timeout, interval=0.2, what="the container to finish booting")
        if state != "running":
            failed = self.sh("systemctl --failed --no-legend --plain", check=False).stdout
            raise MachineError(f"container booted into state {state!r}; failed units:\n{failed}")

    def _system_state(self):
        proc = self.run(["systemctl", "is-system-running"], check=False, timeout=10)
        state = proc.stdout.strip()
        return state if state in ("running", "degraded", "maintenance") else None

    def console(self) -> str:
        try:
            return open(self.console_path, errors="replace").read()[-6000:]
        except OSError:
            return ""

    def shutdown(self, timeout: float = 30) -> None:
        """Power off and wait for the nspawn process we started; never leaves it running."""
        if self.nspawn is None:
            return
        if self.nspawn.poll() is None and self.pid1:
            self.run(["systemctl", "poweroff", "--no-block"], check=False, timeout=10)
            try:
                self.nspawn.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        if self.nspawn.poll() is None:
            self.nspawn.send_signal(signal.SIGTERM)  # nspawn forwards it as a shutdown request
            try:
                self.nspawn.wait(15)
            except subprocess.TimeoutExpired:
                self.nspawn.kill()
                self.nspawn.wait(10)

    def leftover_mounts(self) -> list[str]:
        real = os.path.realpath(self.run_dir)
        with open("/proc/self/mounts") as f:
            return [line for line in f if f" {real}" in line]

    def cleanup(self) -> None:
        mounts = self.leftover_mounts()
        if mounts:
            raise MachineError("mounts left under the run directory:\n" + "".join(mounts))
        shutil.rmtree(self.run_dir, ignore_errors=True)
        for leftover in getattr(self, "_nspawn_leftovers", []):
            try:
                os.rmdir(leftover) if os.path.isdir(leftover) else os.unlink(leftover)
            except OSError:
                pass
        for d in self.NSPAWN_RUNTIME_DIRS:
            if d not in getattr(self, "_had_nspawn_dirs", set(self.NSPAWN_RUNTIME_DIRS)):
                try:
                    os.rmdir(d)  # only if empty
                except OSError:
                    pass

    # ----- commands --------------------------------------------------------------------------
    def run(self, argv: list[str], check: bool = True, timeout: float = 60, input: str | None = None,
            user: str | None = None) -> subprocess.CompletedProcess:
        """Runs argv inside the container (all namespaces of its PID 1), clean environment."""
        if self.pid1 is None:
            raise MachineError("container not booted")
        prefix = ["nsenter", "-t", str(self.pid1), "-a", "--", "/usr/bin/env", "-i", f"PATH={CONTAINER_PATH}",
                  "LANG=C.UTF-8", "SYSTEMD_COLORS=0", "SYSTEMD_PAGER=", "SYSTEMD_LESS="]
        if user:  # "name" or "name:group"
            name, _, group = user.partition(":")
            prefix += ["setpriv", f"--reuid={name}", f"--regid={group or name}", "--init-groups"]
        proc = subprocess.run(prefix + argv, capture_output=True, text=True, timeout=timeout, input=input)
        if check and proc.returncode != 0:
            raise CommandFailed(argv, proc)
        return proc

    def sh(self, script: str, check: bool = True, timeout: float = 60, user: str | None = None) -> subprocess.CompletedProcess:
        return self.run(["/bin/sh", "-c", script], check=check, timeout=timeout, user=user)

    def write(self, path: str, text: str, mode: int = 0o644, owner: str = "root") -> None:
        """Writes a file inside the container (through the container, so ownership is its own)."""
        self.run(["/bin/sh", "-c", f'umask 077; cat > "$0" && chown {owner}: "$0" && chmod {mode:o} "$0"', path], input=text)

    def read(self, path: str) -> str:
        return self.run(["cat", path]).stdout

    def systemctl(self, *args: str, check: bool = True, timeout: float = 90) -> subprocess.CompletedProcess:
        return self.run(["systemctl", *args], check=check, timeout=timeout)

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.run(["systemctl", "show", unit, "-p", ",".join(props)]).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def cursor(self) -> str:
        out = self.run(["journalctl", "-n0", "--show-cursor", "--quiet"]).stdout
        for line in out.splitlines():
            if line.startswith("-- cursor: "):
                return line[len("-- cursor: "):]
        # Empty journal: no cursor yet.
        return ""

    @staticmethod
    def _cursor_fields(cursor: str) -> dict[str, str]:
        return dict(part.split("=", 1) for part in cursor.split(";") if "=" in part)

    def journal(self, *matches: str, after: str | None = None, extra: Iterable[str] = ()) -> list[dict[str, Any]]:
        """Entries matching all `matches`, optionally only those after the cursor `after`.

        journalctl 252 returns nothing for --after-cursor combined with several field matches,
        so "after" is applied here: same sequence-number space and a higher number (realtime
        as the fallback), with --since narrowing what is read.
        """
        argv = ["journalctl", "-o", "json", "--no-pager", *extra]
        mark = self._cursor_fields(after) if after else None
        if mark:
            argv.append(f"--since=@{int(mark['t'], 16) // 1_000_000 - 1}")
        argv += list(matches)
        out = self.run(argv, timeout=60).stdout
        entries = []
        for line in out.splitlines():
            if not line.strip():
                continue
            entry = json.loads(line)
            if mark:
                here = self._cursor_fields(entry["__CURSOR"])
                if here.get("s") == mark.get("s"):
                    if int(here["i"], 16) <= int(mark["i"], 16):
                        continue
                elif int(entry["__REALTIME_TIMESTAMP"]) <= int(mark["t"], 16):
                    continue
            entries.append(entry)
        return entries

    def wait_journal(self, *matches: str, after: str | None = None, timeout: float = 20,
                     where: Callable[[dict], bool] = lambda e: True, what: str = "journal entry") -> dict[str, Any]:
        def look():
            for entry in self.journal(*matches, after=after):
                if where(entry):
                    return entry
            return None
        return wait_until(look, timeout, interval=0.1, what=f"{what} ({' '.join(matches)})")

    # ----- OpenBao (openbao.service inside the container) ---------------------------------------
    BAO_ENV = ["BAO_ADDR=https://127.0.0.1:8200", "BAO_CACERT=/etc/openbao/tls/ca.pem"]

    def bao(self, *args: str, token: str | None = None, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        """The real `bao` CLI inside the container, as an operator runs it on the Vault host."""
        env = self.BAO_ENV + ([f"BAO_TOKEN={token}"] if token else [])
        return self.run(["env", *env, "bao", *args], check=check, timeout=timeout)

    def bao_status(self) -> dict:
        """`bao status -format=json` (exit 2 means sealed, which is an answer, not an error)."""
        proc = self.bao("status", "-format=json", check=False)
        if proc.returncode not in (0, 2):
            raise CommandFailed(["bao", "status"], proc)
        return json.loads(proc.stdout)
