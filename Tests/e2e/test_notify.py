# SPDX-License-Identifier: Apache-2.0
"""Issue #13 under a real systemd: a `[[notify]]` webhook delivered from inside the packaged
vaultkeeper.service's sandbox, through the documented drop-in.

The receiver is a real HTTPS server inside the container on 203.0.113.7:8443 (TEST-NET-3, an
address that is neither loopback nor in the private ranges the shipped unit allows: it is put on
the container's own loopback interface; the container has a private network namespace, so the
host is not touched). Its certificate comes from the suite's test CA, which vaultkeeper is given
as the target's `ca_file`: verification stays on.

The message is the daemon's own: vaultkeeper is SIGKILLed, systemd's Restart=on-failure starts it
again, it finds the unclean-stop marker and sends `crashed`.

  1. Shipped unit alone (IPAddressDeny=any, IPAddressAllow= loopback and private ranges): the
     delivery fails from inside the sandbox and the receiver gets nothing. This needs systemd's
     BPF IP firewall, i.e. a container whose seccomp filter lets systemd call bpf()
     (systemd-nspawn --system-call-filter=bpf). A probe under the unit's own address lists
     checks first that the firewall works here, and the test FAILS if it does not: a pass must
     mean the sandbox really refused the delivery.
  2. The drop-in installed as documented (/usr/share/doc/vaultkeeper/examples/notify-webhook.conf
     into vaultkeeper.service.d/, daemon-reload): the next crash's `crashed` message arrives.
  3. `vaultkeeper notify test` as root: a `test` message arrives.

conftest.py runs this file after test_systemd.py (same container); run alone, it first does
test_systemd.py's set-up steps. It leaves the baseline as it found it.
"""
from __future__ import annotations

import json
import secrets
import subprocess

import test_systemd as base
from machine import Machine, wait_until
from test_drill import ensure_baseline

UNIT = base.UNIT
CONFIG = base.CONFIG
ADDRESS = "203.0.113.7"                  # TEST-NET-3 (RFC 5737): public, never routed
PORT = 8443
TARGET = "e2e-webhook"
EXAMPLE = "/usr/share/doc/vaultkeeper/examples/notify-webhook.conf"
DROPIN = f"{base.DROPIN_DIR}/notify-webhook.conf"
MARKER = "/var/lib/vaultkeeper/running"
RECEIVER_UNIT = "e2e-webhook-receiver.service"
RECEIVER_SCRIPT = "/opt/e2e/webhook-receiver.py"
RECEIVED = "/var/lib/e2e-webhook/received.jsonl"
CA_FILE = "/etc/vaultkeeper/notify-ca.pem"
LEAF = "/root/pki/webhook.pem"
LEAF_KEY = "/root/pki/webhook-key.pem"

# A leaf for the receiver's address, signed by the suite's test CA (/root/pki, made by
# /opt/e2e/testca.py in test_systemd.py), with the container's python3-cryptography.
MAKE_LEAF = f"""
import sys
sys.path.insert(0, "/opt/e2e")
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
import testca
ca = x509.load_pem_x509_certificate(open("/root/pki/ca.pem", "rb").read())
ca_key = serialization.load_pem_private_key(open("/root/pki/ca-key.pem", "rb").read(), None)
cert, key = testca.make_leaf(ca, ca_key, "{ADDRESS}", ["{ADDRESS}"], ExtendedKeyUsageOID.SERVER_AUTH)
testca._write_cert("{LEAF}", cert)
testca._write_key("{LEAF_KEY}", key)
"""

# The receiver: HTTPS on ADDRESS:PORT; every request read completely is appended to RECEIVED as
# one JSON line (method, path, headers, body) and answered 200. The TLS handshake happens in the
# request's own thread, so a connection that never speaks (the probe below) holds up nothing.
RECEIVER = """
import http.server, json, socket, ssl, sys, threading

address, port, cert, key, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
lock = threading.Lock()

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30

    def do_POST(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\\r\\n", b"\\n", b""):
                        pass
                    break
                body += self.rfile.read(size)
                self.rfile.readline()
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        record = {"method": "POST", "path": self.path, "headers": [[k, v] for k, v in self.headers.items()],
                  "body": body.decode("utf-8", "replace")}
        with lock, open(out, "a") as f:
            f.write(json.dumps(record) + "\\n")
            f.flush()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\\n")

    def log_request(self, code="-", size="-"):
        print(f"answered a {self.command} with {code}", flush=True)  # not its path: often the webhook's secret

    def log_message(self, fmt, *args):
        print(fmt % args, flush=True)

context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server = http.server.ThreadingHTTPServer((address, port), Handler)
server.daemon_threads = True
server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
print(f"listening on {address}:{port}", flush=True)
server.serve_forever()
"""

# A TCP connection to the receiver, from a process under the given IP address properties:
# prints "connected" or why not.
PROBE = f"""
import socket
try:
    socket.create_connection(("{ADDRESS}", {PORT}), timeout=3).close()
    print("connected")
except OSError as e:
    print(f"not connected: {{e}}")
"""


def notify_config(path: str) -> str:
    return base.config(extra=f"""
[[notify]]
name = "{TARGET}"
webhook = "https://{ADDRESS}:{PORT}{path}"
ca_file = "{CA_FILE}"
events = ["crashed"]
min_duration = "0s"
""")


def container_netns(m: Machine, *argv: str) -> subprocess.CompletedProcess:
    """The host's `ip` in the container's network namespace only (the Debian minbase root has no
    iproute2). The container has its own namespace (systemd-nspawn --private-network), so this
    changes nothing on the host."""
    return subprocess.run(["nsenter", "-t", str(m.pid1), "-n", "--", "ip", *argv], capture_output=True, text=True, timeout=30)


def received(m: Machine) -> list[dict]:
    """The requests the receiver recorded (complete lines only)."""
    text = m.run(["sh", "-c", f'cat "{RECEIVED}" 2>/dev/null || true']).stdout
    return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n") and line.strip()]


def received_event(m: Machine, event: str, where=lambda doc: True, timeout: float = 90) -> tuple[dict, dict]:
    def look():
        for request in received(m):
            doc = json.loads(request["body"])
            if doc.get("event") == event and where(doc):
                return request, doc
        return None
    return wait_until(look, timeout, interval=0.2, what=f"the receiver to get a '{event}' message")


def notify_lines(m: Machine, cursor: str) -> list[dict]:
    return [e for e in m.journal("_SYSTEMD_UNIT=" + UNIT, after=cursor) if e.get("NOTIFY_TARGET") == TARGET]


def ip_filtering_enforced(m: Machine) -> bool:
    """Whether systemd here enforces IPAddressDeny=/IPAddressAllow= (its BPF cgroup firewall):
    the same connection from a transient unit with vaultkeeper.service's own lists (refused,
    where enforced) and from one with the receiver's address added (always connects)."""
    props = m.show(UNIT, "IPAddressDeny", "IPAddressAllow")
    assert props["IPAddressDeny"] in ("0.0.0.0/0 ::/0", "::/0 0.0.0.0/0"), props  # IPAddressDeny=any
    assert ADDRESS not in props["IPAddressAllow"] and "127.0.0.0/8" in props["IPAddressAllow"], props
    lists = ["-p", f"IPAddressDeny={props['IPAddressDeny']}", "-p", f"IPAddressAllow={props['IPAddressAllow']}"]

    def probe(*extra: str) -> str:
        return m.run(["systemd-run", "--quiet", "--wait", "--pipe", "--collect", *lists, *extra,
                      "python3", "-c", PROBE], timeout=60).stdout.strip()
    allowed = probe("-p", f"IPAddressAllow={ADDRESS}")
    assert allowed == "connected", f"the receiver cannot be reached even with its address allowed: {allowed}"
    return probe() != "connected"


def kill_and_wait_restart(m: Machine) -> tuple[str, str]:
    """SIGKILL the daemon; systemd restarts it (Restart=on-failure) and the new run journals the
    unclean stop. Returns the killed PID and the cursor from before the kill."""
    m.run(["test", "-s", MARKER])  # the running daemon's marker: its kill is an unclean stop
    pid = m.show(UNIT, "MainPID")["MainPID"]
    assert pid != "0"
    cursor = m.cursor()
    m.systemctl("kill", "--signal=SIGKILL", UNIT)
    unclean = base.wait_vk(m, "uncleanStop", cursor, timeout=90)
    assert unclean["PRIORITY"] == "4" and f"pid {pid}" in unclean["MESSAGE"], unclean["MESSAGE"]
    assert "vaultkeeper started after an unclean stop" in unclean["MESSAGE"], unclean["MESSAGE"]
    wait_until(lambda: (p := m.show(UNIT, "MainPID", "ActiveState"))["ActiveState"] == "active" and p["MainPID"] not in ("0", pid),
               60, interval=0.2, what="vaultkeeper restarted by systemd")
    return pid, cursor


def test_crashed_webhook_reaches_a_public_address_only_through_the_documented_dropin(machine: Machine):
    m = machine
    ensure_baseline(m)
    previous_config = m.read(CONFIG)
    init = json.loads(m.read(base.INIT_JSON))
    key_material = list(init["unseal_keys_b64"]) + list(init["unseal_keys_hex"]) + [init["root_token"]]
    hostname = m.run(["hostname"]).stdout.strip()
    hook_path = f"/hook/{secrets.token_hex(12)}"  # a webhook's path is often its secret: never logged
    display = f"https://{ADDRESS}:{PORT}/…"

    # The documented drop-in, as the package ships it.
    example = m.read(EXAMPLE)
    assert "[Service]" in example and f"\nIPAddressAllow={ADDRESS}\n" in example, example
    assert ADDRESS not in m.show(UNIT, "IPAddressAllow")["IPAddressAllow"]

    m.run(["python3", "-c", MAKE_LEAF])
    m.run(["install", "-m", "0644", "/root/pki/ca.pem", CA_FILE])
    m.write(RECEIVER_SCRIPT, RECEIVER)
    m.run(["install", "-d", "-m", "0700", "/var/lib/e2e-webhook"])
    m.run(["rm", "-f", RECEIVED])
    added = container_netns(m, "addr", "add", f"{ADDRESS}/32", "dev", "lo")
    assert added.returncode == 0, added.stderr
    try:
        cursor = m.cursor()
        m.run(["systemd-run", f"--unit={RECEIVER_UNIT}", "--collect", "python3", "-u", RECEIVER_SCRIPT,
               ADDRESS, str(PORT), LEAF, LEAF_KEY, RECEIVED])
        m.wait_journal("_SYSTEMD_UNIT=" + RECEIVER_UNIT, after=cursor, timeout=30,
                       where=lambda e: f"listening on {ADDRESS}:{PORT}" in e.get("MESSAGE", ""), what="the webhook receiver listening")
        assert ip_filtering_enforced(m), (
            "systemd in the container does not enforce IPAddressDeny=/IPAddressAllow= (a unit with vaultkeeper.service's "
            "lists reached the receiver): it cannot attach its BPF firewall. systemd-nspawn must let the container call "
            "bpf(): --system-call-filter=bpf (Tests/e2e/machine.py)")
        _crash_and_deliver(m, hook_path, display, hostname, key_material)
    finally:
        m.run(["rm", "-f", DROPIN])
        m.write(CONFIG, previous_config)
        m.systemctl("daemon-reload")
        m.systemctl("reset-failed", UNIT, check=False)
        m.systemctl("restart", UNIT)
        wait_until(lambda: m.show(UNIT, "ActiveState")["ActiveState"] == "active", 60, interval=0.2, what="vaultkeeper active again")
        m.systemctl("stop", RECEIVER_UNIT, check=False)
        container_netns(m, "addr", "del", f"{ADDRESS}/32", "dev", "lo")
        m.run(["rm", "-f", CA_FILE])
    assert ADDRESS not in m.show(UNIT, "IPAddressAllow")["IPAddressAllow"]
    assert base.bao_sealed(m) is False


def _crash_and_deliver(m: Machine, hook_path: str, display: str, hostname: str, key_material: list[str]) -> None:
    m.write(CONFIG, notify_config(hook_path))
    m.run(["vaultkeeper", "config", "check", "--config", CONFIG])
    # A start-limit hit by the suite's earlier restarts must not stop systemd from restarting us.
    m.systemctl("reset-failed", UNIT, check=False)
    m.systemctl("restart", UNIT)  # a clean stop: no crashed message from this restart

    # 1. The shipped unit alone: the crashed message cannot leave the sandbox.
    _, cursor = kill_and_wait_restart(m)
    failed = wait_until(lambda: next((e for e in notify_lines(m, cursor) if e.get("PRIORITY") == "4"), None), 90,
                        interval=0.2, what="the first failed delivery attempt from the sandbox")
    assert failed["NOTIFY_EVENT"] == "crashed", failed
    assert failed["MESSAGE"].startswith(f"notify {TARGET}: delivering info crashed to {display} failed: "), failed["MESSAGE"]
    assert failed["MESSAGE"].endswith("; trying again in 5s"), failed["MESSAGE"]
    # Refused on the way out (the connection never came up), not by TLS or HTTP.
    assert "connect" in failed["MESSAGE"].lower() and "certificate" not in failed["MESSAGE"].lower(), failed["MESSAGE"]
    assert received(m) == [], "the receiver got a message the sandbox should have refused"
    assert not [e for e in notify_lines(m, cursor) if "delivered" in e.get("MESSAGE", "")]

    # 2. The drop-in, exactly as documented: the next crash's message arrives.
    m.run(["install", "-D", "-m", "0644", EXAMPLE, DROPIN])
    m.systemctl("daemon-reload")
    allow = m.show(UNIT, "IPAddressAllow")["IPAddressAllow"]
    assert ADDRESS in allow and "10.0.0.0/8" in allow, allow  # added to the shipped list, not replacing it
    m.systemctl("reset-failed", UNIT, check=False)
    killed, cursor = kill_and_wait_restart(m)
    request, doc = received_event(m, "crashed", where=lambda d: f"pid {killed}" in d.get("summary", ""))
    assert request["path"] == hook_path, request["path"]
    assert doc["status"] == "info" and doc["severity"] == "warning" and doc["host"] == hostname, doc
    assert doc["key"] == "crashed" and doc["version"] == 1, doc
    assert doc["summary"].startswith("vaultkeeper started after an unclean stop"), doc
    delivered = wait_until(lambda: next((e for e in notify_lines(m, cursor) if "delivered" in e.get("MESSAGE", "")
                                         and e.get("NOTIFY_EVENT") == "crashed"), None), 30, interval=0.2,
                           what="the journal's delivered line")
    assert delivered["MESSAGE"].startswith(f"notify {TARGET}: delivered info crashed to {display} (HTTP 200)"), delivered["MESSAGE"]
    assert not [e for e in notify_lines(m, cursor) if e.get("PRIORITY") == "4"], "the first attempt went through"

    # 3. `vaultkeeper notify test` (as root, outside the unit): a test message.
    before = len(received(m))
    test = m.run(["vaultkeeper", "notify", "test", "--config", CONFIG], check=False, timeout=60)
    assert test.returncode == 0, test.stdout + test.stderr
    assert test.stdout.strip() == f"ok      {TARGET} ({display}): HTTP 200", test.stdout
    request, doc = received_event(m, "test", timeout=10)
    assert len(received(m)) == before + 1 and request["path"] == hook_path
    assert doc["status"] == "info" and doc["severity"] == "info" and doc["host"] == hostname, doc

    # No key share or root token in anything the receiver got, and the webhook's path (its
    # secret) nowhere in the journal.
    for request in received(m):
        raw = json.dumps(request)
        for secret in key_material:
            assert secret not in raw, "key material sent to the webhook"
    exported = m.run(["journalctl", "-o", "export", "--no-pager", "-u", UNIT], timeout=120).stdout
    assert hook_path not in exported and hook_path.rsplit("/", 1)[1] not in exported, "the webhook's path in the journal"
