# SPDX-License-Identifier: Apache-2.0
"""Real attackers for the trust tests (issue #10, items 1 and 2), shared by the simulator and the
real-OpenBao layers:

- `ImpostorSystemStore`: the host's system CA store plus a second, impostor CA, as
  `update-ca-certificates` would have added it (the PEM, its OpenSSL subject-hash link, and the
  bundle). A process sees it as /etc/ssl/certs inside a private mount namespace (`wrap`); the
  host's /etc/ssl/certs is never touched.
- `ListenerStandIn`: a TCP listener on loopback standing in for a proxy named by `https_proxy`
  and the like: it counts the connections it gets and answers none of them usefully.
- `CountingTLSServer`: an HTTPS server with a given certificate that counts the requests it gets
  (an impostor S3 endpoint).
- `ForwardProxy`: a small but real HTTP forward proxy on loopback (absolute-URI requests
  forwarded, CONNECT tunnelled) that counts what went through it, for `[snapshot.s3] proxy`.
"""

from __future__ import annotations

import http.client
import http.server
import os
import select
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import urllib.parse
from typing import Any

import pytest

import vk_harness as h

SYSTEM_STORE = "/etc/ssl/certs"
# Every variable libcurl (or a user) might read a proxy from.
PROXY_VARIABLES = ("https_proxy", "HTTPS_PROXY", "http_proxy", "all_proxy", "ALL_PROXY")


class ImpostorSystemStore:
    """A copy of the system store with `ca_pem` added, bind-mounted over /etc/ssl/certs for one
    process at a time (`wrap` + the command)."""

    def __init__(self, ca_pem: str):
        self.dir = tempfile.mkdtemp(prefix="vk-certs-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        subprocess.run(["cp", "-a", f"{SYSTEM_STORE}/.", self.dir], check=True)
        name = "vaultkeeper-test-impostor-ca.pem"
        shutil.copy(ca_pem, os.path.join(self.dir, name))
        subject_hash = subprocess.run(["openssl", "x509", "-hash", "-noout", "-in", ca_pem], check=True,
                                      capture_output=True, text=True).stdout.strip()
        index = 0
        while os.path.lexists(os.path.join(self.dir, f"{subject_hash}.{index}")):
            index += 1
        os.symlink(name, os.path.join(self.dir, f"{subject_hash}.{index}"))
        bundle = os.path.join(self.dir, "ca-certificates.crt")
        if os.path.exists(bundle):
            with open(bundle, "ab") as out, open(ca_pem, "rb") as pem:
                out.write(b"\n" + pem.read())

    @property
    def wrap(self) -> list[str]:
        """The argv prefix that runs a command (exec, same PID) with this store as /etc/ssl/certs
        in a private mount namespace. Root unshares the mount namespace directly; anyone else
        needs a user namespace for it."""
        unshare = ["unshare", "--mount", "--propagation", "private"]
        if os.geteuid() != 0:
            unshare[1:1] = ["--user", "--map-root-user"]
        return unshare + ["sh", "-c", 'mount --bind "$0" /etc/ssl/certs && exec "$@"', self.dir]

    def trusts(self, cert_pem: str) -> bool:
        """Whether the system store, as a wrapped process sees it, verifies `cert_pem` (the test's
        precondition: the impostor really is in the system store there)."""
        p = subprocess.run(self.wrap + ["openssl", "verify", "-CApath", SYSTEM_STORE, "-purpose", "sslserver", cert_pem],
                           capture_output=True, text=True)
        return p.returncode == 0 and p.stdout.strip().endswith(": OK")

    def check_premise(self, impostor_cert: str) -> None:
        """The attack's premise: inside the namespace the system store trusts the impostor's
        certificate; the host's own store does not (it was not touched)."""
        assert self.trusts(impostor_cert), "the impostor CA is not trusted by the namespace's system store"
        host = subprocess.run(["openssl", "verify", "-CApath", SYSTEM_STORE, impostor_cert], capture_output=True)
        assert host.returncode != 0, "the host's own system store trusts the impostor CA"

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def impostor_store(pki):
    """The system trust store with the impostor CA added, checked to trust the impostor's
    certificate (the premise of every test that uses it)."""
    store = ImpostorSystemStore(pki["impostor-ca"])
    try:
        store.check_premise(pki["impostor"])
        yield store
    finally:
        store.close()


class ListenerStandIn:
    """A loopback listener where a proxy would be. Every connection is counted, read briefly and
    closed: a client that used it gets nothing from Vault."""

    def __init__(self) -> None:
        sock = h.loopback_listener(64)
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.lock = threading.Lock()
        self._connections = 0
        self.first_bytes: list[bytes] = []
        self._server = h.SocketThread(sock, self._serve)

    def _serve(self, conn: socket.socket) -> None:
        with self.lock:
            self._connections += 1
        try:
            conn.settimeout(0.5)
            data = conn.recv(256)
            with self.lock:
                # Only the request line's start, to show what came (CONNECT host:port, GET …).
                self.first_bytes.append(data.split(b"\r\n", 1)[0][:80])
        except OSError:
            pass
        finally:
            conn.close()

    @property
    def connections(self) -> int:
        with self.lock:
            return self._connections

    def environment(self, names: tuple[str, ...] = PROXY_VARIABLES) -> dict[str, str]:
        return {name: self.url for name in names}

    def close(self) -> None:
        self._server.close()


class CountingTLSServer:
    """An HTTPS server on loopback with the given certificate that counts the HTTP requests it
    gets (a TLS handshake a client refuses is not one) and answers each with 403."""

    def __init__(self, cert: str, key: str) -> None:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _count(self) -> None:
                with server.lock:
                    server.requests.append((self.command, self.path))
                self.send_response(403)
                self.send_header("Content-Length", "0")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _count

        self.lock = threading.Lock()
        self.requests: list[tuple[str, str]] = []
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.endpoint = f"https://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def seen(self) -> list[tuple[str, str]]:
        with self.lock:
            return list(self.requests)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class ForwardProxy:
    """An HTTP forward proxy on loopback that only forwards to loopback: plain requests in
    absolute form (`PUT http://127.0.0.1:PORT/bucket/key`) are sent on unchanged (the SigV4
    signature covers the Host header, which is passed through), CONNECT is tunnelled. It counts
    requests by method and records the targets."""

    def __init__(self) -> None:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _record(self, target: str) -> bool:
                host = target.rsplit(":", 1)[0].strip("[]")
                with proxy.lock:
                    proxy.requests.append((self.command, target))
                if host not in ("127.0.0.1", "localhost", "::1"):
                    self.send_error(403, "this test proxy forwards to loopback only")
                    return False
                return True

            def do_CONNECT(self) -> None:
                if not self._record(self.path):
                    return
                host, port = self.path.rsplit(":", 1)
                try:
                    upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
                except OSError:
                    self.send_error(502)
                    return
                self.send_response(200, "Connection established")
                self.end_headers()
                self.wfile.flush()
                client = self.connection
                try:
                    while True:
                        ready, _, _ = select.select([client, upstream], [], [], 30)
                        if not ready:
                            break
                        for s in ready:
                            data = s.recv(65536)
                            if not data:
                                return
                            (upstream if s is client else client).sendall(data)
                except OSError:
                    pass
                finally:
                    upstream.close()
                    self.close_connection = True

            def _forward(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                if url.scheme != "http" or not url.hostname:
                    self.send_error(400, "a forward proxy takes absolute http:// URLs")
                    return
                if not self._record(url.netloc):
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                path = url.path + (f"?{url.query}" if url.query else "")
                h.relay(self, url.hostname, url.port or 80, path, body=body, timeout=30)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        self.lock = threading.Lock()
        self.requests: list[tuple[str, str]] = []
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def seen(self) -> list[tuple[str, str]]:
        with self.lock:
            return list(self.requests)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def hosts(pairs: list[tuple[str, str]]) -> set[str]:
    return {target for _, target in pairs}

