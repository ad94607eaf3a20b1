# SPDX-License-Identifier: Apache-2.0
"""A real HTTPS webhook receiver on loopback for the `[[notify]]` tests (issue #13).

`NotifyReceiver(cert, key)` listens on 127.0.0.1 at a port the kernel picks and serves the given
certificate (one of the test PKI's, `vk_fixtures.pki`, made at test time: `server` for the CA the
daemon is told to trust, `impostor` for a second, different CA). It speaks HTTP/1.1 itself, with
keep-alive, and records every request it read completely (method, path, headers, body) with the
answer it got. What it answers is set at any time:

- `answer(status)`: every request gets `status` (200 by default); `fail_next(n, status)` answers
  the next `n` requests with `status` first;
- `hang()`: requests are read, recorded, and never answered (the connection stays open until
  the client gives up or the receiver is closed);
- `down()`: the listening socket is closed and every open connection cut (connection refused);
  `up()` listens on the same port again.

TLS handshakes that fail (a client that refuses the certificate) are counted, not recorded as
requests: nothing reached the receiver. No mocks: the daemon's libcurl talks to this socket.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import vk_harness as h

HEADER_LIMIT = 64 * 1024
BODY_LIMIT = 1024 * 1024


@dataclass
class Received:
    """One request the receiver read completely."""
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes
    time: float
    # What it was answered: an HTTP status, or None (hung, never answered).
    answered: Optional[int] = None

    def header(self, name: str) -> Optional[str]:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def json(self) -> Any:
        return json.loads(self.body)

    def raw(self) -> bytes:
        """Everything the client sent in this request (request line, headers, body), for leak checks."""
        head = f"{self.method} {self.path}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in self.headers)
        return head.encode() + b"\r\n" + self.body


@dataclass
class _Mode:
    status: int = 200
    hang: bool = False
    failures: list[int] = field(default_factory=list)


class NotifyReceiver:
    def __init__(self, cert: str, key: str, *, name: str = "receiver") -> None:
        self.name = name
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.lock = threading.Lock()
        self._mode = _Mode()
        self._received: list[Received] = []
        self._connections: set[socket.socket] = set()
        self.tls_failures = 0
        self.connections_total = 0
        self._released = threading.Event()  # set at close(): hung handlers end
        sock = h.loopback_listener(64)
        self.port = sock.getsockname()[1]
        self._server: Optional[h.SocketThread] = h.SocketThread(sock, self._accepted)

    # configuration ---------------------------------------------------------
    def url(self, path: str = "/hook") -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    @property
    def display(self) -> str:
        """How the daemon names this receiver (the path hidden)."""
        return f"https://127.0.0.1:{self.port}/…"

    def answer(self, status: int = 200) -> None:
        with self.lock:
            self._mode = _Mode(status=status)

    def fail_next(self, count: int, status: int = 500) -> None:
        with self.lock:
            self._mode.failures = [status] * count

    def hang(self) -> None:
        with self.lock:
            self._mode = _Mode(hang=True)

    def down(self) -> None:
        """Closes the port (connection refused) and cuts every connection open now."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        with self.lock:
            open_now = list(self._connections)
        for conn in open_now:
            _shut(conn)

    def up(self) -> None:
        """Listens on the same port again."""
        if self._server is not None:
            return
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(64)
        self._server = h.SocketThread(sock, self._accepted)

    # observation -----------------------------------------------------------
    def requests(self) -> list[Received]:
        with self.lock:
            return list(self._received)

    def bodies(self) -> list[Any]:
        return [r.json() for r in self.requests()]

    def wait_requests(self, count: int, timeout: float = h.WAIT_CEILING, what: Optional[str] = None) -> list[Received]:
        """Waits until at least `count` requests were read; returns them all."""
        try:
            return h.wait_until(lambda: (lambda r: r if len(r) >= count else None)(self.requests()), timeout,
                                what=what or f"{count} request(s) at {self.name}")
        except AssertionError as e:
            raise AssertionError(f"{e}; got: {[(r.path, r.body[:300]) for r in self.requests()]}") from None

    def wait_answered(self, count: int, status: int = 200, timeout: float = h.WAIT_CEILING) -> list[Received]:
        """Waits until `count` requests were answered with `status`; returns those."""
        def check():
            done = [r for r in self.requests() if r.answered == status]
            return done if len(done) >= count else None
        try:
            return h.wait_until(check, timeout, what=f"{count} request(s) answered {status} at {self.name}")
        except AssertionError as e:
            raise AssertionError(f"{e}; got: {[(r.answered, r.body[:300]) for r in self.requests()]}") from None

    def wait_tls_failures(self, count: int, timeout: float = h.WAIT_CEILING) -> None:
        h.wait_until(lambda: self.tls_failures >= count, timeout, what=f"{count} refused TLS handshake(s) at {self.name}")

    def close(self) -> None:
        self._released.set()
        self.down()

    # serving ---------------------------------------------------------------
    def _accepted(self, conn: socket.socket) -> None:
        with self.lock:
            self.connections_total += 1
            self._connections.add(conn)
        threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        conn: socket.socket = raw
        try:
            raw.settimeout(10)
            try:
                conn = self.context.wrap_socket(raw, server_side=True)
            except (ssl.SSLError, OSError):
                with self.lock:
                    self.tls_failures += 1
                return
            with self.lock:
                self._connections.discard(raw)
                self._connections.add(conn)
            buffer = b""
            while not self._released.is_set():
                request, buffer = self._read_request(conn, buffer)
                if request is None:
                    return
                with self.lock:
                    mode = self._mode
                    self._received.append(request)
                    hang = mode.hang
                    status = mode.failures.pop(0) if mode.failures else mode.status
                if hang:
                    # Never answer: hold the connection until the client gives up or we close.
                    while not self._released.is_set():
                        try:
                            conn.settimeout(0.2)
                            if conn.recv(1) == b"":
                                return
                        except socket.timeout:
                            continue
                        except OSError:
                            return
                    return
                body = json.dumps({"ok": status < 300}).encode()
                reason = {200: "OK", 500: "Internal Server Error"}.get(status, "Status")
                conn.sendall(f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                             f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
                with self.lock:
                    request.answered = status
        except OSError:
            return
        finally:
            with self.lock:
                self._connections.discard(raw)
                self._connections.discard(conn)
            _shut(conn)

    def _read_request(self, conn: socket.socket, buffer: bytes) -> tuple[Optional[Received], bytes]:
        """One HTTP/1.1 request (Content-Length or chunked body); None at a closed connection."""
        conn.settimeout(30)
        while b"\r\n\r\n" not in buffer:
            chunk = conn.recv(65536)
            if not chunk or len(buffer) > HEADER_LIMIT:
                return None, b""
            buffer += chunk
        head, buffer = buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        method, path = lines[0].split(" ")[:2]
        headers = [(k.strip(), v.strip()) for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)]
        names = {k.lower(): v for k, v in headers}
        if names.get("expect", "").lower() == "100-continue":
            conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")

        def need(n: int) -> bytes:
            nonlocal buffer
            while len(buffer) < n:
                chunk = conn.recv(65536)
                if not chunk:
                    raise OSError("connection closed in the body")
                buffer += chunk
            out, buffer = buffer[:n], buffer[n:]
            return out

        body = b""
        if names.get("transfer-encoding", "").lower() == "chunked":
            while True:
                while b"\r\n" not in buffer:
                    chunk = conn.recv(65536)
                    if not chunk:
                        raise OSError("connection closed in a chunk header")
                    buffer += chunk
                size_line, buffer = buffer.split(b"\r\n", 1)
                size = int(size_line.split(b";")[0], 16)
                data = need(size + 2)[:size]
                if size == 0:
                    break
                body += data
                if len(body) > BODY_LIMIT:
                    raise OSError("body too long")
        else:
            length = int(names.get("content-length", "0"))
            if length > BODY_LIMIT:
                raise OSError("body too long")
            body = need(length)
        return Received(method, path, headers, body, time.monotonic()), buffer


def _shut(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        conn.close()
    except OSError:
        pass
