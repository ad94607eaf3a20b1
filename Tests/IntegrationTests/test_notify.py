# SPDX-License-Identifier: Apache-2.0
"""`[[notify]]` (issue #13): the daemon's webhooks and commands, end to end.

The real daemon watches the Vault simulator and sends its messages to a real HTTPS receiver on
loopback (notify_receiver.py, serving a certificate of the test PKI made at test time) or to a
real command (a shell script written per test that records its stdin and environment). Every
wait is for the event itself (a request at the receiver, a journal line, a state file, a
simulator state) under a generous ceiling; nothing here sleeps as a precondition.

The thresholds are small (min_failures 1 or 2, min_duration "0s" or "1s") and the health
interval fast, so that a problem is reported within a few checks.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
from pathlib import Path
from typing import Any, Optional

import pytest

import vk_harness as h
from notify_receiver import NotifyReceiver

# The retry test waits for a delivery 5 s after a failure (plus load): more than conftest's 60 s
# per-test alarm would leave for the rest of such a test on a busy machine.
NOTIFY_TEST_TIMEOUT = 150
# A delivery after the first retry (5 s) on two busy cores.
RETRY_CEILING = 60.0

NOTIFY_FAILED_MID = "a46b0515328b471480516c5b0986ca73"
UNCLEAN_STOP_MID = "3f58c4c71ecf43e49b8cfd4499202f80"
HOST = socket.gethostname()
CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
JSON_KEYS = {"dropped_before", "duration_seconds", "event", "host", "key", "node", "severity", "since", "status",
             "summary", "time", "title", "version"}
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


@pytest.fixture(autouse=True)
def _per_test_timeout():
    """Overrides conftest's 60 s alarm for this module (see NOTIFY_TEST_TIMEOUT)."""
    with h.deadline(NOTIFY_TEST_TIMEOUT):
        yield


# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------

def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value))


def notify_tables(targets: list[dict]) -> str:
    out = []
    for t in targets:
        out += ["", "[[notify]]"] + [f"{k} = {_toml(v)}" for k, v in t.items()]
    return "\n".join(out) + "\n"


@pytest.fixture
def nconfig(config):
    """nconfig(sim, notify=[{...}, ...], **config options) -> Path: the harness's config plus
    [[notify]] tables."""
    def make(target: Any, *, notify: list[dict], **kw: Any) -> Path:
        path = config(target, **kw)
        with open(path, "a") as f:
            f.write(notify_tables(notify))
        return path
    return make


@pytest.fixture
def receivers(pki):
    """receivers(name="receiver", cert="server") -> NotifyReceiver, closed at the test's end."""
    started: list[NotifyReceiver] = []

    def start(name: str = "receiver", cert: str = "server") -> NotifyReceiver:
        r = NotifyReceiver(pki[cert], pki[f"{cert}-key"], name=name)
        started.append(r)
        return r

    yield start
    for r in started:
        # The bodies, for the session's leak check (the path and headers are the receiver's to
        # know: a webhook's secret travels there by design).
        for req in r.requests():
            h.LEDGER.capture(f"{r.name} request body", req.body)
        r.close()


@pytest.fixture
def start(daemons, tmp_path):
    """start(cfg, name="vk", env={...}, state_dir=None) -> Daemon with its own STATE_DIRECTORY
    (the unclean-stop marker lives there: no test sees another's `crashed`)."""
    def run(cfg: Path, *, name: str = "vk", env: Optional[dict] = None, state_dir: Optional[Path] = None, **kw: Any):
        if state_dir is None:
            state_dir = tmp_path / f"state-{name}"
            state_dir.mkdir(exist_ok=True)
        full_env = {"STATE_DIRECTORY": str(state_dir)}
        full_env.update(env or {})
        return daemons(cfg, name=name, env=full_env, **kw)
    return run


def webhook(receiver: NotifyReceiver, pki: dict, *, name: str = "hook", path: str = "/hook", **extra: Any) -> dict:
    table = {"name": name, "webhook": receiver.url(path), "ca_file": pki["ca"], "min_failures": 1, "min_duration": "0s"}
    table.update(extra)
    return table


class Recorder:
    """A real command target: a /bin/sh script that saves each message's stdin and environment
    (`/usr/bin/env`: exactly what it was given) as N.stdin / N.env, then runs `tail` (shell)."""

    def __init__(self, directory: Path, tail: str = "exit 0") -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.script = self.dir / "record.sh"
        d = shlex.quote(str(self.dir))
        self.script.write_text(
            "#!/bin/sh\n"
            f"d={d}\n"
            'n=$(( $(cat "$d/count" 2>/dev/null || echo 0) + 1 ))\n'
            'cat > "$d/$n.stdin.tmp"\n'
            '/usr/bin/env > "$d/$n.env.tmp"\n'
            'mv "$d/$n.env.tmp" "$d/$n.env"\n'
            'mv "$d/$n.stdin.tmp" "$d/$n.stdin"\n'
            'echo "$n" > "$d/count.tmp" && mv "$d/count.tmp" "$d/count"\n'
            f"{tail}\n")
        os.chmod(self.script, 0o755)

    def count(self) -> int:
        try:
            return int((self.dir / "count").read_text().strip() or 0)
        except FileNotFoundError:
            return 0

    def stdin(self, n: int) -> bytes:
        return (self.dir / f"{n}.stdin").read_bytes()

    def env(self, n: int) -> dict[str, str]:
        text = (self.dir / f"{n}.env").read_text()
        return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)

    def wait(self, count: int, timeout: float = h.WAIT_CEILING) -> None:
        h.wait_until(lambda: self.count() >= count, timeout, what=f"{count} run(s) of {self.script}")

    def captured(self) -> list[tuple[str, bytes]]:
        out = []
        for n in range(1, self.count() + 1):
            out.append((f"command stdin {n}", self.stdin(n)))
            out.append((f"command env {n}", (self.dir / f"{n}.env").read_bytes()))
        return out


def check_document(doc: dict, raw: bytes, *, event: str, status: str, severity: str,
                   node: Optional[str] = None) -> None:
    """The spec's json schema (version 1): every field, keys sorted, the title's prefix."""
    expected_keys = JSON_KEYS if node is not None else JSON_KEYS - {"node"}
    assert set(doc) == expected_keys, doc
    assert list(json.loads(raw, object_pairs_hook=lambda pairs: [k for k, _ in pairs])) == sorted(doc), raw
    assert doc["version"] == 1
    assert (doc["event"], doc["status"], doc["severity"]) == (event, status, severity), doc
    assert doc["host"] == HOST, doc
    if node is not None:
        assert doc["node"] == node, doc
    assert RFC3339.match(doc["since"]) and RFC3339.match(doc["time"]), doc
    assert doc["since"] <= doc["time"], doc
    assert isinstance(doc["duration_seconds"], int) and doc["duration_seconds"] >= 0, doc
    assert isinstance(doc["dropped_before"], int), doc
    prefix = {"resolved": "[RESOLVED] ", "reminder": f"[{severity.upper()}, still] "}.get(status, f"[{severity.upper()}] ")
    assert doc["title"] == prefix + doc["summary"], doc


def notifications(report: dict, name: str) -> dict:
    for t in report.get("notifications") or []:
        if t["name"] == name:
            return t
    raise AssertionError(f"no notifications entry {name!r} in {report.get('notifications')}")


# [unseal] off: a sealed node is a critical `sealed` problem at once (no keys held).
WATCH_ONLY = {"enabled": False}


# ---------------------------------------------------------------------------
# 1. Outage, and a restart storm
# ---------------------------------------------------------------------------

def test_outage_is_one_problem_and_one_resolved(sim, nconfig, keyfile, start, receivers, pki):
    rx = receivers()
    secret_path = "/hook/T0001/B0002/outage-webhook-secret-path"
    h.LEDGER.secret(secret_path, "outage webhook URL path")
    cfg = nconfig(sim, key_file=keyfile(sim),
                  notify=[webhook(rx, pki, path=secret_path, min_failures=2, min_duration="1s")])
    d = start(cfg)
    sim.wait_unsealed()
    d.wait_state(lambda s: s["nodes"][0]["state"] == "active", what="node active")

    # The listener goes away (and with it every connection), and stays away.
    sim.fault(kind="refuse")
    sim.restart(down_ms=0)
    got = rx.wait_requests(1, what="the unreachable problem")
    first = got[0]
    assert first.method == "POST" and first.path == secret_path
    assert first.header("Content-Type") == "application/json"
    assert (first.header("User-Agent") or "").startswith("vaultkeeper/")
    doc = first.json()
    check_document(doc, first.body, event="unreachable", status="problem", severity="critical", node=sim.address)
    assert doc["key"] == f"unreachable {sim.address}"
    assert doc["summary"].startswith(f"vault {sim.address} is unreachable"), doc
    assert doc["dropped_before"] == 0
    assert doc["duration_seconds"] >= 1  # min_duration

    # Back (sealed, as after a restart): vaultkeeper unseals it, and the problem is resolved.
    sim.clear_faults()
    sim.wait_unsealed()
    got = rx.wait_requests(2, what="the resolved message")
    resolved = got[1].json()
    check_document(resolved, got[1].body, event="unreachable", status="resolved", severity="critical", node=sim.address)
    assert resolved["key"] == doc["key"]
    assert resolved["since"] == doc["since"]

    # Exactly one of each: a few more looks at the healthy node add nothing.
    d.wait_state(lambda s: s["nodes"][0]["state"] == "active", what="node active again")
    sim.wait_health_checks(3)
    assert [(b["status"], b["key"]) for b in rx.bodies()] == [("problem", doc["key"]), ("resolved", doc["key"])]
    report = d.wait_state(lambda s: notifications(s, "hook")["delivered"] == 2, what="2 delivered in the state file")
    assert notifications(report, "hook")["failed"] == 0 and notifications(report, "hook")["dropped"] == 0
    # The journal names the receiver without its path (the path is often the webhook's secret).
    d.wait_entry(contains=f"notify hook: delivered resolved {doc['key']} to {rx.display} (HTTP 200)")
    assert secret_path not in d.stderr()
    assert "outage-webhook-secret-path" not in json.dumps(d.read_state())


def test_restart_storm_sends_nothing(sim, nconfig, keyfile, start, receivers, pki):
    rx = receivers()
    cfg = nconfig(sim, key_file=keyfile(sim),
                  notify=[webhook(rx, pki, min_failures=3, min_duration="30s")])
    d = start(cfg)
    sim.wait_unsealed()
    d.wait_entry("unsealed", contains="sealed at start-up")
    restarts = 4
    for i in range(1, restarts + 1):
        sim.restart(down_ms=300)
        sim.wait_unsealed()
        d.wait_entry("unsealed", contains="sealed after a restart", count=i)
    # Every unseal (start-up + restarts, 3 shares each) is in the state file, the node active.
    d.wait_state(lambda s: s["nodes"][0]["state"] == "active"
                 and s["nodes"][0]["unseal_attempts"].get("success") == 3 * (restarts + 1), what="all unseals reported")
    sim.wait_health_checks(3)
    assert rx.requests() == [], [r.body for r in rx.requests()]
    report = d.wait_state(lambda s: s.get("notifications") is not None, what="notification counters")
    assert notifications(report, "hook") | {"name": "hook"} == {"name": "hook", "delivered": 0, "failed": 0,
                                                               "dropped": 0}, report["notifications"]
    assert "notify hook" not in d.stderr()

    # The pipeline itself works: the same target takes a test message.
    r = h.run_cli(["notify", "test", "--config", str(cfg)])
    assert r.returncode == 0, r
    assert r.stdout.strip() == f"ok      hook ({rx.display}): HTTP 200", r
    got = rx.wait_requests(1)
    test_doc = got[0].json()
    check_document(test_doc, got[0].body, event="test", status="info", severity="info")


# ---------------------------------------------------------------------------
# 2. Wrong shares
# ---------------------------------------------------------------------------

def test_wrong_shares_are_one_sealed_problem_then_resolved(sim, nconfig, start, receivers, pki, tmp_path,
                                                           foreign_init):
    rx = receivers()
    rec = Recorder(tmp_path / "cmd")
    keys = h.write_key_json(tmp_path / "keys.json", foreign_init)
    cfg = nconfig(sim, key_file=keys, notify=[
        webhook(rx, pki, min_failures=2),
        {"name": "cmd", "command": [str(rec.script)], "min_failures": 2, "min_duration": "0s"},
    ])
    d = start(cfg)
    d.wait_entry("wrong_key")
    got = rx.wait_requests(1, what="the sealed problem")
    doc = got[0].json()
    check_document(doc, got[0].body, event="sealed", status="problem", severity="critical", node=sim.address)
    assert doc["key"] == f"sealed {sim.address}"
    assert "refuses the unseal key shares" in doc["summary"], doc
    rec.wait(1)
    assert json.loads(rec.stdin(1)) == doc  # the same message, the same document

    # The operator installs the right shares and reloads, with changed [[notify]] settings under
    # the same names: each target keeps its gate (the problem stays reported, its resolution
    # is still sent, and it is not reported again).
    h.write_key_json(keys, sim.init_json())
    nconfig(sim, key_file=keys, notify=[
        webhook(rx, pki, min_failures=2, timeout="5s"),
        {"name": "cmd", "command": [str(rec.script)], "min_failures": 2, "min_duration": "0s", "timeout": "5s"},
    ])
    d.signal(signal.SIGHUP)
    d.wait_entry("config_reloaded")
    sim.wait_unsealed()
    got = rx.wait_requests(2, what="the resolved message")
    resolved = got[1].json()
    check_document(resolved, got[1].body, event="sealed", status="resolved", severity="critical", node=sim.address)
    assert resolved["key"] == doc["key"]
    rec.wait(2)
    assert json.loads(rec.stdin(2))["status"] == "resolved"
    sim.wait_health_checks(3)
    assert [b["status"] for b in rx.bodies()] == ["problem", "resolved"]
    assert rec.count() == 2

    # No share of either key file, in any rendering, in anything a target got.
    ledger = h.Ledger()
    ledger.register_init(foreign_init, "the wrong key file")
    ledger.register_init(sim.init_json(), "the right key file")
    for req in rx.requests():
        ledger.capture("a webhook request (line, headers, body)", req.raw())
    for label, data in rec.captured():
        ledger.capture(label, data)
    assert not ledger.leaks(), ledger.leaks()
    assert ledger.captures, "nothing was checked"


# ---------------------------------------------------------------------------
# 3. Retries
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("failure", ["http-500", "down"])
def test_a_failed_delivery_is_retried(sim, nconfig, keyfile, start, receivers, pki, failure):
    rx = receivers()
    if failure == "http-500":
        rx.fail_next(1, status=500)
    else:
        rx.down()
    cfg = nconfig(sim, key_file=keyfile(sim), unseal=WATCH_ONLY, notify=[webhook(rx, pki)])
    d = start(cfg)
    key = f"sealed {sim.address}"
    warning = d.wait_entry(level="warning", contains=f"notify hook: delivering problem {key} to {rx.display} failed: ")[0]
    assert "trying again in 5s" in warning.text, warning.text
    assert "notify.target=hook" in warning.text and "notify.event=sealed" in warning.text, warning.text
    if failure == "http-500":
        assert "failed: HTTP 500" in warning.text, warning.text
        assert rx.requests()[0].answered == 500
    else:
        assert rx.requests() == []
        rx.up()
    got = rx.wait_answered(1, 200, timeout=RETRY_CEILING)
    doc = got[0].json()
    check_document(doc, got[0].body, event="sealed", status="problem", severity="critical", node=sim.address)
    if failure == "http-500":
        assert [r.body for r in rx.requests()] == [rx.requests()[0].body] * 2  # the same message again
    d.wait_entry(level="info", contains=f"notify hook: delivered problem {key} to {rx.display} (HTTP 200) after 1 failed attempt")
    report = d.wait_state(lambda s: notifications(s, "hook")["delivered"] == 1, what="delivered counted")
    assert notifications(report, "hook")["failed"] == 0  # a retried message is not a failed one


def test_a_refusal_is_not_retried(sim, nconfig, keyfile, start, receivers, pki):
    """A 4xx other than 408/425/429 is the receiver refusing this request (a bad token, a wrong
    URL): given up at once, journaled as notify-failed, counted as failed; the queue moves on."""
    rx = receivers()
    rx.fail_next(1, status=401)
    cfg = nconfig(sim, key_file=keyfile(sim), unseal=WATCH_ONLY, notify=[webhook(rx, pki)])
    d = start(cfg)
    key = f"sealed {sim.address}"
    entry = d.wait_entry(NOTIFY_FAILED_MID, level="error")[0]
    assert f"notify hook: could not deliver problem {key} to {rx.display}: HTTP 401" in entry.text, entry.text
    assert "(not retried)" in entry.text, entry.text
    assert not d.entries(contains="trying again")
    report = d.wait_state(lambda s: notifications(s, "hook")["failed"] == 1, what="the refusal counted")
    assert notifications(report, "hook")["last_failure"] > 0
    # The next message goes out, and nothing was tried again before it (one queue, in order).
    sim.unseal_now()
    got = rx.wait_answered(1, 200)
    assert got[0].json()["status"] == "resolved"
    assert [r.answered for r in rx.requests()] == [401, 200]


def test_a_reserved_header_in_the_headers_file_is_refused(sim, nconfig, keyfile, start, receivers, pki, tmp_path):
    rx = receivers()
    headers = tmp_path / "webhook-headers"
    headers.write_text("Authorization: Bearer fine\nHost: elsewhere.example\n")
    os.chmod(headers, 0o600)
    cfg = nconfig(sim, key_file=keyfile(sim), unseal=WATCH_ONLY, notify=[webhook(rx, pki, headers_file=str(headers))])
    d = start(cfg)
    entry = d.wait_entry(NOTIFY_FAILED_MID, level="error")[0]
    assert "webhook headers, line 2: Host is set by vaultkeeper itself (not retried)" in entry.text, entry.text
    assert "Bearer fine" not in d.stderr()
    assert rx.requests() == [] and rx.connections_total == 0


# ---------------------------------------------------------------------------
# 4. A receiver that hangs
# ---------------------------------------------------------------------------

def test_a_hanging_receiver_holds_up_nothing_else(sim, nconfig, start, receivers, pki, tmp_path, keyfile):
    rx = receivers()
    rx.hang()
    rec = Recorder(tmp_path / "cmd")
    cfg = nconfig(sim, key_file=keyfile(sim), unseal=WATCH_ONLY, notify=[
        webhook(rx, pki, timeout="1s"),
        {"name": "cmd", "command": [str(rec.script)], "min_failures": 1, "min_duration": "0s"},
    ])
    d = start(cfg)
    rx.wait_requests(1, what="the request the receiver never answers")
    rec.wait(1)  # the other target got its message meanwhile
    assert json.loads(rec.stdin(1))["event"] == "sealed"
    warning = d.wait_entry(level="warning", contains=f"notify hook: delivering problem sealed {sim.address} to {rx.display} failed: ")[0]
    assert "trying again in 5s" in warning.text, warning.text
    assert rx.requests()[0].answered is None
    # Health checks go on while the webhook's attempt hangs and waits for its retry.
    last = d.wait_state(lambda s: s["nodes"][0]["last_check"] > 0, what="a health check")["nodes"][0]["last_check"]
    d.wait_state(lambda s: s["nodes"][0]["last_check"] > last, what="a later health check")
    sim.wait_health_checks(3)
    assert d.running()
    report = d.wait_state(lambda s: notifications(s, "cmd")["delivered"] == 1, what="the command's delivery counted")
    assert notifications(report, "hook")["delivered"] == 0


# ---------------------------------------------------------------------------
# 5. Queue overflow
# ---------------------------------------------------------------------------

def test_a_full_queue_drops_the_oldest_and_says_so(sim, nconfig, keyfile, start, receivers, pki, tmp_path):
    rx = receivers()
    rx.hang()
    mdir = tmp_path / "textfile"
    mdir.mkdir()
    sim.unseal_now()  # no unseal at start-up: each restart below is one `unsealed` message
    cfg = nconfig(sim, key_file=keyfile(sim), metrics={"textfile_dir": str(mdir)},
                  notify=[webhook(rx, pki, events=["unsealed"], queue_size=1, timeout="1s")])
    d = start(cfg, metrics_dir=mdir)
    d.wait_state(lambda s: s["nodes"][0]["state"] == "active", what="node active")
    # Message 1 is taken and hangs at the receiver (then waits for its retries); 2 waits in the
    # queue; 3 pushes 2 out, 4 pushes 3 out.
    for i in range(1, 5):
        sim.restart(down_ms=0)
        sim.wait_unsealed()
        d.wait_entry("unsealed", contains="sealed after a restart", count=i)
        if i == 1:
            rx.wait_requests(1, what="the first message, in flight")
        d.wait_state(lambda s, i=i: s["nodes"][0]["unseal_attempts"].get("success") == 3 * i, what=f"unseal {i} reported")
    full = d.wait_entry(level="warning", contains="notify hook: its queue is full")
    assert full[0].message_id == NOTIFY_FAILED_MID, full[0].text

    def dropped() -> Optional[int]:
        text = d.read_metrics() or ""
        m = re.search(r'^vaultkeeper_notifications_total\{target="hook",result="dropped"\} (\d+)$', text, re.M)
        return int(m.group(1)) if m and int(m.group(1)) > 0 else None
    assert h.wait_until(dropped, h.WAIT_CEILING, what="dropped messages in the metrics") >= 1

    # The receiver answers again: message 1 at its next retry, then the newest, which tells
    # how many were dropped before it.
    rx.answer(200)
    got = rx.wait_answered(2, 200, timeout=RETRY_CEILING)
    first, latest = got[0].json(), got[1].json()
    assert (first["event"], first["dropped_before"]) == ("unsealed", 0), first
    check_document(latest, got[1].body, event="unsealed", status="info", severity="info", node=sim.address)
    report = d.wait_state(lambda s: notifications(s, "hook")["delivered"] == 2, what="2 delivered")
    assert latest["dropped_before"] == notifications(report, "hook")["dropped"] >= 1, (latest, report["notifications"])
    assert len(d.entries(contains="its queue is full")) == 1  # warned once, not per drop
    h.wait_until(lambda: dropped() == notifications(report, "hook")["dropped"], h.WAIT_CEILING,
                 what="the metrics agreeing with the state file")


# ---------------------------------------------------------------------------
# 6. Command targets
# ---------------------------------------------------------------------------

def test_a_command_gets_the_json_and_a_clean_environment(sim, nconfig, keyfile, start, tmp_path):
    rec = Recorder(tmp_path / "cmd")
    creds = tmp_path / "credentials"
    creds.mkdir(mode=0o700)
    (creds / "unseal-keys").write_text("not a real share\n")
    cfg = nconfig(sim, key_file=keyfile(sim), unseal=WATCH_ONLY,
                  notify=[{"name": "cmd", "command": [str(rec.script)], "min_failures": 1, "min_duration": "0s"}])
    d = start(cfg, env={"CREDENTIALS_DIRECTORY": str(creds), "VK_TEST_DAEMON_ONLY": "inherited", "HOME": "/root"})
    rec.wait(1)
    raw = rec.stdin(1)
    assert raw.endswith(b"}\n") and raw.count(b"\n") == 1, raw
    doc = json.loads(raw)
    check_document(doc, raw.rstrip(b"\n"), event="sealed", status="problem", severity="critical", node=sim.address)
    assert doc["summary"] == f"vault {sim.address} is sealed and not being unsealed: vaultkeeper holds no unseal keys ([unseal] is off)"
    env = rec.env(1)
    names = sorted(env)
    for leaked in ("CREDENTIALS_DIRECTORY", "NOTIFY_SOCKET", "VK_TEST_DAEMON_ONLY", "HOME", "STATE_DIRECTORY"):
        assert leaked not in names, f"the command inherited {leaked}"
    assert {k: v for k, v in env.items() if k != "PWD"} == CLEAN_ENV | {
        "VAULTKEEPER_EVENT": "sealed", "VAULTKEEPER_STATUS": "problem", "VAULTKEEPER_SEVERITY": "critical",
        "VAULTKEEPER_KEY": f"sealed {sim.address}", "VAULTKEEPER_TITLE": doc["title"], "VAULTKEEPER_NODE": sim.address,
    }, names
    d.wait_entry(level="info", contains=f"notify cmd: delivered problem sealed {sim.address} to {rec.script} (exit 0)")


def test_a_failing_command_is_logged_with_its_exit_and_output(sim, nconfig, keyfile, start, tmp_path):
    rec = Recorder(tmp_path / "cmd", tail='echo "receiver said no: quota exceeded"; exit 3')
    cfg = nconfig(sim, key_file=keyfile(sim), unseal=WATCH_ONLY,
                  notify=[{"name": "cmd", "command": [str(rec.script)], "min_failures": 1, "min_duration": "0s"}])
    d = start(cfg)
    rec.wait(1)
    entry = d.wait_entry(level="warning", contains="notify cmd: delivering problem sealed")[0]
    assert f"to {rec.script} failed: exit 3: receiver said no: quota exceeded; trying again in 5s" in entry.text, entry.text


def test_a_command_that_hangs_is_killed_with_its_process_group(sim, nconfig, keyfile, start, tmp_path):
    pidfile = tmp_path / "child.pid"
    # A child in the background that would outlive its shell if only the shell were killed.
    rec = Recorder(tmp_path / "cmd", tail=f"sleep 1000 & echo $! > {shlex.quote(str(pidfile))}; wait")
    cfg = nconfig(sim, key_file=keyfile(sim), unseal=WATCH_ONLY,
                  notify=[{"name": "cmd", "command": [str(rec.script)], "min_failures": 1, "min_duration": "0s",
                           "timeout": "1s"}])
    d = start(cfg)
    rec.wait(1)
    entry = d.wait_entry(level="warning", contains="notify cmd: delivering problem sealed")[0]
    assert f"to {rec.script} failed: still running after 1s, killed; trying again in 5s" in entry.text, entry.text
    child = int(h.wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), h.WAIT_CEILING, what="child pid"))

    def gone() -> bool:
        try:
            return Path(f"/proc/{child}/stat").read_text().split(") ", 1)[1].startswith("Z")
        except FileNotFoundError:
            return True
    h.wait_until(gone, h.WAIT_CEILING, what="the command's child killed with its process group")


# ---------------------------------------------------------------------------
# 7. vaultkeeper notify test
# ---------------------------------------------------------------------------

def test_notify_test_reports_each_target(sim, nconfig, receivers, pki, tmp_path):
    a, b = receivers("a"), receivers("b")
    rec = Recorder(tmp_path / "cmd")
    # events/min_severity do not matter to a test message.
    cfg = nconfig(sim, notify=[webhook(a, pki, name="a", events=["crashed"]), webhook(b, pki, name="b", min_severity="critical"),
                               {"name": "cmd", "command": [str(rec.script)]}])
    r = h.run_cli(["notify", "test", "--config", str(cfg)])
    assert r.returncode == 0, r
    assert r.stdout.splitlines() == [f"ok      a ({a.display}): HTTP 200", f"ok      b ({b.display}): HTTP 200",
                                     f"ok      cmd ({rec.script}): exit 0"], r
    for rx in (a, b):
        got = rx.wait_requests(1)
        doc = got[0].json()
        check_document(doc, got[0].body, event="test", status="info", severity="info")
        assert doc["key"] == "test" and HOST in doc["summary"], doc
    assert json.loads(rec.stdin(1))["event"] == "test"

    b.down()
    r = h.run_cli(["notify", "test", "--config", str(cfg)])
    assert r.returncode == 1, r
    lines = r.stdout.splitlines()
    assert lines[0] == f"ok      a ({a.display}): HTTP 200", r
    assert lines[1].startswith(f"FAILED  b ({b.display}): "), r
    assert "vaultkeeper notify test: not delivered to b" in r.stderr, r
    assert len(a.requests()) == 2 and len(b.requests()) == 1  # no retries


def test_notify_test_without_targets_is_a_config_error(sim, config):
    cfg = config(sim)
    r = h.run_cli(["notify", "test", "--config", str(cfg)])
    assert r.returncode == h.EX_CONFIG, r
    assert "no [[notify]]" in r.stderr, r


# ---------------------------------------------------------------------------
# 8. Formats
# ---------------------------------------------------------------------------

def test_slack_and_ntfy_formats(sim, nconfig, keyfile, start, receivers, pki):
    slack, ntfy = receivers("slack"), receivers("ntfy")
    cfg = nconfig(sim, key_file=keyfile(sim), unseal=WATCH_ONLY, notify=[
        webhook(slack, pki, name="slack", path="/services/T1/B2/x3", format="slack"),
        webhook(ntfy, pki, name="ntfy", path="/mytopic", format="ntfy"),
    ])
    d = start(cfg)
    summary = f"vault {sim.address} is sealed and not being unsealed: vaultkeeper holds no unseal keys ([unseal] is off)"
    got = slack.wait_requests(1)
    assert got[0].path == "/services/T1/B2/x3"
    assert got[0].header("Content-Type") == "application/json"
    assert got[0].json() == {"text": f"[CRITICAL] {summary}\non {HOST}"}
    got = ntfy.wait_requests(1)
    assert got[0].path == "/", got[0].path  # ntfy: the server root, the topic in the body
    assert got[0].json() == {"topic": "mytopic", "title": f"[CRITICAL] {summary}", "message": f"on {HOST}",
                             "priority": 5, "tags": ["rotating_light"]}

    sim.unseal_now()  # someone else unsealed it: resolved
    slack_resolved = slack.wait_requests(2)[1].json()
    assert set(slack_resolved) == {"text"}
    assert re.fullmatch(rf"\[RESOLVED\] {re.escape(summary)}\nlasted \S+, on {re.escape(HOST)}", slack_resolved["text"]), slack_resolved
    ntfy_resolved = ntfy.wait_requests(2)[1].json()
    assert ntfy_resolved["topic"] == "mytopic" and ntfy_resolved["title"] == f"[RESOLVED] {summary}"
    assert (ntfy_resolved["priority"], ntfy_resolved["tags"]) == (3, ["white_check_mark"]), ntfy_resolved
    assert d.running()


# ---------------------------------------------------------------------------
# 9. Trust
# ---------------------------------------------------------------------------

def test_a_receiver_with_another_cas_certificate_gets_nothing(sim, nconfig, keyfile, start, receivers, pki):
    impostor = receivers("impostor", cert="impostor")  # a real second CA; ca_file names the first
    cfg = nconfig(sim, key_file=keyfile(sim), unseal=WATCH_ONLY, notify=[webhook(impostor, pki, name="hook")])
    d = start(cfg)
    impostor.wait_tls_failures(1)  # the daemon did connect, and refused the handshake
    entry = d.wait_entry(level="warning",
                         contains=f"notify hook: delivering problem sealed {sim.address} to {impostor.display} failed: ")[0]
    reason = entry.text.split(" failed: ", 1)[1].lower()
    assert any(w in reason for w in ("certificate", "tls", "ssl")), entry.text
    assert impostor.requests() == []
    # The same through `notify test`: refused, named, nothing delivered.
    r = h.run_cli(["notify", "test", "--config", str(cfg)])
    assert r.returncode == 1, r
    assert r.stdout.startswith(f"FAILED  hook ({impostor.display}): "), r
    assert impostor.requests() == []
    report = d.wait_state(lambda s: s.get("notifications") is not None, what="notification counters")
    assert notifications(report, "hook")["delivered"] == 0


# ---------------------------------------------------------------------------
# 10. Headers
# ---------------------------------------------------------------------------

def test_headers_file_is_sent_and_never_logged(sim, nconfig, keyfile, start, receivers, pki, tmp_path):
    token = "SECRET-TOKEN-xyz"
    h.LEDGER.secret(token, "webhook bearer token")
    rx = receivers()
    headers = tmp_path / "webhook-headers"
    headers.write_text(f"# the receiver's token\n\nAuthorization: Bearer {token}\nX-Team:  vault-ops \n")
    os.chmod(headers, 0o600)
    cfg = nconfig(sim, key_file=keyfile(sim), unseal=WATCH_ONLY,
                  notify=[webhook(rx, pki, headers_file=str(headers))])
    d = start(cfg)
    got = rx.wait_requests(1)
    assert got[0].header("Authorization") == f"Bearer {token}"
    assert got[0].header("X-Team") == "vault-ops"
    d.wait_entry(level="info", contains="notify hook: delivered problem sealed")
    # notify test too
    r = h.run_cli(["notify", "test", "--config", str(cfg)])
    assert r.returncode == 0, r
    assert rx.wait_requests(2)[1].header("Authorization") == f"Bearer {token}"
    assert token not in r.output
    assert d.stop() == 0
    assert token not in d.stderr() and token not in d.stdout_path.read_text()
    assert token not in json.dumps(d.read_state())


# ---------------------------------------------------------------------------
# 11. Crash
# ---------------------------------------------------------------------------

def test_a_start_after_an_unclean_stop_sends_crashed_and_open_problems_survive(sim, nconfig, keyfile, start, receivers, pki,
                                                                                tmp_path):
    rx = receivers()
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    # A node sealed and not unsealed (no keys): one problem, kept open across restarts in
    # $STATE_DIRECTORY/notify-state.json, so a restart neither reports it again nor forgets to
    # resolve it.
    watch = nconfig(sim, key_file=keyfile(sim), unseal=WATCH_ONLY, notify=[webhook(rx, pki)], name="watch.toml")

    first = start(watch, name="vk1", state_dir=state_dir)
    rx.wait_requests(1)
    problem = rx.bodies()[0]
    assert (problem["event"], problem["status"]) == ("sealed", "problem"), problem
    marker = state_dir / "running"
    assert marker.read_text().strip() == f"pid {first.proc.pid}"
    open_file = state_dir / "notify-state.json"
    h.wait_until(lambda: open_file.exists() and problem["key"] in open_file.read_text(), h.WAIT_CEILING,
                 what="the open problem recorded")
    assert oct(open_file.stat().st_mode & 0o777) == "0o600"
    first.proc.send_signal(signal.SIGKILL)
    assert first.wait_exit() == -signal.SIGKILL

    second = start(watch, name="vk2", state_dir=state_dir)
    got = rx.wait_requests(2, what="crashed")
    crashed = got[1].json()
    check_document(crashed, got[1].body, event="crashed", status="info", severity="warning")
    assert f"pid {first.proc.pid}" in crashed["summary"], crashed
    entry = second.wait_entry(UNCLEAN_STOP_MID)[0]
    assert entry.level == "warning"
    # Still sealed, still reported: not again.
    sim.wait_health_checks(5)
    assert [b["status"] for b in rx.bodies()] == ["problem", "info"]

    # A clean stop removes the marker: the next start sends no `crashed`. It holds the keys and
    # unseals: the problem the first run reported is resolved, in the same queue where a
    # `crashed` would have come first.
    assert second.stop() == 0
    assert not marker.exists()
    unseal = nconfig(sim, key_file=keyfile(sim), notify=[webhook(rx, pki)], name="unseal.toml")
    third = start(unseal, name="vk3", state_dir=state_dir)
    sim.wait_unsealed()
    got = rx.wait_requests(3, what="the resolved message")
    resolved = got[2].json()
    check_document(resolved, got[2].body, event="sealed", status="resolved", severity="critical", node=sim.address)
    assert resolved["key"] == problem["key"] and resolved["since"] == problem["since"], (resolved, problem)
    assert [b["status"] for b in rx.bodies()] == ["problem", "info", "resolved"]
    assert not third.entries(UNCLEAN_STOP_MID)
    assert marker.read_text().strip() == f"pid {third.proc.pid}"
    h.wait_until(lambda: problem["key"] not in open_file.read_text(), h.WAIT_CEILING, what="nothing open any more")


# ---------------------------------------------------------------------------
# 12. Configuration errors
# ---------------------------------------------------------------------------

CONFIG_ERRORS = {
    "plain-http-remote": ('webhook = "http://alerts.example.com/hook"', "notify[0].webhook", 0, "must use https://"),
    "user-and-password": ('webhook = "https://ops:hunter2-pass@127.0.0.1:9/hook"', "notify[0].webhook", 0,
                          "must not carry a user name or password"),
    "webhook-and-command": ('webhook = "https://127.0.0.1:9/hook"\ncommand = ["/bin/true"]', "notify[0].command", 1,
                            "set webhook or command, not both"),
    "unknown-event": ('webhook = "https://127.0.0.1:9/hook"\nevents = ["sealed", "exploded"]', "notify[1].events", 1,
                      'unknown event "exploded"'),
}


@pytest.mark.parametrize("case", sorted(CONFIG_ERRORS))
def test_config_errors_name_file_key_and_line(tmp_path, case):
    body, key, offset, needle = CONFIG_ERRORS[case]
    head = '# vaultkeeper\n[vault]\naddress = "https://127.0.0.1:8200"\n'
    if key.startswith("notify[1]"):
        head += '\n[[notify]]\nname = "first"\ncommand = ["/bin/true"]\n'
    text = head + "\n[[notify]]\n" + body + "\n"
    # The line of the key's first line in `body`, plus `offset` lines.
    line = len((head + "\n[[notify]]\n").splitlines()) + 1 + offset
    path = tmp_path / "vk.toml"
    path.write_text(text)
    r = h.run_cli(["config", "check", "--config", str(path)])
    assert r.returncode == h.EX_CONFIG, r
    assert f"{path}:{line}: {key}: " in r.stderr, (text, r)
    assert needle in r.stderr, r
    assert r.stdout == "", r
    assert "hunter2-pass" not in r.output, r  # the password is not echoed back
    r = h.run_cli(["notify", "test", "--config", str(path)])
    assert r.returncode == h.EX_CONFIG, r
    assert f"{path}:{line}: {key}: " in r.stderr, r


def test_a_ca_file_others_may_write_is_refused(sim, config, tmp_path, pki):
    ca = tmp_path / "webhook-ca.pem"
    ca.write_bytes(Path(pki["ca"]).read_bytes())
    os.chmod(ca, 0o666)
    path = config(sim)
    text = path.read_text() + notify_tables([{"name": "hook", "webhook": "https://127.0.0.1:9/hook", "ca_file": str(ca)}])
    path.write_text(text)
    line = text.splitlines().index(f"ca_file = {json.dumps(str(ca))}") + 1
    r = h.run_cli(["config", "check", "--config", str(path)])
    assert r.returncode == h.EX_NOPERM, r
    assert f"{path}:{line}: notify[0].ca_file: " in r.stderr, r
