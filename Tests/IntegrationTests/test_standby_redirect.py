# SPDX-License-Identifier: Apache-2.0
"""A standby's redirect under attack (issue #10, item 7). Vault's standbys answer the snapshot
paths with a 307 to the active node, and the client must re-send its token (and a restore's
body) there. A standby that names some other host, or plain http, must not get them: the
redirect is followed only to a configured node ([vault] or [[peer]]) and never from https to
http. The "other host" is a real listener on loopback, with a certificate of the test CA that
vaultkeeper trusts, so a client that followed would complete TLS and hand it the token."""

from __future__ import annotations

import socket
import ssl
import threading
from typing import Iterator, Optional

import pytest

import test_snapshot as ts
import test_snapshot_restore as tr
import vk_harness as h


class RogueLeader:
    """A loopback listener posing as the active node. It records each connection and each request
    head it receives (the request line, and whether the expected token came along; never the
    token itself), and answers 503."""

    def __init__(self, pki: Optional[dict] = None) -> None:
        self.context: Optional[ssl.SSLContext] = None
        if pki is not None:
            self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.context.load_cert_chain(pki["server"], pki["server-key"])
        sock = h.loopback_listener()
        self.port = sock.getsockname()[1]
        self.url = f"{'https' if pki else 'http'}://127.0.0.1:{self.port}"
        self.token: Optional[str] = None
        self.lock = threading.Lock()
        self.connections = 0
        self.requests: list[tuple[str, bool]] = []
        self._server = h.SocketThread(sock, self._serve)

    def _serve(self, conn: socket.socket) -> None:
        with self.lock:
            self.connections += 1
        try:
            conn.settimeout(5)
            if self.context is not None:
                conn = self.context.wrap_socket(conn, server_side=True)
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                data = conn.recv(4096)
                if not data:
                    break
                head += data
            if head:
                line = head.split(b"\r\n", 1)[0].decode(errors="replace")
                with self.lock:
                    self.requests.append((line, bool(self.token) and self.token.encode() in head))
                conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()

    def seen(self) -> tuple[int, list[tuple[str, bool]]]:
        with self.lock:
            return self.connections, list(self.requests)

    def close(self) -> None:
        self._server.close()


@pytest.fixture
def rogues(pki) -> Iterator:
    started: list[RogueLeader] = []

    def start(tls: bool = True) -> RogueLeader:
        r = RogueLeader(pki if tls else None)
        started.append(r)
        return r

    yield start
    for r in started:
        r.close()


def _standby(sims, leader: str, name: str = "b") -> h.Sim:
    s = ts._start(sims, name, extra=("--role", "standby", "--leader-address", leader))
    assert s.state()["role"] == "standby"
    return s


def _snapshot_path_requests(s: h.Sim) -> list[tuple[str, int, bool]]:
    return [(q["method"], q["status"], q["has_token"]) for q in s.requests() if q["path"].startswith(ts.SNAPSHOT_PATH)]


def test_a_standby_cannot_send_the_snapshot_download_to_an_unconfigured_host(sims, config, tmp_path, rogues):
    rogue = rogues(tls=True)
    standby = _standby(sims, rogue.url)
    token = ts._make_token(standby)
    rogue.token = token
    snaps = ts._snap_dir(tmp_path)
    cfg = ts._token_config(config, standby, tmp_path, token, snaps)
    r = ts._now(cfg)
    # The command has ended, so nothing more can reach the listener.
    assert rogue.seen() == (0, []), "vaultkeeper followed the redirect to a host that is not configured"
    ts._assert_failed(r, "not a configured node", rogue.url, "[[peer]]")
    ts._assert_no_secrets(r, token)
    assert _snapshot_path_requests(standby) == [("GET", 307, True)]  # the standby did redirect
    assert ts._listing(snaps) == ([], [])


def test_a_standby_cannot_send_a_restore_to_an_unconfigured_host(sims, config, tmp_path, rogues):
    # A good snapshot from an active node, restored through a standby that names a stranger.
    _, _, path, _, _ = tr._setup(sims, config, tmp_path / "a", sim=ts._start(sims, "a"))
    rogue = rogues(tls=True)
    standby = _standby(sims, rogue.url)
    token = ts._make_token(standby, policies=tr.RESTORE_POLICIES)
    rogue.token = token
    cfg = ts._token_config(config, standby, tmp_path, token, ts._snap_dir(tmp_path, "b-snaps"))
    r = tr._restore(cfg, str(path), "--confirm-overwrite")
    assert rogue.seen() == (0, []), "vaultkeeper sent the restore to a host that is not configured"
    assert r.returncode == 1, str(r)
    assert "restore failed" in r.stdout and "not a configured node" in r.stdout and rogue.url in r.stdout, str(r)
    ts._assert_no_secrets(r, token)
    assert [(m, st) for m, st, _ in _snapshot_path_requests(standby)] == [("PUT", 307)]


def test_a_redirect_from_https_to_plain_http_is_refused_even_to_a_configured_node(sims, config, tmp_path, rogues):
    # The plain-http "leader" is even a configured [[peer]] on loopback (allowed for direct use):
    # a downgrade from https is refused all the same.
    rogue = rogues(tls=False)
    standby = _standby(sims, rogue.url)
    token = ts._make_token(standby)
    rogue.token = token
    snaps = ts._snap_dir(tmp_path)
    cfg = ts._token_config(config, standby, tmp_path, token, snaps, peers=[{"address": rogue.url}])
    r = ts._now(cfg)
    _, requests = rogue.seen()
    assert not any(ts.SNAPSHOT_PATH in line or carried for line, carried in requests), requests
    ts._assert_failed(r, "from https to plain http")
    ts._assert_no_secrets(r, token)
    assert _snapshot_path_requests(standby) == [("GET", 307, True)]
