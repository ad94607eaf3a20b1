#!/usr/bin/env python3
"""make bench: measures vaultkeeper's goals from issue #2 side by side in one run and writes
docs/benchmarks.md. Goals, not test assertions: the report says met / not met.

  1. simulated Vault restart (listener back, sealed) -> unsealed: p50/p95 over 20 runs
  2. CPU per health check vs the seed-style shell check (curl + 3x jq)
  3. RSS at steady state and after 100k fast checks (release build)
  4. exec -> READY=1 with Vault answering
"""
import argparse, datetime, json, os, platform, re, shutil, signal, socket, statistics, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIM = os.path.join(ROOT, "Tests", "Simulator", "vault_sim.py")
sys.path.insert(0, os.path.join(ROOT, "Tests", "Simulator"))
import testca  # noqa: E402


def wait_file(path, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        if os.path.exists(path) and os.path.getsize(path) > 0:
            return open(path).read().strip()
        time.sleep(0.02)
    raise RuntimeError(f"timed out waiting for {path}")


class Simulator:
    def __init__(self, work, pki, name="vault"):
        self.dir = os.path.join(work, name)
        os.makedirs(self.dir)
        self.log = open(os.path.join(self.dir, "sim.log"), "w")
        self.proc = subprocess.Popen(
            [sys.executable, SIM, "--listen", "127.0.0.1:0", "--port-file", f"{self.dir}/port",
             "--control-listen", "127.0.0.1:0", "--control-port-file", f"{self.dir}/cport",
             "--tls-cert", pki["server"], "--tls-key", pki["server-key"], "--state-dir", f"{self.dir}/state",
             "--init-shares", "5", "--init-threshold", "3", "--init-output", f"{self.dir}/init.json"],
            stderr=self.log)
        self.port = int(wait_file(f"{self.dir}/port"))
        self.cport = int(wait_file(f"{self.dir}/cport"))
        wait_file(f"{self.dir}/init.json")
        os.chmod(f"{self.dir}/init.json", 0o600)
        self.keys = f"{self.dir}/init.json"

    def control(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else (b"{}" if method == "POST" else None)
        req = urllib.request.Request(f"http://127.0.0.1:{self.cport}{path}", data=data, method=method)
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"{}")

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()


def write_config(path, sim, pki, interval="5s", fast="250ms"):
    with open(path, "w") as f:
        f.write(f'[vault]\naddress = "https://127.0.0.1:{sim.port}"\nca_file = "{pki["ca"]}"\nunit = "bench-none.service"\n'
                f'[health]\ninterval = "{interval}"\nfast_interval = "{fast}"\n'
                f'[unseal]\nkey_file = "{sim.keys}"\n')


class Daemon:
    def __init__(self, binary, config, work, notify=False):
        self.stderr_path = os.path.join(work, f"vk-{time.time_ns()}.log")
        self.stderr = open(self.stderr_path, "w")
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        self.sock = None
        if notify:
            self.sock_path = os.path.join(work, f"notify-{time.time_ns()}.sock")
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self.sock.bind(self.sock_path)
            env["NOTIFY_SOCKET"] = self.sock_path
        self.started = time.monotonic()
        self.proc = subprocess.Popen([binary, "run", "--config", config, "--state-file", os.path.join(work, "state.json")],
                                     stderr=self.stderr, env=env)

    def wait_ready(self, timeout=10):
        self.sock.settimeout(timeout)
        while True:
            data = self.sock.recv(65536).decode()
            if "READY=1" in data.split("\n"):
                return time.monotonic() - self.started

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        """SIGTERM, wait, and return (user+sys CPU seconds) of the whole run."""
        self.proc.send_signal(signal.SIGTERM)
        _, status, usage = os.wait4(self.proc.pid, 0)
        self.proc.returncode = status
        self.stderr.close()
        if self.sock:
            self.sock.close()
        return usage.ru_utime + usage.ru_stime

    def log(self):
        return open(self.stderr_path).read()


def ts(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp()


def percentile(values, p):
    values = sorted(values)
    k = (len(values) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def bench_restart(binary, work, pki, runs):
    sim = Simulator(work, pki, "restart")
    cfg = os.path.join(work, "restart.toml")
    write_config(cfg, sim, pki)
    d = Daemon(binary, cfg, work)
    time.sleep(1.5)
    latencies = []
    for i in range(runs):
        sim.control("POST", "/restart", {"down_ms": 300})
        # wait until unsealed again
        end = time.time() + 10
        while time.time() < end:
            st = sim.control("GET", "/state")
            if not st["sealed"] and st["restarts"] == i + 1:
                break
            time.sleep(0.02)
        time.sleep(0.3)
    d.stop()
    sim.stop()
    up = [ts(m) for m in re.findall(r"^(\S+) vault-sim\[\d+\] simulated restart: listening again", open(os.path.join(sim.dir, "sim.log")).read(), re.M)]
    unsealed = [ts(m) for m in re.findall(r"^(\S+) notice vaultkeeper: unsealed vault .*sealed after a restart", d.log(), re.M)]
    for u in up:
        after = [x for x in unsealed if x >= u - 0.001]
        if after:
            latencies.append(max(min(after) - u, 0.0))
    return latencies


def count_requests(sim):
    return sim.control("GET", "/state")["requests_total"]


def bench_cpu(binary, work, pki, seconds):
    sim = Simulator(work, pki, "cpu")
    sim.control("POST", "/unseal")
    cfg = os.path.join(work, "cpu.toml")
    write_config(cfg, sim, pki, interval="2ms", fast="2ms")
    results = []
    for duration in (2, 2 + seconds):
        before = count_requests(sim)
        d = Daemon(binary, cfg, work)
        time.sleep(duration)
        cpu = d.stop()
        results.append((cpu, count_requests(sim) - before))
    (cpu_a, n_a), (cpu_b, n_b) = results
    per_check = (cpu_b - cpu_a) / max(n_b - n_a, 1)
    # The shell check a seed setup runs from cron: curl + 3x jq per check.
    script = (f'for i in $(seq {{n}}); do out=$(curl -s --cacert {pki["ca"]} https://127.0.0.1:{sim.port}/v1/sys/health); '
              'echo "$out" | jq -r .sealed >/dev/null; echo "$out" | jq -r .standby >/dev/null; echo "$out" | jq -r .version >/dev/null; done')
    shell = []
    for n in (5, 25):
        p = subprocess.Popen(["bash", "-c", script.format(n=n)])
        _, _, usage = os.wait4(p.pid, 0)
        shell.append((usage.ru_utime + usage.ru_stime, n))
    shell_per_check = (shell[1][0] - shell[0][0]) / (shell[1][1] - shell[0][1])
    sim.stop()
    return per_check, shell_per_check, n_b - n_a


def bench_rss(binary, work, pki, checks, warmup=5000):
    """RSS after warm-up (connections, TLS buffers, allocator arenas settled), then after
    `checks` more fast checks: growth there would be a leak."""
    sim = Simulator(work, pki, "rss")
    sim.control("POST", "/unseal")
    cfg = os.path.join(work, "rss.toml")
    write_config(cfg, sim, pki, interval="1ms", fast="1ms")
    d = Daemon(binary, cfg, work)
    start = count_requests(sim)
    t0 = time.time()
    while count_requests(sim) - start < warmup and time.time() - t0 < 120:
        time.sleep(0.5)
    steady = d.rss_kib()
    start = count_requests(sim)
    t0 = time.time()
    while count_requests(sim) - start < checks and time.time() - t0 < 900:
        time.sleep(1)
    done = count_requests(sim) - start
    after = d.rss_kib()
    d.stop()
    sim.stop()
    return steady, after, done, time.time() - t0


def bench_ready(binary, work, pki, runs):
    sim = Simulator(work, pki, "ready")
    sim.control("POST", "/unseal")
    cfg = os.path.join(work, "ready.toml")
    write_config(cfg, sim, pki)
    times = []
    for _ in range(runs):
        d = Daemon(binary, cfg, work, notify=True)
        times.append(d.wait_ready())
        d.stop()
    sim.stop()
    return times


def write_section(path, name, body, title):
    """Replaces the text between <!-- NAME:begin --> and <!-- NAME:end --> in `path`, keeping
    every other section (the systemd end-to-end suite writes its own), so one file holds all
    measurements."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{body.strip()}\n{end}"
    text = open(path).read() if os.path.exists(path) else f"{title}\n\n"
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(ROOT, ".build/release/vaultkeeper"))
    ap.add_argument("--output", default=os.path.join(ROOT, "docs/benchmarks.md"))
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--checks", type=int, default=100_000)
    ap.add_argument("--cpu-seconds", type=int, default=10)
    args = ap.parse_args()
    if not shutil.which("jq"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "jq"], check=False, stdout=subprocess.DEVNULL)
    work = tempfile.mkdtemp(prefix="vk-bench-")
    pki = testca.make_pki(os.path.join(work, "pki"))
    print("restart -> unsealed ...", file=sys.stderr)
    restart = bench_restart(args.binary, work, pki, args.runs)
    print("exec -> READY ...", file=sys.stderr)
    ready = bench_ready(args.binary, work, pki, args.runs)
    print("CPU per check ...", file=sys.stderr)
    cpu, shell_cpu, cpu_checks = bench_cpu(args.binary, work, pki, args.cpu_seconds)
    print(f"RSS over {args.checks} checks ...", file=sys.stderr)
    steady, after, done, took = bench_rss(args.binary, work, pki, args.checks)

    def ms(x):
        return f"{x * 1000:.1f} ms"
    rows = [
        ("Vault restart (listener up, sealed) → unsealed, p50", ms(statistics.median(restart)) if restart else "n/a", "", ""),
        ("Vault restart → unsealed, p95", ms(percentile(restart, 95)) if restart else "n/a", "≤ 250 ms",
         "met" if restart and percentile(restart, 95) <= 0.25 else "NOT met"),
        ("CPU per health check (vaultkeeper)", f"{cpu * 1e6:.0f} µs", "", f"{cpu_checks} checks"),
        ("CPU per health check (curl + 3× jq)", f"{shell_cpu * 1e3:.1f} ms", "", ""),
        ("Ratio vaultkeeper / shell", f"1/{shell_cpu / cpu:.0f}" if cpu > 0 else "n/a", "≤ 1/200",
         "met" if cpu > 0 and shell_cpu / cpu >= 200 else "NOT met"),
        ("RSS at steady state (after 5000 checks)", f"{steady / 1024:.1f} MiB", "≤ 16 MiB", "met" if steady <= 16 * 1024 else "NOT met"),
        (f"RSS after {done} fast checks", f"{after / 1024:.1f} MiB", "growth ≤ 1 MiB",
         ("met" if after - steady <= 1024 else "NOT met") + f" (growth {(after - steady) / 1024:.2f} MiB, {took:.0f} s)"),
        ("exec → READY=1 (Vault answering), p50", ms(statistics.median(ready)), "", ""),
        ("exec → READY=1, p95", ms(percentile(ready, 95)), "≤ 100 ms", "met" if percentile(ready, 95) <= 0.1 else "NOT met"),
    ]
    lines = [
        "# Benchmarks", "",
        "Written by `make bench` (scripts/bench.py) in one run on this machine; goals from issue #2. "
        "Release build, the Python Vault simulator over loopback TLS (the simulator, not vaultkeeper, bounds the request rate).", "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {os.cpu_count()} cores, {platform.platform()}",
        f"- binary: `{os.path.relpath(args.binary, ROOT)}`", "",
        "| measurement | result | goal | |", "|---|---|---|---|",
    ] + [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows] + [
        "", "Restart latency is measured from the simulator's \"listening again\" log line to vaultkeeper's \"unsealed\" log line "
        "(both millisecond wall-clock timestamps). CPU is user+system time from wait4(2) of the whole process, differenced "
        "between a short and a long run so start-up cost cancels out. The systemd end-to-end measurement of the same "
        "restart latency is part of the e2e suite (issue #3).", ""]
    write_section(args.output, "bench", "\n".join(lines[2:]), title="# Benchmarks")
    print("\n".join(lines))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
