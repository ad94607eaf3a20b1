#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The restore drill's goals (issue #12) against one real OpenBao node:

  - a drill of a snapshot holding ~100 MiB of Raft data takes <= 30 s (median of 3 runs of
    `vaultkeeper snapshot drill FILE`, with the time of each stage as the command prints it);
  - the drill's peak memory, the throwaway server included (VmHWM of vaultkeeper and of each
    throwaway `bao server`, and the largest sum of their VmRSS, polled every 20 ms; systemd is not
    PID 1 here, so no transient scope's memory.peak);
  - health checks and watchdog pings stay on time during a scheduled drill of `vaultkeeper run`
    (health checks timed at a TCP relay in front of OpenBao: each check is one TLS record the
    daemon writes on its kept-alive connection; pings are the WATCHDOG=1 datagrams).

Prints a markdown section (goal / measured / met) and writes it to out/bench-drill.md.
Standalone: `python3 scripts/bench_drill.py [--binary PATH] [--mib 100] [--runs 3]`.
scripts/bench.py may call `run(binary, work, pki)` and include the returned markdown.
"""
from __future__ import annotations

import argparse
import base64
import datetime
import http.client
import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for d in ("OpenBaoTests", "IntegrationTests", "Simulator"):
    path = os.path.join(ROOT, "Tests", d)
    if path not in sys.path:
        sys.path.insert(0, path)
import bao_harness as bh  # noqa: E402
import testca  # noqa: E402

DURATION_GOAL_S = 30.0
HEALTH_INTERVAL_S = 1.0
HEALTH_ON_TIME_S = 1.5      # a 1 s interval with jitter, as bench.py's snapshot section counts it
WATCHDOG_USEC = 2_000_000   # pings due every 1 s
WATCHDOG_ON_TIME_S = 1.25
DRILL_PASSED = re.compile(r"^(\S+) \S+ vaultkeeper: restore drill passed: .*?, in ((?:\d+[hms])+)(?: |$)", re.M)


# ----- binaries --------------------------------------------------------------------------------

def supports_helper(binary: str) -> bool:
    """Whether `binary` has the hidden `exec-dying-with-parent` the drill starts its server with
    (a release build older than it would fail every drill at `start`)."""
    try:
        r = subprocess.run([binary, "exec-dying-with-parent", str(os.getpid()), "/bin/echo", "--", "echo", "helper ok"],
                           capture_output=True, timeout=30)
        return r.returncode == 0 and r.stdout == b"helper ok\n"
    except OSError:
        return False


def pick_binary(requested: str | None) -> tuple[str, str]:
    if requested:
        return requested, "as given"
    release = os.path.join(ROOT, ".build", "release", "vaultkeeper")
    debug = os.path.join(ROOT, ".build", "debug", "vaultkeeper")
    if os.path.exists(release) and supports_helper(release):
        return release, "release build"
    if os.path.exists(release):
        return debug, "debug build (the release build predates the drill's server helper)"
    return debug, "debug build (no release build)"


# ----- production data -------------------------------------------------------------------------

def write_kv(node: bh.BaoNode, mib: int, value_kib: int = 256, workers: int = 8) -> int:
    """~`mib` MiB of random KV v2 values (base64 text, `value_kib` KiB each) through the HTTP API,
    `workers` kept-alive connections in parallel. Returns the bytes written."""
    count = mib * 1024 // value_kib
    ctx = ssl.create_default_context(cafile=node.ca_file)
    local = threading.local()

    def put(i: int) -> int:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = http.client.HTTPSConnection("127.0.0.1", node.api_port, context=ctx, timeout=60)
        value = base64.b64encode(os.urandom(value_kib * 768)).decode()
        body = json.dumps({"data": {"v": value}})
        conn.request("POST", f"/v1/secret/data/bench/{i}", body=body,
                     headers={"X-Vault-Token": node.root_token, "Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        if r.status not in (200, 204):
            raise RuntimeError(f"KV write {i}: HTTP {r.status}")
        return len(value)

    with ThreadPoolExecutor(workers) as pool:
        return sum(pool.map(put, range(count)))


# ----- measuring -------------------------------------------------------------------------------

def status_kib(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tasks:
            try:
                with open(f"/proc/{p}/task/{t}/children") as f:
                    kids = [int(x) for x in f.read().split()]
            except OSError:
                kids = []
            found += kids
            todo += kids
    return found


class MemoryPoller:
    """Polls vaultkeeper (`pid`) and its throwaway `bao server`s every 20 ms: the largest VmHWM of
    each, and the largest sum of their VmRSS at one instant."""

    def __init__(self, pid: int, bao: str):
        self.pid, self.bao = pid, os.path.realpath(bao)
        self.vk_hwm = self.server_hwm = self.sum_rss = 0
        self.servers: set[int] = set()
        self.first_server = self.last_server = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.stopping.is_set():
            total = status_kib(self.pid, "VmRSS")
            self.vk_hwm = max(self.vk_hwm, status_kib(self.pid, "VmHWM"))
            for child in descendants(self.pid):
                try:
                    if os.path.realpath(f"/proc/{child}/exe") != self.bao:
                        continue
                except OSError:
                    continue
                now = time.time()
                self.servers.add(child)
                self.first_server = self.first_server or now
                self.last_server = now
                self.server_hwm = max(self.server_hwm, status_kib(child, "VmHWM"))
                total += status_kib(child, "VmRSS")
            self.sum_rss = max(self.sum_rss, total)
            time.sleep(0.02)

    def stop(self):
        self.stopping.set()
        self.thread.join()


class CountingRelay:
    """A TCP relay in front of OpenBao that timestamps each chunk the client sends, per
    connection. The daemon's health check is one TLS record on its kept-alive connection, so the
    busiest connection's timestamps (chunks within 20 ms merged) are its health checks."""

    def __init__(self, target_port: int):
        self.target = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.events: dict[int, list[float]] = {}
        self.lock = threading.Lock()
        self.next_id = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                cid = self.next_id
                self.next_id += 1
                self.events[cid] = []
            threading.Thread(target=self._pump, args=(client, server, cid), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, None), daemon=True).start()

    def _pump(self, src, dst, cid):
        try:
            while True:
                data = src.recv(1 << 16)
                if not data:
                    break
                if cid is not None:
                    now = time.time()
                    with self.lock:
                        events = self.events[cid]
                        if not events or now - events[-1] > 0.02:
                            events.append(now)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def health_times(self) -> list[float]:
        with self.lock:
            return max(self.events.values(), key=len, default=[])[:]

    def close(self):
        self.listener.close()


class NotifyListener:
    """The daemon's NOTIFY_SOCKET, drained continuously (a full queue would block sd_notify)."""

    def __init__(self, path: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, str]] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.stopping.is_set():
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            self.messages.append((time.time(), data.decode(errors="replace")))

    def times(self, assignment: str) -> list[float]:
        return [t for t, m in list(self.messages) if assignment in m.split("\n")]

    def stop(self):
        self.stopping.set()
        self.thread.join()
        self.sock.close()


def max_gap(times: list[float], start: float, end: float) -> float:
    """Longest interval between consecutive events that overlaps [start, end], the last event
    before the window and the first after it included (a stall at either edge counts)."""
    times = sorted(times)
    points = [t for t in times if t < start][-1:] + [t for t in times if start <= t <= end] + [t for t in times if t > end][:1]
    return max((b - a for a, b in zip(points, points[1:])), default=float("inf"))


def seconds(text: str) -> float:
    return sum(int(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in re.findall(r"(\d+)([hms])", text))


def log_time(text: str) -> float:
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp()


# ----- the runs --------------------------------------------------------------------------------

def write_config(path: str, node: bh.BaoNode, pki: dict, keys: str, token: str, snaps: str, *, port: int | None = None,
                 daemon: bool = False) -> str:
    address = f"https://127.0.0.1:{port or node.api_port}"
    text = (f'[vault]\naddress = "{address}"\nca_file = "{pki["ca"]}"\nunit = "bench-none.service"\n'
            f'[health]\ninterval = "{int(HEALTH_INTERVAL_S)}s"\nfast_interval = "250ms"\n'
            f'[unseal]\nkey_file = "{keys}"\n'
            f'[snapshot]\ndirectory = "{snaps}"\ntoken_file = "{token}"\n')
    if daemon:
        text += 'interval = "1h"\nmin_free_space = "1MiB"\nkeep_last = 2\n'
    text += f'[snapshot.drill]\nbinary = "{bh.bao_binary()}"\ntimeout = "10m"\n'
    if daemon:
        text += 'enabled = true\ninterval = "1h"\n'
    with open(path, "w") as f:
        f.write(text)
    return path


def secret_file(path: str, text: str) -> str:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, text.encode())
    os.close(fd)
    return path


def environment(state: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
    env["STATE_DIRECTORY"] = state
    env["PATH"] = f"{os.path.dirname(bh.bao_binary())}:/usr/sbin:/usr/bin:/sbin:/bin"
    return env


def cli_drill(binary: str, cfg: str, snap: str, state: str) -> dict:
    """One `vaultkeeper snapshot drill FILE`, its stdout on a pty (line-buffered, so each stage's
    line is timestamped when printed)."""
    primary, secondary = pty.openpty()
    started = time.time()
    p = subprocess.Popen([binary, "snapshot", "drill", "--config", cfg, snap], env=environment(state),
                         stdout=secondary, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    os.close(secondary)
    memory = MemoryPoller(p.pid, bh.bao_binary())
    lines: list[tuple[float, str]] = []
    buffer = b""
    while True:
        ready, _, _ = select.select([primary], [], [], 1.0)
        if not ready:
            if p.poll() is not None:
                break
            continue
        try:
            chunk = os.read(primary, 4096)
        except OSError:
            break
        if not chunk:
            break
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            lines.append((time.time(), line.decode(errors="replace").rstrip("\r")))
    stderr = p.stderr.read().decode(errors="replace")
    p.wait()
    finished = time.time()
    memory.stop()
    os.close(primary)
    text = "\n".join(line for _, line in lines)
    if p.returncode != 0:
        raise RuntimeError(f"the drill failed (exit {p.returncode}):\n{text}\n{stderr[-3000:]}")
    stages = []
    marks = [(t, line.strip().rstrip("…")) for t, line in lines if line.startswith("  ") and line.endswith("…")]
    for (t, name), (t_next, _) in zip(marks, marks[1:] + [(finished, "")]):
        stages.append((name, t_next - t))
    return {"total": finished - started, "stages": stages, "vk_hwm": memory.vk_hwm, "server_hwm": memory.server_hwm,
            "sum_rss": memory.sum_rss, "servers": len(memory.servers), "output": text}


def scheduled_drill(binary: str, work: str, node: bh.BaoNode, pki: dict, keys: str, token: str) -> dict:
    """`vaultkeeper run` taking a snapshot and drilling it, with health checks every second through
    the counting relay and a watchdog of 2 s (pings due every 1 s)."""
    state = tempfile.mkdtemp(prefix="vkbds-", dir="/tmp")
    snaps = os.path.join(work, "daemon-snaps")
    os.makedirs(snaps)
    relay = CountingRelay(node.api_port)
    cfg = write_config(os.path.join(work, "daemon.toml"), node, pki, keys, token, snaps, port=relay.port, daemon=True)
    notify = NotifyListener(os.path.join(work, "notify.sock"))
    env = environment(state)
    env.update({"NOTIFY_SOCKET": os.path.join(work, "notify.sock"), "WATCHDOG_USEC": str(WATCHDOG_USEC)})
    log_path = os.path.join(work, "daemon.log")
    log = open(log_path, "w")
    p = subprocess.Popen([binary, "run", "--config", cfg, "--state-file", os.path.join(state, "state.json")],
                         stderr=log, stdin=subprocess.DEVNULL, env=env)
    memory = MemoryPoller(p.pid, bh.bao_binary())
    try:
        end = time.monotonic() + 600
        found = None
        while time.monotonic() < end and p.poll() is None:
            with open(log_path) as f:
                found = DRILL_PASSED.search(f.read())
            if found:
                break
            if "restore drill FAILED" in open(log_path).read():
                break
            time.sleep(0.2)
        if not found:
            raise RuntimeError("no passed scheduled drill:\n" + open(log_path).read()[-4000:])
        passed_at = log_time(found.group(1))
        duration = seconds(found.group(2))
        # One more health check and ping after the drill closes the window's last gap.
        after = time.monotonic() + 10
        while time.monotonic() < after and not (
                [t for t in relay.health_times() if t > passed_at] and [t for t in notify.times("WATCHDOG=1") if t > passed_at]):
            time.sleep(0.1)
    finally:
        memory.stop()
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        log.close()
        notify.stop()
        relay.close()
        shutil.rmtree(state, ignore_errors=True)
    start = passed_at - duration
    return {"duration": duration, "health_gap": max_gap(relay.health_times(), start, passed_at),
            "watchdog_gap": max_gap(notify.times("WATCHDOG=1"), start, passed_at),
            "checks": len([t for t in relay.health_times() if start <= t <= passed_at]),
            "vk_hwm": memory.vk_hwm, "server_hwm": memory.server_hwm, "sum_rss": memory.sum_rss}


def run(binary: str, work: str, pki: dict, mib: int = 100, runs: int = 3, note: str = "") -> str:
    """Measures everything and returns the markdown section."""
    node = bh.BaoNode(os.path.join(work, "prod"), pki, node_id="drill-bench")
    try:
        node.start()
        version = node.cli("version").stdout.decode().split("(")[0].strip()
        init = node.operator_init(5, 3)
        node.unseal_with(init)
        node.wait_active()
        node.cli("secrets", "enable", "-path=secret", "kv-v2", token=node.root_token)
        print(f"writing {mib} MiB of KV data ...", file=sys.stderr)
        t0 = time.monotonic()
        written = write_kv(node, mib)
        write_s = time.monotonic() - t0
        snap = os.path.join(work, "prod.snap")
        node.cli("operator", "raft", "snapshot", "save", snap, token=node.root_token)
        keys = secret_file(os.path.join(work, "keys.json"), json.dumps({k: v for k, v in init.items() if k != "root_token"}))
        token = secret_file(os.path.join(work, "token"), node.root_token + "\n")
        snaps = os.path.join(work, "snaps")
        os.makedirs(snaps)
        cfg = write_config(os.path.join(work, "cli.toml"), node, pki, keys, token, snaps)
        state = tempfile.mkdtemp(prefix="vkbd-", dir="/tmp")
        results = []
        try:
            for i in range(runs):
                print(f"drill {i + 1}/{runs} ...", file=sys.stderr)
                results.append(cli_drill(binary, cfg, snap, state))
        finally:
            shutil.rmtree(state, ignore_errors=True)
        print("scheduled drill beside health checks ...", file=sys.stderr)
        daemon = scheduled_drill(binary, work, node, pki, keys, token)
    finally:
        node.close()
    return section(version, binary, note, mib, written, write_s, os.path.getsize(snap), results, daemon)


def section(version, binary, note, mib, written, write_s, snap_bytes, results, daemon) -> str:
    totals = [r["total"] for r in results]
    median = statistics.median(totals)
    vk_peak = max(r["vk_hwm"] for r in results)
    server_peak = max(r["server_hwm"] for r in results)
    sum_peak = max(r["sum_rss"] for r in results)
    stage_names = [name for name, _ in results[0]["stages"]]
    mib_of = lambda kib: f"{kib / 1024:.0f} MiB"  # noqa: E731
    met = lambda ok: "met" if ok else "**not met**"  # noqa: E731
    lines = [
        "## Restore drill (issue #12)", "",
        f"One real OpenBao node ({version}, Raft storage, TLS on loopback) holding {written / 2**20:.0f} MiB of random KV v2 "
        f"values ({mib} MiB asked, written in {write_s:.0f} s); `bao operator raft snapshot save` gave a "
        f"{snap_bytes / 2**20:.0f} MiB snapshot (OpenBao stores values encrypted by its barrier, so gzip gains nothing). "
        f"`vaultkeeper snapshot drill FILE` ({os.path.relpath(binary, ROOT)}, {note}) ran {len(results)} times; "
        f"{os.cpu_count()} CPUs.", "",
        "| goal | measured | |", "|---|---|---|",
        f"| drill of a snapshot of ~100 MiB of Raft data ≤ {DURATION_GOAL_S:.0f} s | median {median:.1f} s "
        f"({', '.join(f'{t:.1f}' for t in totals)} s) | {met(median <= DURATION_GOAL_S)} |",
        f"| drill's peak memory reported (throwaway server included) | vaultkeeper VmHWM {mib_of(vk_peak)}, "
        f"throwaway `bao server` VmHWM {mib_of(server_peak)}, largest sum of both VmRSS {mib_of(sum_peak)} | reported |",
        f"| health checks on time during a scheduled drill (interval {HEALTH_INTERVAL_S:.0f} s, ≤ {HEALTH_ON_TIME_S} s) | "
        f"longest gap {daemon['health_gap']:.2f} s over a {daemon['duration']:.0f} s drill ({daemon['checks']} checks) | "
        f"{met(daemon['health_gap'] <= HEALTH_ON_TIME_S)} |",
        f"| watchdog pings on time during it (due every 1 s, ≤ {WATCHDOG_ON_TIME_S} s) | longest gap {daemon['watchdog_gap']:.2f} s | "
        f"{met(daemon['watchdog_gap'] <= WATCHDOG_ON_TIME_S)} |",
        "",
        "Time per stage (seconds, from the moment the command prints the stage to the next one; the last one ends at exit):", "",
        "| run | " + " | ".join(stage_names) + " | total |",
        "|---|" + "---|" * (len(stage_names) + 1),
    ]
    for i, r in enumerate(results, 1):
        by_name = dict(r["stages"])
        lines.append(f"| {i} | " + " | ".join(f"{by_name.get(n, 0):.2f}" for n in stage_names) + f" | {r['total']:.2f} |")
    lines += [
        "",
        f"The scheduled drill of `vaultkeeper run` (snapshot taken by the daemon, then drilled): vaultkeeper VmHWM "
        f"{mib_of(daemon['vk_hwm'])} over the whole run, throwaway server VmHWM {mib_of(daemon['server_hwm'])}, largest sum "
        f"{mib_of(daemon['sum_rss'])}. Its window is the drill's reported duration (whole seconds, rounded up) before the "
        "`restore drill passed` entry. Health checks are timed at a TCP relay in front of OpenBao (one TLS record per check "
        "on the daemon's kept-alive connection), watchdog pings at the daemon's NOTIFY_SOCKET (`WATCHDOG_USEC=2000000`). "
        "Memory is polled from /proc every 20 ms (VmHWM is the kernel's own peak; the sum of VmRSS is sampled), because "
        "systemd is not PID 1 here and no transient scope's `memory.peak` is available.",
        "",
    ]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", help="vaultkeeper binary (default: .build/release/vaultkeeper if current, else debug)")
    ap.add_argument("--mib", type=int, default=100, help="KV data to write, MiB")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--output", default=os.path.join(ROOT, "out", "bench-drill.md"))
    args = ap.parse_args()
    binary, note = pick_binary(args.binary)
    work = tempfile.mkdtemp(prefix="vkbd-work-", dir="/tmp")
    try:
        pki = testca.make_pki(os.path.join(work, "pki"))
        text = run(binary, work, pki, mib=args.mib, runs=args.runs, note=note)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
