#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""HashiCorp Vault HTTP API simulator for the vaultkeeper tests.

Follows /work/shared/vault-api.md (sections 1-7 and 9): sys/health, sys/seal-status,
sys/unseal, sys/init, sys/leader, sys/seal, Raft snapshots (streamed save, restore,
standby 307), tokens and AppRole login, with Vault's status codes, body field order,
Go json.Encoder output (compact, HTML-escaped, trailing newline) and
`Cache-Control: no-store` on every response.

Run `python3 vault_sim.py --help` for the command line; README.md next to this file
describes the control API. Python 3.11 standard library plus `cryptography`.

Structure (so later features - snapshots, AppRole, cert reload - slot in easily):
  * Shamir / GF(2^8)           : gf_mul, shamir_split, shamir_combine
  * Go compatibility helpers   : go_json, go_decode_struct, go_parse_query, go_duration, ...
  * Raft snapshot archive      : snapshot_archive (streamed writer), SnapshotArchiveReader
  * Tokens                     : TokenStore (shared through --state-dir), POLICY_RULES
  * Sim                        : all state behind one lock (Sim.lock / Sim.cond)
  * Router + vault_* handlers  : one function per endpoint, returning a Response
  * Listener / _BaseHandler    : accept loop, TLS, keep-alive, faults, logging
  * ControlHandler             : the plain-HTTP control channel
"""

from __future__ import annotations

import argparse
import base64
import binascii
import collections
import contextlib
import dataclasses
import email.utils
import fcntl
import hashlib
import json
import os
import posixpath
import re
import secrets
import selectors
import signal
import socket
import ssl
import string
import sys
import tempfile
import threading
import time
import uuid
import zlib
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable, Iterable, Iterator, Optional

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# ---------------------------------------------------------------------------
# Shamir secret sharing, byte-compatible with hashicorp/vault shamir/shamir.go
# ---------------------------------------------------------------------------

SHARE_OVERHEAD = 1


class ShamirError(Exception):
    """Error text is identical to Vault's shamir package."""


def gf_add(a: int, b: int) -> int:
    return a ^ b


def gf_mul(a: int, b: int) -> int:
    """GF(2^8) multiply, reduction polynomial x^8+x^4+x^3+x+1 (0x1B).

    Same constant-time formulation as Vault's current shamir.mult().
    """
    r = 0
    for i in range(7, -1, -1):
        r = ((-((b >> i) & 1) & a) ^ (-(r >> 7) & 0x1B) ^ ((r + r) & 0xFF)) & 0xFF
    return r


def gf_inv(a: int) -> int:
    """a^254 (= a^-1 for a != 0), as Vault's inverse()."""
    if a == 0:
        raise ZeroDivisionError("inverse of 0 in GF(2^8)")
    result, base, e = 1, a, 254
    while e:
        if e & 1:
            result = gf_mul(result, base)
        base = gf_mul(base, base)
        e >>= 1
    return result


# log/exp tables with generator 0xE5 (what pre-2019 Vault used); identical results,
# much faster in Python. test_simulator cross-checks them against gf_mul.
GF_EXP = [0] * 510
GF_LOG = [0] * 256
_v = 1
for _i in range(255):
    GF_EXP[_i] = _v
    GF_LOG[_v] = _i
    _v = gf_mul(_v, 0xE5)
for _i in range(255, 510):
    GF_EXP[_i] = GF_EXP[_i - 255]
del _v, _i


def gf_mul_fast(a: int, b: int) -> int:
    if a == 0 or b == 0:
        return 0
    return GF_EXP[GF_LOG[a] + GF_LOG[b]]


def gf_div(a: int, b: int) -> int:
    if b == 0:
        raise ZeroDivisionError("divide by zero")  # Vault panics here
    if a == 0:
        return 0
    return GF_EXP[(GF_LOG[a] - GF_LOG[b]) % 255]


def _poly_eval(coefficients: list[int], x: int) -> int:
    if x == 0:
        return coefficients[0]
    out = coefficients[-1]
    for coeff in reversed(coefficients[:-1]):
        out = gf_mul_fast(out, x) ^ coeff
    return out


def _lagrange_basis_at(x_samples: list[int], x: int) -> list[int]:
    basis_all = []
    for i, xi in enumerate(x_samples):
        basis = 1
        for j, xj in enumerate(x_samples):
            if i == j:
                continue
            basis = gf_mul_fast(basis, gf_div(x ^ xj, xi ^ xj))
        basis_all.append(basis)
    return basis_all


def shamir_split(secret: bytes, parts: int, threshold: int) -> list[bytes]:
    """Vault shamir.Split: share = y-bytes followed by the x coordinate (last byte)."""
    if parts < threshold:
        raise ShamirError("parts cannot be less than threshold")
    if parts > 255:
        raise ShamirError("parts cannot exceed 255")
    if threshold < 2:
        raise ShamirError("threshold must be at least 2")
    if threshold > 255:
        raise ShamirError("threshold cannot exceed 255")
    if len(secret) == 0:
        raise ShamirError("cannot split an empty secret")
    # crypto-random Fisher-Yates shuffle of 0..254; x = value + 1 (unique, never 0)
    xs = list(range(255))
    for i in range(len(xs) - 1, 0, -1):
        j = secrets.randbelow(i + 1)
        xs[i], xs[j] = xs[j], xs[i]
    out = [bytearray(len(secret) + SHARE_OVERHEAD) for _ in range(parts)]
    for idx in range(parts):
        out[idx][-1] = xs[idx] + 1
    for byte_idx, val in enumerate(secret):
        coeffs = [val] + list(secrets.token_bytes(threshold - 1))
        for idx in range(parts):
            out[idx][byte_idx] = _poly_eval(coeffs, xs[idx] + 1)
    return [bytes(o) for o in out]


def shamir_combine(parts: list[bytes]) -> bytes:
    """Vault shamir.Combine (Lagrange interpolation at 0); no integrity check."""
    if len(parts) < 2:
        raise ShamirError("less than two parts cannot be used to reconstruct the secret")
    first_len = len(parts[0])
    if first_len < 2:
        raise ShamirError("parts must be at least two bytes")
    for p in parts[1:]:
        if len(p) != first_len:
            raise ShamirError("all parts must be the same length")
    x_samples: list[int] = []
    seen: set[int] = set()
    for p in parts:
        x = p[first_len - 1]
        if x in seen:
            raise ShamirError("duplicate part detected")
        seen.add(x)
        x_samples.append(x)
    # Lagrange interpolation at x = 0, per byte (the basis depends only on the x values)
    basis = _lagrange_basis_at(x_samples, 0)
    secret = bytearray(first_len - 1)
    for idx in range(first_len - 1):
        acc = 0
        for b, p in zip(basis, parts):
            acc ^= gf_mul_fast(p[idx], b)
        secret[idx] = acc
    return bytes(secret)


# ---------------------------------------------------------------------------
# Go compatibility helpers
# ---------------------------------------------------------------------------

GO_STATUS_TEXT = {
    100: "Continue", 101: "Switching Protocols", 102: "Processing", 103: "Early Hints",
    200: "OK", 201: "Created", 202: "Accepted", 203: "Non-Authoritative Information",
    204: "No Content", 205: "Reset Content", 206: "Partial Content", 207: "Multi-Status",
    208: "Already Reported", 226: "IM Used", 300: "Multiple Choices",
    301: "Moved Permanently", 302: "Found", 303: "See Other", 304: "Not Modified",
    305: "Use Proxy", 307: "Temporary Redirect", 308: "Permanent Redirect",
    400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
    407: "Proxy Authentication Required", 408: "Request Timeout", 409: "Conflict",
    410: "Gone", 411: "Length Required", 412: "Precondition Failed",
    413: "Request Entity Too Large", 414: "Request URI Too Long",
    415: "Unsupported Media Type", 416: "Requested Range Not Satisfiable",
    417: "Expectation Failed", 418: "I'm a teapot", 421: "Misdirected Request",
    422: "Unprocessable Entity", 423: "Locked", 424: "Failed Dependency",
    425: "Too Early", 426: "Upgrade Required", 428: "Precondition Required",
    429: "Too Many Requests", 431: "Request Header Fields Too Large",
    451: "Unavailable For Legal Reasons", 500: "Internal Server Error",
    501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
    504: "Gateway Timeout", 505: "HTTP Version Not Supported",
    506: "Variant Also Negotiates", 507: "Insufficient Storage", 508: "Loop Detected",
    510: "Not Extended", 511: "Network Authentication Required",
}


def go_status_line(proto: str, code: int) -> str:
    text = GO_STATUS_TEXT.get(code)
    if text:
        return f"{proto} {code} {text}\r\n"
    return f"{proto} {code:03d} status code {code}\r\n"


def go_body_allowed(code: int) -> bool:
    return not (100 <= code <= 199 or code in (204, 304))


def _go_escape(s: str) -> str:
    # Go's json.Encoder escapes <, >, & and U+2028/U+2029 (they only occur inside strings)
    return (s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def go_json(obj: Any) -> bytes:
    """Bytes exactly as Go's json.NewEncoder(w).Encode(obj): compact + '\\n'."""
    return (_go_escape(json.dumps(obj, separators=(",", ":"), ensure_ascii=False)) + "\n").encode()


def go_json_indent(obj: Any) -> str:
    """json.MarshalIndent(obj, "", "  ") as printed by the Vault CLI (+ '\\n')."""
    return _go_escape(json.dumps(obj, indent=2, ensure_ascii=False)) + "\n"


_GO_INT_RE = re.compile(r"^[+-]?[0-9]+$")


def go_atoi(s: str) -> Optional[int]:
    """strconv.Atoi; None on error."""
    if not _GO_INT_RE.match(s):
        return None
    v = int(s)
    if v < -(2 ** 63) or v > 2 ** 63 - 1:
        return None
    return v


_GO_BOOLS = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
             "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}


def go_parse_bool(s: str) -> Optional[bool]:
    """strconv.ParseBool (what parseutil.ParseBool does for strings); None on error."""
    return _GO_BOOLS.get(s)


_PCT_BAD = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _go_query_unescape(s: str) -> Optional[str]:
    if _PCT_BAD.search(s):
        return None
    from urllib.parse import unquote_plus
    return unquote_plus(s, errors="surrogateescape")


def go_parse_query(qs: str) -> dict[str, list[str]]:
    """net/url.ParseQuery as used by r.URL.Query(): bad pairs are silently dropped."""
    out: dict[str, list[str]] = {}
    for pair in qs.split("&"):
        if ";" in pair or pair == "":
            continue
        k, _, v = pair.partition("=")
        k2, v2 = _go_query_unescape(k), _go_query_unescape(v)
        if k2 is None or v2 is None:
            continue
        out.setdefault(k2, []).append(v2)
    return out


def go_clean_path(p: str) -> str:
    """net/http cleanPath."""
    if p == "":
        return "/"
    if not p.startswith("/"):
        p = "/" + p
    np = posixpath.normpath(p)
    if np.startswith("//"):
        np = "/" + np.lstrip("/")
    if p.endswith("/") and np != "/":
        np += "/"
    return np


def go_decode_hex(s: str) -> Optional[bytes]:
    """hex.DecodeString (upper/lower case, even length, no whitespace)."""
    if len(s) % 2 or not all(c in string.hexdigits for c in s):
        return None
    return binascii.unhexlify(s)


_B64_STD_RE = re.compile(r"^[A-Za-z0-9+/]*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$")


def go_decode_b64std(s: str) -> Optional[bytes]:
    """base64.StdEncoding.DecodeString: padding required, \\r and \\n ignored."""
    s = s.replace("\r", "").replace("\n", "")
    if len(s) % 4 or not _B64_STD_RE.match(s):
        return None
    try:
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        return None


class GoJSONError(Exception):
    pass


def _quote_char(c: str) -> str:
    if c == "'":
        return "'\\''"
    if c == '"':
        return "'\"'"
    q = json.dumps(c)
    return "'" + q[1:-1] + "'"


def _json_type_name(v: Any) -> str:
    if isinstance(v, _Pairs):
        return "object"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


class _Pairs(list):
    """JSON object kept as an ordered list of (key, value) pairs."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid constant {name}")


def go_decode_struct(body: bytes, fields: list[tuple[str, str]], go_type: str) -> dict[str, Any]:
    """Decode like jsonutil.DecodeJSONFromReader into a Go struct.

    fields: (json name, kind) with kind in {"string","bool","int","[]string"}.
    go_type: e.g. "http.UnsealRequest". Keys match case-insensitively (exact match
    preferred), unknown keys are ignored, null leaves the zero value, only the first
    JSON value is read. An empty/whitespace body is io.EOF and decodes to zero values.
    Raises GoJSONError with (approximately) Go's error text.
    """
    text = body.decode("utf-8", errors="replace")
    s = text.lstrip(" \t\r\n")
    if s == "":
        return {}
    dec = json.JSONDecoder(object_pairs_hook=_Pairs, parse_constant=_reject_constant)
    try:
        value, _ = dec.raw_decode(s)
    except json.JSONDecodeError as e:
        if e.pos >= len(s) or e.msg.startswith("Unterminated string"):
            raise GoJSONError("unexpected EOF") from None
        c = _quote_char(s[e.pos])
        if e.msg.startswith("Expecting property name"):
            raise GoJSONError(f"invalid character {c} looking for beginning of object key string") from None
        if e.msg.startswith("Expecting ':'"):
            raise GoJSONError(f"invalid character {c} after object key") from None
        if e.msg.startswith("Expecting ','"):
            raise GoJSONError(f"invalid character {c} after object key:value pair") from None
        if e.msg.startswith("Invalid control character"):
            raise GoJSONError(f"invalid character {c} in string literal") from None
        if e.msg.startswith("Invalid \\escape") or e.msg.startswith("Invalid \\u"):
            raise GoJSONError(f"invalid character {c} in string escape code") from None
        raise GoJSONError(f"invalid character {c} looking for beginning of value") from None
    except ValueError:
        raise GoJSONError(f"invalid character {_quote_char(s[0])} looking for beginning of value") from None
    if value is None:
        return {}
    struct = go_type.split(".")[-1]
    if not isinstance(value, _Pairs):
        raise GoJSONError(f"json: cannot unmarshal {_json_type_name(value)} into Go value of type {go_type}")
    out: dict[str, Any] = {}
    kinds = dict(fields)
    for key, val in value:
        name = key if key in kinds else next((f for f, _ in fields if f.lower() == key.lower()), None)
        if name is None:
            continue
        kind = kinds[name]
        if val is None:
            continue
        val_t = _json_type_name(val)
        where = f"Go struct field {struct}.{name}"
        if kind == "string":
            if not isinstance(val, str):
                raise GoJSONError(f"json: cannot unmarshal {val_t} into {where} of type string")
        elif kind == "bool":
            if not isinstance(val, bool):
                raise GoJSONError(f"json: cannot unmarshal {val_t} into {where} of type bool")
        elif kind == "int":
            if isinstance(val, bool) or not isinstance(val, (int, float)):
                raise GoJSONError(f"json: cannot unmarshal {val_t} into {where} of type int")
            if isinstance(val, float) or not (-(2 ** 63) <= val < 2 ** 63):
                raise GoJSONError(f"json: cannot unmarshal number {val} into {where} of type int")
        elif kind == "[]string":
            if not isinstance(val, list) or isinstance(val, _Pairs):
                raise GoJSONError(f"json: cannot unmarshal {val_t} into {where} of type []string")
            for item in val:
                if item is not None and not isinstance(item, str):
                    raise GoJSONError(
                        f"json: cannot unmarshal {_json_type_name(item)} into {where} of type string")
            val = ["" if item is None else item for item in val]
        out[name] = val
    return out


def rfc3339_nano(ts_ns: Optional[int]) -> str:
    """Go time.Time JSON form (RFC3339Nano, UTC); zero time when ts_ns is None."""
    if ts_ns is None:
        return "0001-01-01T00:00:00Z"
    secs, ns = divmod(ts_ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    frac = f"{ns:09d}".rstrip("0")
    return base + ("." + frac if frac else "") + "Z"


def parse_version(v: str) -> tuple[int, int]:
    m = re.match(r"^v?(\d+)\.(\d+)", v)
    if not m:
        return (1, 19)
    return (int(m.group(1)), int(m.group(2)))


def _frac(value: int, unit: int) -> str:
    whole, rem = divmod(value, unit)
    if not rem:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}." + f"{rem:0{digits}d}".rstrip("0")


def human_duration(ns: int) -> str:
    """framework.humanDuration: time.Duration.String() without zero elements ("1h", "1h5s", "2m")."""
    s = go_duration(ns)
    if s.endswith("m0s"):
        s = s[:-2]
    i = s.find("h0m")
    if i > 0:
        s = s[:i + 1] + s[i + 3:]
    return s


def go_duration(ns: int) -> str:
    """time.Duration.String(): "1h0m0s", "59m58.5s", "1.5ms", "0s"."""
    if ns == 0:
        return "0s"
    sign, u = ("-" if ns < 0 else ""), abs(ns)
    if u < 1_000:
        return f"{sign}{u}ns"
    if u < 1_000_000:
        return f"{sign}{_frac(u, 1_000)}µs"
    if u < 1_000_000_000:
        return f"{sign}{_frac(u, 1_000_000)}ms"
    secs, frac = divmod(u, 1_000_000_000)
    h, rem = divmod(secs, 3600)
    m, sec = divmod(rem, 60)
    stext = _frac(sec * 1_000_000_000 + frac, 1_000_000_000) + "s"
    if h:
        return f"{sign}{h}h{m}m{stext}"
    if m:
        return f"{sign}{m}m{stext}"
    return sign + stext


_GO_DUR_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
                 "h": 3600.0, "d": 86400.0}
_GO_DUR_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h|d)")


def parse_duration_second(v: Any) -> Optional[float]:
    """parseutil.ParseDurationSecond: a number (seconds), "3600", or a Go duration ("1h", "90m", "2d")."""
    if v is None or v == "":
        return 0.0
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if not isinstance(v, str):
        return None
    t = v.strip()
    if re.fullmatch(r"-?\d+", t):
        return float(int(t))
    pos, total = 0, 0.0
    while pos < len(t):
        m = _GO_DUR_RE.match(t, pos)
        if not m:
            return None
        total += float(m.group(1)) * _GO_DUR_UNITS[m.group(2)]
        pos = m.end()
    return total if t else None



# ---------------------------------------------------------------------------
# HTTP plumbing types
# ---------------------------------------------------------------------------

@dataclasses.dataclass
class Request:
    method: str
    path: str                   # path only, no query
    raw_query: str
    query: dict[str, list[str]]
    headers: Any                # email.message.Message (case-insensitive .get)
    body: bytes
    client: str
    conn_id: int
    tls: bool
    too_large: bool = False
    body_reader: Optional["BodyReader"] = None   # streamed request body (snapshot restore)

    def token(self) -> str:
        tok = self.headers.get("X-Vault-Token") or ""
        if tok:
            return tok
        auth = self.headers.get("Authorization") or ""
        if auth[:7].lower() == "bearer ":
            return auth[7:].strip()
        return ""


@dataclasses.dataclass
class Response:
    status: int
    headers: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    body: Optional[bytes] = b""
    stream: Optional[Iterable[bytes]] = None   # chunked body (snapshots); may raise StreamCut
    close: bool = False                        # send Connection: close
    drop: bool = False                         # close the connection without answering
    informational: list[int] = dataclasses.field(default_factory=list)  # 1xx sent first
    fault: Optional[str] = None                # stream fault applied (for the request log)
    sent: int = 0                              # streamed body bytes written


class VaultError(Exception):
    def __init__(self, status: int, *errors: str):
        super().__init__(errors[0] if errors else "")
        self.status = status
        self.errors = list(errors)


def json_response(status: int, obj: Any) -> Response:
    return Response(status, [("Content-Type", "application/json")], go_json(obj))


def respond_ok(obj: Any) -> Response:
    """Vault respondOk: 204 without a body for nil, 200 + JSON otherwise."""
    if obj is None:
        return Response(204, [("Content-Type", "application/json")], None)
    return json_response(200, obj)


def respond_error(status: int, *errors: str) -> Response:
    """Vault respondError (incl. the AdjustErrorStatusCode rules we need)."""
    if any("Vault is sealed" == e for e in errors):
        status = 503
    if any("http: request body too large" in e for e in errors):
        status = 413
    return json_response(status, {"errors": list(errors)})


class Router:
    """Exact routes first, then the longest matching prefix route, then the fallback."""

    def __init__(self, fallback: Callable[[Request], Response]):
        self.exact: dict[str, Callable[[Request], Response]] = {}
        self.prefixes: list[tuple[str, Callable[[Request], Response]]] = []
        self.fallback = fallback

    def add(self, path: str, fn: Callable[[Request], Response]) -> None:
        self.exact[path] = fn

    def add_prefix(self, prefix: str, fn: Callable[[Request], Response]) -> None:
        self.prefixes.append((prefix, fn))
        self.prefixes.sort(key=lambda p: -len(p[0]))

    def dispatch(self, req: Request) -> Response:
        fn = self.exact.get(req.path)
        if fn is None:
            for prefix, pfn in self.prefixes:
                if req.path.startswith(prefix):
                    fn = pfn
                    break
        return (fn or self.fallback)(req)


# ---------------------------------------------------------------------------
# Raft snapshot archive (hashicorp/raft-snapshot archive.go, vault-api.md §6)
# ---------------------------------------------------------------------------

SNAPSHOT_PATH = "/v1/sys/storage/raft/snapshot"
SNAPSHOT_FORCE_PATH = "/v1/sys/storage/raft/snapshot-force"
SNAPSHOT_PATHS = (SNAPSHOT_PATH, SNAPSHOT_FORCE_PATH)
SNAPSHOT_ENTRIES = ("meta.json", "state.bin", "SHA256SUMS", "SHA256SUMS.sealed")
SNAPSHOT_SMALL_LIMIT = 8192          # meta.json and both SUMS files (restore side)
SNAPSHOT_OUT_CHUNK = 64 * 1024       # gzip bytes per HTTP chunk
SNAPSHOT_IN_PIECE = 64 * 1024        # state.bin bytes generated per step
SEALED_SUMS_AAD = b"vault-sim/SHA256SUMS.sealed"
FORCE_HINT_SHAMIR = ("could not verify hash file, possibly the snapshot is using a different set of unseal keys; "
                     "use the snapshot-force API to bypass this check")
FORCE_HINT_AUTO = ("could not verify hash file, possibly the snapshot is using a different autoseal key; "
                   "use the snapshot-force API to bypass this check")


def state_bin_key(seed: int) -> bytes:
    return hashlib.sha256(b"vault-sim state.bin seed %d" % seed).digest()


def state_bin_chunks(seed: int, size: int, piece: int = SNAPSHOT_IN_PIECE) -> Iterator[bytes]:
    """state.bin content: the AES-256-CTR keystream with key SHA-256("vault-sim state.bin seed <seed>")
    and an all-zero initial counter block, truncated to `size` bytes. Deterministic, generated in
    pieces (constant memory), about 2 GB/s."""
    enc = Cipher(algorithms.AES(state_bin_key(seed)), modes.CTR(bytes(16))).encryptor()
    zeros = memoryview(bytes(piece))
    left = size
    while left > 0:
        n = min(piece, left)
        yield enc.update(zeros[:n])
        left -= n


def state_bin_sha256(seed: int, size: int) -> str:
    h = hashlib.sha256()
    for c in state_bin_chunks(seed, size):
        h.update(c)
    return h.hexdigest()


def _go_octal(b: bytearray, off: int, length: int, value: int) -> None:
    digits = format(value, "o").rjust(length - 1, "0")
    b[off:off + length - 1] = digits.encode()
    b[off + length - 1] = 0


def go_tar_header(name: str, size: int, mtime: int, mode: int = 0o600) -> bytes:
    """The 512-byte USTAR header Go's archive/tar writes for a regular file
    (typeflag '0', uid/gid 0, empty uname/gname, devmajor/devminor "0000000\\0")."""
    b = bytearray(512)
    nb = name.encode()
    b[0:len(nb)] = nb
    _go_octal(b, 100, 8, mode)
    _go_octal(b, 108, 8, 0)
    _go_octal(b, 116, 8, 0)
    if size < 8 ** 11:
        _go_octal(b, 124, 12, size)
    else:   # > 8 GiB: base-256 (Go would add a PAX record instead)
        b[124:136] = (size | (0x80 << 88)).to_bytes(12, "big")
    _go_octal(b, 136, 12, mtime)
    b[156] = ord("0")
    b[257:263] = b"ustar\x00"
    b[263:265] = b"00"
    _go_octal(b, 329, 8, 0)
    _go_octal(b, 337, 8, 0)
    b[148:156] = b" " * 8
    chk = sum(b)
    b[148:155] = ("%06o" % chk).encode() + b"\x00"
    b[155] = 0x20
    return bytes(b)


class GoGzip:
    """compress/gzip.Writer framing: header 1f 8b 08 00 <mtime 0> <xfl> ff, raw deflate, CRC32, ISIZE."""

    def __init__(self, level: int = 6):
        self.level = level
        self.z = zlib.compressobj(level, zlib.DEFLATED, -15)
        self.crc = 0
        self.size = 0

    def header(self) -> bytes:
        xfl = 2 if self.level == 9 else 4 if self.level == 1 else 0
        return b"\x1f\x8b\x08\x00\x00\x00\x00\x00" + bytes([xfl, 0xFF])

    def compress(self, data: bytes) -> bytes:
        self.crc = zlib.crc32(data, self.crc)
        self.size += len(data)
        return self.z.compress(data)

    def finish(self) -> bytes:
        return self.z.flush() + self.crc.to_bytes(4, "little") + (self.size & 0xFFFFFFFF).to_bytes(4, "little")


def _pb_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _pb_field(num: int, data: bytes) -> bytes:
    return _pb_varint(num << 3 | 2) + _pb_varint(len(data)) + data


def _pb_parse(data: bytes) -> dict[int, bytes]:
    """Length-delimited fields of a protobuf message (others skipped); ValueError on garbage."""
    out: dict[int, bytes] = {}
    i = 0

    def varint() -> int:
        nonlocal i
        shift = v = 0
        while True:
            if i >= len(data) or shift > 63:
                raise ValueError("truncated varint")
            b = data[i]
            i += 1
            v |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return v

    while i < len(data):
        key = varint()
        num, wt = key >> 3, key & 7
        if wt == 0:
            varint()
        elif wt == 2:
            n = varint()
            if i + n > len(data):
                raise ValueError("truncated field")
            out[num] = data[i:i + n]
            i += n
        elif wt == 1:
            i += 8
        elif wt == 5:
            i += 4
        else:
            raise ValueError("bad wire type")
    return out


def seal_wrap(key: bytes, plaintext: bytes, key_id: str) -> bytes:
    """A BlobInfo-shaped protobuf (1 ciphertext, 2 iv, 4 key_info{3 key_id}) - opaque to clients."""
    iv = secrets.token_bytes(12)
    ct = AESGCM(key).encrypt(iv, plaintext, SEALED_SUMS_AAD)
    return _pb_field(1, ct) + _pb_field(2, iv) + _pb_field(4, _pb_field(3, key_id.encode()))


def seal_unwrap(key: bytes, blob: bytes) -> bytes:
    f = _pb_parse(blob)
    if 1 not in f or 2 not in f:
        raise ValueError("not a wrapped value")
    return AESGCM(key).decrypt(f[2], f[1], SEALED_SUMS_AAD)


def snapshot_archive(meta: dict, state_size: int, seed: int, level: int,
                     seal: Callable[[bytes], bytes], info: dict) -> Iterator[bytes]:
    """Vault's snapshot stream, written on the fly: gzip(tar(meta.json, state.bin, SHA256SUMS,
    SHA256SUMS.sealed)), each entry mode 0600 with ModTime now, no directories, tar ended by two
    zero blocks (as Go's tar.Writer.Close, no record padding). Yields gzip bytes in ~64 KiB pieces.
    `meta` must already carry Size == state_size. Fills info["state_sha256"] and info["sums"]."""
    mtime = int(time.time())
    meta_bytes = go_json(meta)
    gz = GoGzip(level)
    out = bytearray(gz.header())

    def tar_pieces() -> Iterator[bytes]:
        yield go_tar_header("meta.json", len(meta_bytes), mtime)
        yield meta_bytes + bytes(-len(meta_bytes) % 512)
        yield go_tar_header("state.bin", state_size, mtime)
        h = hashlib.sha256()
        for piece in state_bin_chunks(seed, state_size):
            h.update(piece)
            yield piece
        yield bytes(-state_size % 512)
        sums = {"meta.json": hashlib.sha256(meta_bytes).hexdigest(), "state.bin": h.hexdigest()}
        names = list(sums)
        if secrets.randbelow(2):                  # Go map iteration order
            names.reverse()
        sums_text = "".join(f"{sums[n]}  {n}\n" for n in names).encode()
        info["state_sha256"] = sums["state.bin"]
        info["sums"] = sums_text.decode()
        yield go_tar_header("SHA256SUMS", len(sums_text), mtime)
        yield sums_text + bytes(-len(sums_text) % 512)
        sealed = seal(sums_text)
        yield go_tar_header("SHA256SUMS.sealed", len(sealed), mtime)
        yield sealed + bytes(-len(sealed) % 512)
        yield bytes(1024)

    for piece in tar_pieces():
        out += gz.compress(piece)
        if len(out) >= SNAPSHOT_OUT_CHUNK:
            yield bytes(out)
            out = bytearray()
    out += gz.finish()
    yield bytes(out)


class SnapshotReadError(Exception):
    def __init__(self, message: str, sealed: bool = False):
        super().__init__(message)
        self.sealed = sealed


class SnapshotArchiveReader:
    """Streaming restore-side check, in Vault's order (WriteToTempFileWithSealer / archive.read /
    hashList): gzip header, tar entries (only the four names; meta.json decoded as it completes),
    then SHA256SUMS.sealed opened with the seal (unless force), then every hash. Reading stops at
    the end of the tar: as in raft-snapshot's restore path the gzip trailer (CRC-32, length) is
    not checked (real OpenBao 2.7 takes an archive with a wrong CRC). Constant memory. Errors are
    SnapshotReadError with Vault-like text ("failed to read snapshot file: ...")."""

    def __init__(self) -> None:
        self.z = zlib.decompressobj(-15)
        self.in_bytes = 0
        self.gz_phase = "header"       # header -> body -> done (the trailer is never read)
        self.gz_buf = bytearray()      # pending gzip header bytes
        self.out_size = 0
        self.hdr = bytearray()
        self.cur: Optional[str] = None # name of the entry being read (None: metadata/skip)
        self.remaining = 0
        self.pad = 0
        self.zero_blocks = 0
        self.ended = False
        self.hashes = {"meta.json": hashlib.sha256(), "state.bin": hashlib.sha256()}
        self.small = {"meta.json": bytearray(), "SHA256SUMS": bytearray(), "SHA256SUMS.sealed": bytearray()}
        self.entries: list[str] = []
        self.state_bytes = 0
        self.meta: dict = {}

    @staticmethod
    def _fail(msg: str) -> SnapshotReadError:
        return SnapshotReadError("failed to read snapshot file: " + msg)

    @staticmethod
    def _gzip_header_len(b: bytes) -> Optional[int]:
        """Length of a complete gzip member header at the start of b, None if more bytes are needed."""
        if len(b) >= 3 and b[:3] != b"\x1f\x8b\x08":
            raise SnapshotReadError("failed to decompress snapshot: gzip: invalid header")
        if len(b) < 10:
            return None
        flags, i = b[3], 10
        if flags & 0x04:                       # FEXTRA
            if len(b) < i + 2:
                return None
            i += 2 + int.from_bytes(b[i:i + 2], "little")
        for bit in (0x08, 0x10):               # FNAME, FCOMMENT: zero-terminated
            if flags & bit:
                j = b.find(b"\x00", i)
                if j < 0:
                    return None
                i = j + 1
        if flags & 0x02:                       # FHCRC
            i += 2
        return i if len(b) >= i else None

    def feed(self, data: bytes) -> None:
        if not data:
            return
        self.in_bytes += len(data)
        if self.ended:
            return                             # Go's reader stops at the end of the tar
        if self.gz_phase == "header":
            self.gz_buf += data
            n = self._gzip_header_len(bytes(self.gz_buf))
            if n is None:
                return
            data, self.gz_buf = bytes(self.gz_buf[n:]), bytearray()
            self.gz_phase = "body"
        if self.gz_phase == "body":
            try:
                buf = data
                while buf and not self.z.eof and not self.ended:
                    out = self.z.decompress(buf, 256 * 1024)
                    self.out_size += len(out)
                    self._tar(out)
                    buf = self.z.unconsumed_tail
            except zlib.error as e:
                raise self._fail(f"failed reading snapshot: flate: corrupt input ({e})") from None
            if self.z.eof:
                self.gz_phase = "done"         # the trailer and anything after it are not read

    def _tar(self, data: bytes) -> None:
        mv = memoryview(data)
        i, n = 0, len(mv)
        while i < n and not self.ended:
            if self.remaining:
                take = min(self.remaining, n - i)
                self._absorb(mv[i:i + take])
                i += take
                self.remaining -= take
                if not self.remaining:
                    self._entry_done()
            elif self.pad:
                take = min(self.pad, n - i)
                i += take
                self.pad -= take
            else:
                take = min(512 - len(self.hdr), n - i)
                self.hdr += mv[i:i + take]
                i += take
                if len(self.hdr) == 512:
                    block, self.hdr = bytes(self.hdr), bytearray()
                    self._header(block)

    def _absorb(self, chunk: memoryview) -> None:
        name = self.cur
        if name in self.hashes:
            self.hashes[name].update(chunk)
        if name == "state.bin":
            self.state_bytes += len(chunk)
        elif name in self.small:
            if len(self.small[name]) + len(chunk) > SNAPSHOT_SMALL_LIMIT:
                raise self._fail(f"{name} is larger than {SNAPSHOT_SMALL_LIMIT} bytes")
            self.small[name] += chunk

    def _entry_done(self) -> None:
        if self.cur == "meta.json":
            try:
                meta = json.loads(bytes(self.small["meta.json"]))
                if not isinstance(meta, dict):
                    raise ValueError("not an object")
            except ValueError as e:
                raise self._fail(f"failed to decode snapshot metadata: {e}") from None
            self.meta = meta

    def _header(self, block: bytes) -> None:
        if block == bytes(512):
            self.zero_blocks += 1
            if self.zero_blocks == 2:
                self.ended = True
            return
        if self.zero_blocks:
            raise self._fail("failed reading snapshot: archive/tar: invalid tar header")
        stored = block[148:156].replace(b"\x00", b" ").strip()
        calc = sum(block[:148]) + 8 * 32 + sum(block[156:])
        try:
            ok = int(stored or b"x", 8) == calc
        except ValueError:
            ok = False
        if not ok:
            raise self._fail("failed reading snapshot: archive/tar: invalid tar header")
        raw_size = block[124:136]
        if raw_size[0] & 0x80:
            size = int.from_bytes(bytes([raw_size[0] & 0x7F]) + raw_size[1:], "big")
        else:
            try:
                size = int(raw_size.replace(b"\x00", b" ").strip() or b"0", 8)
            except ValueError:
                raise self._fail("failed reading snapshot: archive/tar: invalid tar header") from None
        typeflag = chr(block[156]) if block[156] else "0"
        self.remaining, self.pad = size, -size % 512
        if typeflag in "xgLK":         # PAX / GNU metadata for the next entry
            self.cur = None
            if not size:
                self.pad = 0
            return
        name = block[0:100].split(b"\x00", 1)[0].decode("utf-8", "replace")
        if block[257:263] == b"ustar\x00":
            prefix = block[345:500].split(b"\x00", 1)[0].decode("utf-8", "replace")
            if prefix:
                name = prefix + "/" + name
        if name not in SNAPSHOT_ENTRIES:
            raise self._fail(f"unexpected file {json.dumps(name)} in snapshot")
        self.entries.append(name)
        self.cur = name
        if not size:
            self._entry_done()

    def finish(self, open_sealed: Optional[Callable[[bytes], bytes]]) -> dict:
        """End of body: completeness, sealed hashes (unless open_sealed is None), hashes.
        Returns the decoded meta.json."""
        if self.in_bytes == 0:
            raise SnapshotReadError("failed to decompress snapshot: EOF")
        if self.gz_phase == "header":
            raise SnapshotReadError("failed to decompress snapshot: unexpected EOF")
        if not self.ended and (self.remaining or self.pad or self.hdr or self.gz_phase == "body"):
            where = "failed to read or write snapshot data" if (self.cur == "state.bin" and self.remaining) \
                else "failed reading snapshot"
            raise self._fail(f"{where}: unexpected EOF")
        sums = bytes(self.small["SHA256SUMS"])
        if open_sealed is not None:
            try:
                opened = open_sealed(bytes(self.small["SHA256SUMS.sealed"]))
            except Exception as e:  # noqa: BLE001 - any failure to open is "different seal"
                raise SnapshotReadError(f"failed to open the sealed hashes: {e}", sealed=True) from None
            if opened != sums:
                raise self._fail("sealed hashes do not match the unsealed hashes")
        seen: set[str] = set()
        for line in sums.decode("utf-8", "replace").splitlines():
            m = re.fullmatch(r"\s*([0-9a-fA-F]+)\s+(\S+)\s*", line)
            if not m or len(m.group(1)) % 2:
                raise self._fail("failed checking integrity of snapshot: unexpected EOF")
            digest, name = m.group(1).lower(), m.group(2)
            h = self.hashes.get(name)
            if h is None:
                raise self._fail(f"failed checking integrity of snapshot: list missing hash for {json.dumps(name)}")
            if digest != h.hexdigest():
                raise self._fail(f"failed checking integrity of snapshot: hash check failed for {json.dumps(name)}")
            seen.add(name)
        for name in self.hashes:
            if name not in seen:
                raise self._fail(f"failed checking integrity of snapshot: file missing for {json.dumps(name)}")
        # No concludeGzipRead here: raft-snapshot's restore path (WriteToTempFileWithSealer)
        # stops reading at the end of the tar, so the gzip trailer (CRC-32, length) is never
        # checked. Only `snapshot.Verify` checks it.
        return self.meta


class StreamCut(Exception):
    """Raised by a response stream to end it early (fault "cut")."""

    def __init__(self, clean: bool):
        super().__init__("stream cut")
        self.clean = clean


# ---------------------------------------------------------------------------
# Tokens and policies (vault-api.md §7)
# ---------------------------------------------------------------------------

INVALID_TOKEN_ERROR = "2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n"


def multierror(*errors: str) -> str:
    """hashicorp/go-multierror's text: how Vault's request handling wraps the errors of a logical
    request (an ACL denial, an unsupported operation, a backend's Go error)."""
    items = "".join(f"\t* {e}\n" for e in errors)
    return f"{len(errors)} error{'s' if len(errors) != 1 else ''} occurred:\n{items}\n"


ACL_DENIED_ERROR = multierror("permission denied")     # a valid token whose policies lack the capability
UNSUPPORTED_OPERATION_ERROR = multierror("unsupported operation")
TOKEN_FILE = "vault-sim-tokens.json"
SYSTEM_MAX_TTL = 768 * 3600          # Vault's default max lease TTL (32 days)
# capabilities per policy and (relative) path; "root" can do everything
POLICY_RULES: dict[str, dict[str, set[str]]] = {
    "default": {
        "auth/token/lookup-self": {"read"},
        "auth/token/renew-self": {"update"},
        "auth/token/revoke-self": {"update"},
    },
    "snapshot": {
        "sys/storage/raft/snapshot": {"read"},
    },
    "snapshot-restore": {
        "sys/storage/raft/snapshot": {"read", "update"},
        "sys/storage/raft/snapshot-force": {"update"},
    },
}


def policy_allows(policies: list[str], path: str, capability: str) -> bool:
    if "root" in policies:
        return True
    return any(capability in POLICY_RULES.get(p, {}).get(path, ()) for p in policies)


def method_capability(method: str) -> str:
    return {"GET": "read", "HEAD": "read", "POST": "update", "PUT": "update", "DELETE": "delete",
            "LIST": "list", "PATCH": "patch"}.get(method, "update")


def token_key(token: str) -> str:
    """Tokens are stored salted-hashed, never in clear (as Vault stores salted IDs)."""
    return hashlib.sha256(b"vault-sim token salt:" + token.encode()).hexdigest()


def make_service_token(ver: tuple[int, int]) -> str:
    if ver >= (1, 10):   # 1.10+ service tokens: "hvs." + ~91 base64url-ish characters
        alphabet = string.ascii_letters + string.digits + "_-"
        return "hvs.CAESI" + "".join(secrets.choice(alphabet) for _ in range(86))
    return "s." + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(24))


def make_accessor() -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(24))


class TokenStore:
    """Token entries keyed by token_key(token). In memory, or - with --state-dir - in
    <state-dir>/vault-sim-tokens.json under flock, so several simulator processes sharing one
    state dir (a simulated cluster) see the same tokens, like Vault's replicated token store."""

    def __init__(self, state_dir: Optional[str]):
        self.path = os.path.join(state_dir, TOKEN_FILE) if state_dir else None
        self._mem: dict[str, dict] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def txn(self, write: bool = False) -> Iterator[dict[str, dict]]:
        with self._lock:
            if not self.path:
                yield self._mem
                if write:
                    self._prune(self._mem)
                return
            fd = os.open(self.path + ".lock", os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                tokens: dict[str, dict] = {}
                if os.path.exists(self.path):
                    try:
                        with open(self.path, encoding="utf-8") as f:
                            tokens = json.load(f)
                    except (OSError, ValueError):
                        tokens = {}
                yield tokens
                if write:
                    self._prune(tokens)
                    atomic_write(self.path, json.dumps(tokens, indent=1) + "\n", 0o600)
            finally:
                os.close(fd)

    @staticmethod
    def _prune(tokens: dict[str, dict]) -> None:
        now = time.time()
        for k in [k for k, e in tokens.items() if e.get("expire") is not None and e["expire"] <= now - 60]:
            del tokens[k]

    def get(self, token: str) -> Optional[dict]:
        with self.txn() as t:
            e = t.get(token_key(token))
            return dict(e) if e else None


# ---------------------------------------------------------------------------
# Simulator state
# ---------------------------------------------------------------------------

ROLES = ("active", "standby", "perfstandby", "drsecondary", "haunhealthy", "removed")
AUTO_SEAL_TYPES = ("awskms", "transit", "gcpckms", "azurekeyvault", "ocikms", "pkcs11", "kmip")
STATE_FILE = "vault-sim-state.json"
STORED_KEYS_AAD = b"core/hsm/barrier-unseal-keys"
RECOVERY_KEY_AAD = b"core/recovery-key"
WRONG_KEY_MSG = ("unable to retrieve stored keys: invalid key: failed to decrypt keys from storage: "
                 "error decrypting seal wrapped value; cipher: message authentication failed")
MAX_REQUEST_SIZE = 32 * 1024 * 1024
STREAM_FAULT_KINDS = ("cut", "corrupt", "slow")    # applied to streamed snapshot bodies only
FAULT_KINDS = ("latency", "status", "garbage", "refuse", "hang", "close") + STREAM_FAULT_KINDS


@dataclasses.dataclass
class Fault:
    kind: str
    ms: int = 0
    code: int = 500
    paths: list[str] = dataclasses.field(default_factory=list)
    body: Optional[str] = None
    stage: str = "request"      # hang: "request" (after TLS) or "accept" (before TLS)
    rst: bool = False           # close: abort with RST instead of FIN
    count: Optional[int] = None # remaining applications; None = until cleared
    bytes: Optional[int] = None # cut: body bytes sent before the cut
    clean: bool = False         # cut: end with a proper terminating chunk instead of closing
    offset: Optional[int] = None  # corrupt: offset in the gzip stream
    xor: int = 0xFF             # corrupt: mask the byte is XORed with
    bps: Optional[int] = None   # slow: body bytes per second

    def matches(self, path: str) -> bool:
        return (not self.paths or path in self.paths) and (self.count is None or self.count > 0)

    def public(self) -> dict:
        d = dataclasses.asdict(self)
        own = {"cut": ("bytes", "clean"), "corrupt": ("offset", "xor"), "slow": ("bps",)}.get(self.kind, ())
        skip = {"bytes", "clean", "offset", "xor", "bps"} - set(own)
        return {k: v for k, v in d.items() if k not in skip and (v not in (None, [], "") or k == "kind")}


class Conn:
    def __init__(self, cid: int, sock: socket.socket, addr: Any, listener: "Listener"):
        self.id = cid
        # Our own dup of the fd: lets another thread shut the connection down even while
        # the owner thread wraps it in TLS, without any fd-reuse race. Closed in drop_conn.
        self.ctl = sock.dup()
        self.addr = addr
        self.listener = listener
        self.killed = False
        self.requests = 0

    def kill(self) -> None:
        """Shut the socket down from another thread (the owner thread then exits)."""
        self.killed = True
        try:
            self.ctl.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class Sim:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.stop_event = threading.Event()
        self.log_lock = threading.Lock()

        self.version: str = args.version
        self.ver = parse_version(self.version)
        self.enterprise = "+ent" in self.version or "+prem" in self.version
        self.build_date: str = args.build_date
        self.storage_type: str = args.storage_type
        self.ha_enabled = self.storage_type in ("raft", "consul", "zookeeper", "etcd", "dynamodb", "spanner")
        self.seal_type: str = args.seal_type
        self.auto = self.seal_type != "shamir"
        self.legacy_500: bool = args.legacy_wrong_key_500
        self.auto_unseal_delay: float = args.auto_unseal_delay
        self.active_delay: float = args.active_delay

        # persisted
        self.initialized = False
        self.barrier_shares = 0
        self.barrier_threshold = 0
        self.recovery_shares = 0
        self.recovery_threshold = 0
        self.stored_keys_blob: Optional[dict] = None   # AES-GCM(unseal key) over the "root key"
        self.recovery_blob: Optional[dict] = None      # AES-GCM(recovery key) over a known value
        self.cluster_name = ""
        self.cluster_id = ""
        self.root_token = ""

        # runtime
        self.sealed = True
        self.unlock_parts: list[bytes] = []
        self.unlock_nonce = ""
        self.unsealed_at: Optional[float] = None       # monotonic
        self.unsealed_wall_ns: Optional[int] = None
        self.role: str = args.role
        self.role_since = time.monotonic()
        self.generation = 0             # bumped on every (simulated) restart
        self.restarts = 0
        self.down = False               # restart in progress
        self.faults: dict[str, Fault] = {}
        self.init_shares_mem: list[bytes] = []   # shares generated by THIS process (memory only)

        # counters
        self.unseal_requests = 0
        self.unseal_key_submissions = 0
        self.foreign_shares = 0
        self.requests_total = 0
        self.connections_total = 0
        self.tls_handshake_failures = 0
        self.tls_reloads = 0             # reloads that swapped in a new certificate/key pair
        self.tls_reload_failures = 0     # reloads that kept the old pair (unreadable or invalid files)
        self.tls_reload_last_error: Optional[str] = None
        self.tls_cert_sha256: Optional[str] = None   # SHA-256 of the leaf certificate (DER) new handshakes get
        self.ignore_sighup: bool = args.ignore_sighup
        self.sighups = 0                 # SIGHUPs received, ignored ones included
        self.sighups_ignored = 0
        self.request_log: collections.deque = collections.deque(maxlen=2000)
        self.conns: dict[int, Conn] = {}
        self._next_conn = 0
        self.raft_index = 100
        self.raft_term = 1

        # raft snapshots
        self.node_id: str = args.node_id
        self.snapshot_size: int = args.snapshot_size
        self.snapshot_seed: int = args.snapshot_seed
        self.snapshot_gzip_level: int = args.snapshot_gzip_level
        self.snapshots_served = 0        # 200 snapshot streams started
        self.snapshots_completed = 0     # ... and written to the end (terminating chunk sent)
        self.snapshot_bytes_sent = 0     # gzip body bytes written, all streams
        self.last_snapshot: Optional[dict] = None
        self.restores = 0
        self.last_restore: Optional[dict] = None
        self.leader_address: Optional[str] = args.leader_address   # None: default; "": none known

        # tokens / AppRole
        self.tokens = TokenStore(args.state_dir)
        self.token_ttl: int = args.token_ttl
        self.token_max_ttl: int = args.token_max_ttl if args.token_max_ttl is not None else 4 * args.token_ttl
        self.approle: dict[str, Any] = {
            "role_id": args.approle_role_id, "secret_id": args.approle_secret_id,
            "role_name": args.approle_role_name, "policies": ["default", "snapshot"],
            "ttl": self.token_ttl, "max_ttl": self.token_max_ttl, "renewable": True,
        }
        self.approle_logins = 0
        self.approle_login_failures = 0
        self.token_renewals = 0
        self.started_wall = time.time()

        # network
        self.ssl_ctx: Optional[ssl.SSLContext] = None
        self.listeners: list[Listener] = []
        self.control: Optional[Listener] = None
        self.port: Optional[int] = None
        self.listen_host: Optional[str] = None

        self.router = self._build_router()
        self.state_path = os.path.join(args.state_dir, STATE_FILE) if args.state_dir else None

    # ----- logging -------------------------------------------------------
    def log(self, msg: str) -> None:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}Z"
        line = f"{ts} vault-sim[{os.getpid()}] {msg}\n"
        with self.log_lock:
            try:
                sys.stderr.write(line)
                sys.stderr.flush()
            except (OSError, ValueError):
                pass

    # ----- persistence ---------------------------------------------------
    def load_state(self) -> None:
        if not self.state_path or not os.path.exists(self.state_path):
            return
        with open(self.state_path, "r", encoding="utf-8") as f:
            st = json.load(f)
        if st.get("seal_type", "shamir") != self.seal_type:
            raise SystemExit(f"vault_sim: state in {self.state_path} has seal type "
                             f"{st.get('seal_type')!r}, but --seal-type is {self.seal_type!r} "
                             "(seal migration is not simulated)")
        self.initialized = bool(st.get("initialized"))
        self.barrier_shares = st.get("secret_shares", 0)
        self.barrier_threshold = st.get("secret_threshold", 0)
        self.recovery_shares = st.get("recovery_shares", 0)
        self.recovery_threshold = st.get("recovery_threshold", 0)
        self.stored_keys_blob = st.get("stored_keys_blob")
        self.recovery_blob = st.get("recovery_blob")
        self.cluster_name = st.get("cluster_name", "")
        self.cluster_id = st.get("cluster_id", "")
        self.root_token = st.get("root_token", "")

    def save_state(self) -> None:
        if not self.state_path:
            return
        st = {
            "format": 1,
            "seal_type": self.seal_type,
            "initialized": self.initialized,
            "secret_shares": self.barrier_shares,
            "secret_threshold": self.barrier_threshold,
            "recovery_shares": self.recovery_shares,
            "recovery_threshold": self.recovery_threshold,
            "stored_keys_blob": self.stored_keys_blob,
            "recovery_blob": self.recovery_blob,
            "cluster_name": self.cluster_name,
            "cluster_id": self.cluster_id,
            "root_token": self.root_token,
        }
        atomic_write(self.state_path, json.dumps(st, indent=2) + "\n", 0o600)

    # ----- crypto helpers ------------------------------------------------
    @staticmethod
    def _seal_blob(key: bytes, plaintext: bytes, aad: bytes) -> dict:
        nonce = secrets.token_bytes(12)
        ct = AESGCM(key).encrypt(nonce, plaintext, aad)
        return {"nonce": base64.b64encode(nonce).decode(), "ciphertext": base64.b64encode(ct).decode()}

    @staticmethod
    def _open_blob(key: bytes, blob: dict, aad: bytes) -> bool:
        try:
            AESGCM(key).decrypt(base64.b64decode(blob["nonce"]), base64.b64decode(blob["ciphertext"]), aad)
            return True
        except (InvalidTag, ValueError, KeyError):
            return False

    # ----- init ----------------------------------------------------------
    def initialize(self, secret_shares: int, secret_threshold: int, recovery_shares: int,
                   recovery_threshold: int, stored_shares: int = 0) -> dict:
        """Vault core.Initialize. Returns {keys, recovery_keys, root_token} (raw bytes)."""
        b_shares, b_threshold = secret_shares, secret_threshold
        if self.auto:
            b_shares, b_threshold = 1, 1   # stored keys: forced to 1/1
        err = seal_config_error(b_shares, b_threshold)
        if err:
            raise VaultError(400, f"invalid seal configuration: {err}")
        with self.lock:
            if self.initialized:
                raise VaultError(400, "Vault is already initialized")
            if self.auto:
                err = seal_config_error(recovery_shares, recovery_threshold)
                if err:
                    raise VaultError(400, f"invalid recovery configuration: {err}")
            unseal_key = secrets.token_bytes(32)
            root_key = secrets.token_bytes(32)
            keys: list[bytes] = []
            recovery_keys: list[bytes] = []
            if self.auto:
                # "KMS" wrapped; the simulator needs no key to auto-unseal.
                self.stored_keys_blob = None
                rkey = secrets.token_bytes(32)
                self.recovery_blob = self._seal_blob(rkey, b"recovery-key-check", RECOVERY_KEY_AAD)
                recovery_keys = [rkey] if recovery_shares == 1 else shamir_split(rkey, recovery_shares, recovery_threshold)
                self.recovery_shares, self.recovery_threshold = recovery_shares, recovery_threshold
                self.barrier_shares, self.barrier_threshold = 1, 1
            else:
                self.stored_keys_blob = self._seal_blob(unseal_key, root_key, STORED_KEYS_AAD)
                keys = [unseal_key] if secret_shares == 1 else shamir_split(unseal_key, secret_shares, secret_threshold)
                self.barrier_shares, self.barrier_threshold = secret_shares, secret_threshold
            self.init_shares_mem = list(recovery_keys if self.auto else keys)
            self.initialized = True
            self.cluster_name = "vault-cluster-" + secrets.token_hex(4)
            self.cluster_id = str(uuid.uuid4())
            self.root_token = make_root_token(self.ver)
            self.unlock_parts, self.unlock_nonce = [], ""
            self.save_state()
            self.cond.notify_all()
            return {"keys": keys, "recovery_keys": recovery_keys, "root_token": self.root_token}

    # ----- seal / unseal -------------------------------------------------
    def _seal_locked(self) -> None:
        self.sealed = True
        self.unlock_parts, self.unlock_nonce = [], ""
        self.unsealed_at = None
        self.unsealed_wall_ns = None
        self.cond.notify_all()

    def _unseal_locked(self) -> None:
        if self.sealed:
            self.raft_term += 1          # a new leadership term ...
            self.raft_index += 1         # ... starts with a no-op entry
        self.sealed = False
        self.unlock_parts, self.unlock_nonce = [], ""
        self.unsealed_at = time.monotonic()
        self.unsealed_wall_ns = time.time_ns()
        self.cond.notify_all()

    def seal(self) -> None:
        with self.lock:
            self._seal_locked()

    def force_unseal(self) -> None:
        with self.lock:
            if not self.initialized:
                raise VaultError(400, "Vault is not initialized")
            self._unseal_locked()

    def reset_unseal(self) -> None:
        with self.lock:
            if not self.sealed:
                raise VaultError(400, "vault is unsealed")
            self.unlock_parts, self.unlock_nonce = [], ""

    def submit_key(self, key: bytes, migrate: bool = False) -> None:
        """Vault core.unsealFragment. Raises VaultError; returns when recorded/unsealed."""
        with self.lock:
            if migrate:
                raise VaultError(500, "can't perform a seal migration, no migration seal found")
            if not self.initialized:
                raise VaultError(400, "Vault is not initialized")
            if len(key) < 16:
                raise VaultError(400, "invalid key: key is shorter than minimum 16 bytes")
            if len(key) > 32 + SHARE_OVERHEAD:
                raise VaultError(400, f"invalid key: key is longer than maximum {32 + SHARE_OVERHEAD} bytes")
            if not self.sealed:
                return
            if not self.unlock_parts and not self.unlock_nonce:
                self.unlock_nonce = str(uuid.uuid4())
            elif any(secrets.compare_digest(p, key) for p in self.unlock_parts):
                return  # duplicate share: silently ignored
            self.unlock_parts.append(bytes(key))
            threshold = self.recovery_threshold if self.auto else self.barrier_threshold
            if len(self.unlock_parts) < threshold:
                self.cond.notify_all()
                return
            parts = self.unlock_parts
            self.unlock_parts, self.unlock_nonce = [], ""   # cleared whatever the outcome
            self.cond.notify_all()
            if threshold == 1:
                combined = parts[0]
            else:
                try:
                    combined = shamir_combine(parts)
                except ShamirError as e:
                    raise VaultError(400, f"invalid key: failed to compute combined key: {e}") from None
            if self.auto:
                if len(combined) not in (16, 24, 32) or not self._open_blob(combined, self.recovery_blob or {}, RECOVERY_KEY_AAD):
                    raise VaultError(400, "invalid key: failed to verify recovery key: "
                                          "recovery key does not match submitted values")
            else:
                if len(combined) not in (16, 24, 32):
                    raise VaultError(400, f"invalid key: failed to setup unseal key: "
                                          f"crypto/aes: invalid key size {len(combined)}")
                if not self._open_blob(combined, self.stored_keys_blob or {}, STORED_KEYS_AAD):
                    raise VaultError(500 if self.legacy_500 else 400, WRONG_KEY_MSG)
            self._unseal_locked()

    def foreign_share(self, key_str: Optional[str], index: Optional[int]) -> dict:
        """Another operator submits one share (progress, new nonce) - not counted as a request."""
        key: Optional[bytes] = None
        if key_str:
            key = go_decode_hex(key_str)
            if key is None or not (16 <= len(key) <= 33):
                key = go_decode_b64std(key_str)
            if key is None:
                raise VaultError(400, "'key' must be a valid hex or base64 string")
        else:
            shares = list(self.init_shares_mem)
            if not shares and self.args.init_output and os.path.exists(self.args.init_output):
                with open(self.args.init_output, encoding="utf-8") as f:
                    out = json.load(f)
                hx = out.get("recovery_keys_hex" if self.auto else "unseal_keys_hex") or []
                shares = [binascii.unhexlify(h) for h in hx]
            if not shares:
                raise VaultError(409, "no share known to the simulator; pass {\"key\": ...}")
            idx = len(shares) - 1 if index is None else index
            if not 0 <= idx < len(shares):
                raise VaultError(400, f"index out of range 0..{len(shares) - 1}")
            key = shares[idx]
        with self.lock:
            self.foreign_shares += 1
            self.submit_key(key)
            return {"progress": len(self.unlock_parts), "nonce": self.unlock_nonce, "sealed": self.sealed}

    # ----- auto unseal ---------------------------------------------------
    def schedule_auto_unseal(self) -> None:
        if not self.auto:
            return
        gen = self.generation

        def run() -> None:
            with self.lock:
                if gen != self.generation or not self.initialized or not self.sealed or self.down:
                    return
                self._unseal_locked()
            self.log(f"auto-unsealed via {self.seal_type} seal")

        t = threading.Timer(self.auto_unseal_delay, run)
        t.daemon = True
        t.start()

    # ----- roles / derived state ----------------------------------------
    def effective_role(self) -> str:
        """Role now; an 'active' node is a plain standby for --active-delay after unsealing."""
        if (self.role == "active" and self.unsealed_at is not None
                and time.monotonic() < self.unsealed_at + self.active_delay):
            return "pending-active"
        return self.role

    def is_standby(self, role: str) -> bool:
        return self.sealed or role in ("standby", "perfstandby", "haunhealthy", "removed", "pending-active")

    def _heartbeat(self, role: str) -> tuple[Optional[bool], int]:
        """(ha_connection_healthy or None if no heartbeat record, last heartbeat ms)."""
        if self.sealed or not self.ha_enabled or role not in ("standby", "perfstandby", "haunhealthy"):
            return None, 0
        if role == "haunhealthy":
            return False, 10000 + int((time.monotonic() - self.role_since) * 1000)
        return True, 250 + secrets.randbelow(500)

    def api_addr(self) -> str:
        if self.args.api_addr:
            return self.args.api_addr
        scheme = "https" if self.ssl_ctx else "http"
        host = self.listen_host or "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"{scheme}://{host}:{self.port or 8200}"

    def leader_address_locked(self, role: str) -> str:
        """The active node's api_addr as this node knows it; "" when no leader is known."""
        if role in ("active", "drsecondary"):
            return self.api_addr()
        if role == "removed":
            return ""
        if self.leader_address is None:
            return "https://127.0.0.2:8200"
        return self.leader_address

    def active_time_ns(self) -> Optional[int]:
        if self.sealed or self.unsealed_wall_ns is None:
            return None
        return self.unsealed_wall_ns + int(self.active_delay * 1e9)

    # ----- bodies --------------------------------------------------------
    def health(self, q: dict[str, list[str]]) -> tuple[int, Optional[dict]]:
        """getSysHealth: (code, body); body None means 'respondError(code, nil)'."""
        v119 = self.ver >= (1, 19)
        v116 = self.ver >= (1, 16)
        standby_ok = perf_ok = False
        if "standbyok" in q:
            b = go_parse_bool(q["standbyok"][0])
            if b is None:
                return 400, None
            standby_ok = b
        if "perfstandbyok" in q:
            b = go_parse_bool(q["perfstandbyok"][0])
            if b is None:
                return 400, None
            perf_ok = b
        codes = {"uninitcode": 501, "sealedcode": 503, "standbycode": 429, "activecode": 200,
                 "drsecondarycode": 472, "performancestandbycode": 473}
        if v119:
            codes.update({"haunhealthycode": 474, "removedcode": 530})
        for name in list(codes):
            if name in q:
                val = go_atoi(q[name][0])
                if val is None:
                    return 400, None
                codes[name] = val
        with self.lock:
            role = self.effective_role()
            sealed, init = self.sealed, self.initialized
            standby = self.is_standby(role)
            perf = not sealed and role == "perfstandby"
            removed = v119 and role == "removed"
            hb_healthy, hb_ms = self._heartbeat(role) if v119 else (None, 0)
            if not v119 and role == "haunhealthy":
                hb_healthy = None
            dr = role == "drsecondary"
            if not init:
                code = codes["uninitcode"]
            elif removed:
                code = codes["removedcode"]
            elif sealed:
                code = codes["sealedcode"]
            elif hb_healthy is False:
                code = codes["haunhealthycode"]
            elif dr:
                code = codes["drsecondarycode"]
            elif perf:
                code = 200 if perf_ok else codes["performancestandbycode"]
            elif standby:
                code = 200 if standby_ok else codes["standbycode"]
            else:
                code = codes["activecode"]
            if sealed:
                perf_mode = dr_mode = "unknown"
            else:
                perf_mode, dr_mode = "disabled", ("secondary" if dr else "disabled")
            body: dict[str, Any] = {
                "initialized": init,
                "sealed": sealed,
                "standby": standby,
                "performance_standby": perf,
                "replication_performance_mode": perf_mode,
                "replication_dr_mode": dr_mode,
                "server_time_utc": int(time.time()),
                "version": self.version,
            }
            if v116:
                body["enterprise"] = self.enterprise
            if not sealed:
                body["cluster_name"] = self.cluster_name
                body["cluster_id"] = self.cluster_id
            if self.enterprise and init and not sealed and not standby:
                body["last_wal"] = self.raft_index
            if self.enterprise:
                body["license"] = {"state": "autoloaded", "expiry_time": "2030-01-01T00:00:00Z",
                                   "terminated": False}
            if v116:
                body["echo_duration_ms"] = 1 if (standby and not sealed) else 0
                body["clock_skew_ms"] = 0
                body["replication_primary_canary_age_ms"] = 0
            if v119:
                if self.storage_type == "raft":
                    body["removed_from_cluster"] = removed
                if hb_healthy is not None:
                    body["ha_connection_healthy"] = hb_healthy
                    if hb_ms:
                        body["last_request_forwarding_heartbeat_ms"] = hb_ms
            return code, body

    def seal_status(self) -> dict:
        with self.lock:
            role = self.effective_role()
            body: dict[str, Any] = {"type": self.seal_type, "initialized": self.initialized, "sealed": self.sealed}
            if not self.initialized:
                body.update({"t": 0, "n": 0, "progress": 0, "nonce": ""})
            elif self.auto:
                body.update({"t": self.recovery_threshold, "n": self.recovery_shares})
            else:
                body.update({"t": self.barrier_threshold, "n": self.barrier_shares})
            if self.initialized:
                body["progress"] = len(self.unlock_parts)
                body["nonce"] = self.unlock_nonce
            body["version"] = self.version
            if self.ver >= (1, 10):
                body["build_date"] = self.build_date
            body["migration"] = False
            if self.initialized and not self.sealed:
                body["cluster_name"] = self.cluster_name
                body["cluster_id"] = self.cluster_id
            body["recovery_seal"] = self.auto
            if self.auto and self.ver >= (1, 15):
                body["recovery_seal_type"] = "shamir"
            if self.storage_type:
                body["storage_type"] = self.storage_type
            if self.ver >= (1, 19) and self.storage_type == "raft" and self.initialized:
                body["removed_from_cluster"] = role == "removed"
            return body

    def leader(self) -> dict:
        with self.lock:
            role = self.effective_role()
            zero = rfc3339_nano(None)
            if not self.ha_enabled:
                body = {"ha_enabled": False, "is_self": False, "active_time": zero, "leader_address": "",
                        "leader_cluster_address": "", "performance_standby": False,
                        "performance_standby_last_remote_wal": 0}
                if self.enterprise:
                    body["last_wal"] = self.raft_index
                return body
            if self.sealed:
                raise VaultError(503, "Vault is sealed")
            is_self = role in ("active", "drsecondary")
            leader = self.leader_address_locked(role)
            m = re.match(r"^(\w+://)?(\[[^\]]+\]|[^:/]+)", leader)
            if is_self:       # this node's cluster address, as in its snapshots' raft configuration
                cluster = "https://" + self.cluster_addr()
            else:
                cluster = f"https://{m.group(2)}:8201" if (m and leader) else ""
            perf = role == "perfstandby"
            self.raft_index += 1
            body = {
                "ha_enabled": True,
                "is_self": is_self,
                "active_time": rfc3339_nano(self.active_time_ns()) if is_self else zero,
                "leader_address": leader,
                "leader_cluster_address": cluster,
                "performance_standby": perf,
                "performance_standby_last_remote_wal": self.raft_index if (perf and self.enterprise) else 0,
            }
            if self.enterprise and not perf and is_self:
                body["last_wal"] = self.raft_index
            if self.storage_type == "raft":
                body["raft_committed_index"] = self.raft_index
                body["raft_applied_index"] = self.raft_index
            return body

    # ----- control-side snapshot ----------------------------------------
    def public_state(self) -> dict:
        with self.lock:
            return {
                "pid": os.getpid(),
                "initialized": self.initialized,
                "sealed": self.sealed,
                "progress": len(self.unlock_parts),
                "nonce": self.unlock_nonce,
                "threshold": self.recovery_threshold if self.auto else self.barrier_threshold,
                "shares": self.recovery_shares if self.auto else self.barrier_shares,
                "seal_type": self.seal_type,
                "role": self.role,
                "effective_role": self.effective_role(),
                "version": self.version,
                "cluster_name": self.cluster_name,
                "cluster_id": self.cluster_id,
                "unseal_requests": self.unseal_requests,
                "unseal_key_submissions": self.unseal_key_submissions,
                "foreign_shares": self.foreign_shares,
                "requests_total": self.requests_total,
                "connections_open": len(self.conns),
                "connections_total": self.connections_total,
                "tls_handshake_failures": self.tls_handshake_failures,
                "tls_reloads": self.tls_reloads,
                "tls_reload_failures": self.tls_reload_failures,
                "tls_reload_last_error": self.tls_reload_last_error,
                "tls_cert_sha256": self.tls_cert_sha256,
                "ignore_sighup": self.ignore_sighup,
                "sighups": self.sighups,
                "sighups_ignored": self.sighups_ignored,
                "listening": bool(self.listeners),
                "down": self.down,
                "port": self.port,
                "unix_socket": self.args.unix_socket,
                "tls": self.ssl_ctx is not None,
                "restarts": self.restarts,
                "faults": [f.public() for f in self.faults.values()],
                "api_addr": self.api_addr(),
                "leader_address": self.leader_address_locked(self.effective_role()),
                "storage_type": self.storage_type,
                "raft_index": self.raft_index,
                "raft_term": self.raft_term,
                "snapshot_size": self.snapshot_size,
                "snapshot_seed": self.snapshot_seed,
                "snapshot_gzip_level": self.snapshot_gzip_level,
                "snapshots_served": self.snapshots_served,
                "snapshots_completed": self.snapshots_completed,
                "snapshot_bytes_sent": self.snapshot_bytes_sent,
                "last_snapshot": self.last_snapshot,
                "restores": self.restores,
                "last_restore": self.last_restore,
                "approle_logins": self.approle_logins,
                "approle_login_failures": self.approle_login_failures,
                "token_renewals": self.token_renewals,
                "tokens_active": self.count_tokens(),
                "token_ttl": self.approle["ttl"],
                "token_max_ttl": self.approle["max_ttl"],
            }

    # ----- request bookkeeping / faults --------------------------------
    def note_request(self, req: Request) -> None:
        with self.lock:
            self.requests_total += 1
            if req.path == "/v1/sys/unseal":
                self.unseal_requests += 1

    def record(self, req: Request, status: Optional[int], fault: Optional[str], ms: float,
               body_bytes: Optional[int] = None) -> None:
        with self.lock:
            self.request_log.append({
                "time": time.time(), "method": req.method, "path": req.path, "query": req.raw_query,
                "status": status, "fault": fault, "conn_id": req.conn_id, "ms": round(ms, 3),
                "has_token": bool(req.token()),
                "x_vault_request": req.headers.get("X-Vault-Request"),
                "user_agent": req.headers.get("User-Agent"),
                "body_bytes": body_bytes,
            })

    def take_faults(self, path: str) -> list[Fault]:
        with self.lock:
            out = []
            for f in list(self.faults.values()):
                if f.kind in ("refuse",) + STREAM_FAULT_KINDS or (f.kind == "hang" and f.stage == "accept"):
                    continue
                if f.matches(path):
                    out.append(f)
                    if f.count is not None:
                        f.count -= 1
                        if f.count <= 0:
                            self.faults.pop(f.kind, None)
            return out

    def take_stream_faults(self, path: str) -> dict[str, Fault]:
        """Stream faults for a snapshot body about to be streamed (counts consumed here only)."""
        with self.lock:
            out: dict[str, Fault] = {}
            for f in list(self.faults.values()):
                if f.kind in STREAM_FAULT_KINDS and f.matches(path):
                    out[f.kind] = dataclasses.replace(f)
                    if f.count is not None:
                        f.count -= 1
                        if f.count <= 0:
                            self.faults.pop(f.kind, None)
            return out

    def accept_hang_active(self) -> bool:
        with self.lock:
            f = self.faults.get("hang")
            return bool(f and f.stage == "accept")

    def wait_while(self, conn: Conn, pred: Callable[[], bool], timeout: Optional[float] = None) -> bool:
        """Block while pred() holds (under the lock). False if the connection was killed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.lock:
            while not conn.killed and not self.stop_event.is_set() and pred():
                remaining = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
                if remaining <= 0:
                    break
                self.cond.wait(remaining)
            return not conn.killed and not self.stop_event.is_set()

    def set_fault(self, spec: dict) -> Fault:
        kind = spec.get("kind")
        if kind not in FAULT_KINDS:
            raise VaultError(400, f"unknown fault kind {kind!r}; one of {', '.join(FAULT_KINDS)}")
        paths = list(spec.get("paths") or [])
        if kind in STREAM_FAULT_KINDS and not paths:
            paths = [SNAPSHOT_PATH]
        f = Fault(kind=kind, ms=int(spec.get("ms", 0)), code=int(spec.get("code", 500)),
                  paths=paths, body=spec.get("body"),
                  stage=spec.get("stage", "request"), rst=bool(spec.get("rst", False)),
                  count=spec.get("count"))
        if f.stage not in ("request", "accept"):
            raise VaultError(400, "stage must be 'request' or 'accept'")
        if kind == "cut":
            f.bytes, f.clean = int(spec.get("bytes", 1024)), bool(spec.get("clean", False))
            if f.bytes < 0:
                raise VaultError(400, "bytes must be >= 0")
        elif kind == "corrupt":
            f.offset, f.xor = int(spec.get("offset", 4096)), int(spec.get("xor", 0xFF))
            if f.offset < 0 or not 1 <= f.xor <= 255:
                raise VaultError(400, "offset must be >= 0 and xor 1..255")
        elif kind == "slow":
            f.bps = int(spec.get("bps", 65536))
            if f.bps <= 0:
                raise VaultError(400, "bps must be > 0")
        with self.lock:
            self.faults[kind] = f
            self.cond.notify_all()
        if kind == "refuse":
            self.sync_listeners()
        return f

    def clear_faults(self, kind: Optional[str] = None) -> None:
        with self.lock:
            if kind:
                self.faults.pop(kind, None)
            else:
                self.faults.clear()
            self.cond.notify_all()
        self.sync_listeners()

    # ----- tokens ------------------------------------------------------
    def root_entry(self) -> dict:
        return {"accessor": hashlib.sha256(b"accessor:" + self.root_token.encode()).hexdigest()[:24],
                "policies": ["root"], "ttl": 0, "max_ttl": 0, "renewable": False,
                "issue": self.started_wall, "expire": None, "path": "auth/token/root",
                "display_name": "root", "meta": None, "entity_id": "", "orphan": True, "index": 0,
                "last_renewal": None, "root": True}

    def lookup_token(self, token: str) -> Optional[dict]:
        """The live entry for a token, or None (unknown, expired or revoked)."""
        if not token:
            return None
        if self.root_token and secrets.compare_digest(token, self.root_token):
            e = self.tokens.get(token)       # only ever a revocation marker for the root token
            return None if e and e.get("revoked") else self.root_entry()
        e = self.tokens.get(token)
        if e is None or e.get("revoked"):
            return None
        if e.get("expire") is not None and time.time() >= e["expire"]:
            return None
        return e

    def authorize(self, req: Request, path: str, capability: str) -> tuple[Optional[Response], Optional[dict]]:
        """Token check as Vault's CheckToken: no token -> 403 permission denied; unknown, expired or
        revoked -> 403 with the two-error text; policy without the capability -> 403 with the
        one-error multierror text ("1 error occurred:\n\t* permission denied\n\n")."""
        tok = req.token()
        if not tok:
            return respond_error(403, "permission denied"), None
        entry = self.lookup_token(tok)
        if entry is None:
            return respond_error(403, INVALID_TOKEN_ERROR), None
        if not policy_allows(entry["policies"], path, capability):
            return respond_error(403, ACL_DENIED_ERROR), None
        return None, entry

    def issue_token(self, policies: list[str], ttl: int, max_ttl: int, renewable: bool, path: str,
                    display_name: str, meta: Optional[dict], entity_id: str, orphan: bool) -> tuple[str, dict]:
        now = time.time()
        if max_ttl and ttl > max_ttl:
            ttl = max_ttl
        with self.lock:
            self.raft_index += 1        # a token is a write
            index = self.raft_index
        token = make_service_token(self.ver)
        entry = {"accessor": make_accessor(), "policies": list(policies), "ttl": int(ttl),
                 "max_ttl": int(max_ttl), "renewable": bool(renewable) and ttl > 0, "issue": now,
                 "expire": (now + ttl) if ttl > 0 else None, "path": path, "display_name": display_name,
                 "meta": meta, "entity_id": entity_id, "orphan": orphan, "index": index,
                 "last_renewal": None}
        with self.tokens.txn(write=True) as t:
            t[token_key(token)] = entry
        return token, entry

    def count_tokens(self) -> int:
        now = time.time()
        with self.tokens.txn() as t:
            return sum(1 for e in t.values()
                       if not e.get("revoked") and (e.get("expire") is None or e["expire"] > now))

    def revoke_tokens(self, pred: Callable[[dict], bool]) -> int:
        with self.tokens.txn(write=True) as t:
            keys = [k for k, e in t.items() if not e.get("revoked") and pred(e)]
            for k in keys:
                del t[k]
            return len(keys)

    def revoke_token(self, token: str) -> bool:
        if self.root_token and secrets.compare_digest(token, self.root_token):
            with self.tokens.txn(write=True) as t:
                t[token_key(token)] = {"revoked": True, "expire": None}
            return True
        with self.tokens.txn(write=True) as t:
            return t.pop(token_key(token), None) is not None

    @staticmethod
    def auth_block(token: str, e: dict, lease_duration: int) -> dict:
        """The `auth` object of a login / renew response (api.SecretAuth field order)."""
        return {"client_token": token, "accessor": e["accessor"], "policies": list(e["policies"]),
                "token_policies": list(e["policies"]), "metadata": e["meta"],
                "lease_duration": lease_duration, "renewable": e["renewable"], "entity_id": e["entity_id"],
                "token_type": "service", "orphan": e["orphan"], "mfa_requirement": None, "num_uses": 0}

    def approle_login(self, role_id: str, secret_id: str) -> tuple[str, dict]:
        role = self.approle
        with self.lock:
            if not role_id:
                self.approle_login_failures += 1
                raise VaultError(500, "missing role_id")    # pathLoginUpdateAliasLookahead: a Go error
            if not role["role_id"] or not secrets.compare_digest(role_id, role["role_id"]):
                self.approle_login_failures += 1
                raise VaultError(400, "invalid role or secret ID")
            if not secret_id:
                self.approle_login_failures += 1
                raise VaultError(400, "missing secret_id")
            if not role["secret_id"] or not secrets.compare_digest(secret_id, role["secret_id"]):
                self.approle_login_failures += 1
                raise VaultError(400, "invalid role or secret ID")
            self.approle_logins += 1
        entity = str(uuid.uuid5(uuid.NAMESPACE_URL, "vault-sim-approle:" + role["role_id"]))
        return self.issue_token(role["policies"], int(role["ttl"]), int(role["max_ttl"]),
                                bool(role["renewable"]), "auth/approle/login", "approle",
                                {"role_name": role["role_name"]}, entity, True)

    def renew_token(self, token: str, increment: float) -> tuple[dict, int, list[str]]:
        """ExpirationManager.RenewToken + framework.CalculateTTL. -> (entry, lease_duration, warnings)."""
        key = token_key(token)
        with self.tokens.txn(write=True) as t:
            e = t.get(key)
            if e is None or e.get("revoked"):
                raise VaultError(400, "invalid lease ID")
            now = time.time()
            if e.get("expire") is None:
                raise VaultError(400, "lease is not renewable")
            if e["expire"] <= now:
                raise VaultError(400, "lease expired")
            if not e["renewable"]:
                raise VaultError(400, "lease is not renewable")
            # framework.CalculateTTL: now and the start time are truncated to the second
            ttl = increment if increment > 0 else float(e["ttl"])
            max_ttl = e["max_ttl"] or SYSTEM_MAX_TTL
            max_valid = int(e["issue"]) + max_ttl - int(now)
            if max_valid <= 0:      # a Go error, wrapped by the request handling -> 500
                raise VaultError(500, multierror("past the max TTL, cannot renew"))
            warnings = []
            if max_valid - ttl < 0:
                warnings.append(f"TTL of {json.dumps(human_duration(int(ttl * 1e9)))} exceeded the effective "
                                f"max_ttl of {json.dumps(human_duration(int(max_valid * 1e9)))}; "
                                "TTL value is capped accordingly")
                ttl = max_valid
            e["expire"] = now + ttl
            e["last_renewal"] = now
            t[key] = e
        with self.lock:
            self.token_renewals += 1
        return e, int(ttl), warnings

    # ----- raft snapshots ----------------------------------------------
    def seal_key(self) -> bytes:
        """Key standing in for this cluster's seal when wrapping SHA256SUMS.sealed: derived from the
        persisted seal material, so nodes sharing a state dir agree and another init differs."""
        material = json.dumps([self.seal_type, self.cluster_id, self.stored_keys_blob, self.recovery_blob],
                              sort_keys=True).encode()
        return hashlib.sha256(b"vault-sim seal-wrap\x00" + material).digest()

    def seal_sums(self, sums: bytes) -> bytes:
        return seal_wrap(self.seal_key(), sums, f"vault-sim-{self.seal_type}")

    def open_sealed(self, blob: bytes) -> bytes:
        try:
            return seal_unwrap(self.seal_key(), blob)
        except InvalidTag:
            raise ValueError("error decrypting seal wrapped value; cipher: message authentication failed") from None

    def cluster_addr(self) -> str:
        m = re.match(r"^(?:\w+://)?(\[[^\]]+\]|[^:/]+)(?::(\d+))?", self.api_addr())
        host = m.group(1) if m else "127.0.0.1"
        port = int(m.group(2)) + 1 if (m and m.group(2)) else 8201
        return f"{host}:{port}"

    def snapshot_meta_locked(self) -> dict:
        """A new snapshot's raft SnapshotMeta (Go field order, capitalised keys). Index grows by one."""
        self.raft_index += 1
        addr = self.cluster_addr()
        return {
            "Version": 1,
            "ID": "bolt-snapshot",          # Vault's BoltSnapshotStore: one stable ID
            "Index": self.raft_index,
            "Term": self.raft_term,
            "Peers": None,                  # null from BoltSnapshotStore: the voters are in Configuration
            "Configuration": {"Servers": [{"Suffrage": 0, "ID": self.node_id, "Address": addr}]},
            "ConfigurationIndex": 1,
            "Size": self.snapshot_size,
        }

    def snapshot_stream(self, req: Request, faults: dict[str, Fault], resp: Response) -> Iterator[bytes]:
        """The archive stream with stream faults applied and the byte counters kept."""
        with self.lock:
            meta = self.snapshot_meta_locked()
            size, seed, level = self.snapshot_size, self.snapshot_seed, self.snapshot_gzip_level
            self.snapshots_served += 1
            conn = self.conns.get(req.conn_id)
        info: dict[str, Any] = {}
        src = snapshot_archive(meta, size, seed, level, self.seal_sums, info)
        cut, corrupt, slow = faults.get("cut"), faults.get("corrupt"), faults.get("slow")
        sent = 0
        t0 = time.monotonic()
        self.log(f"snapshot {meta['ID']}: streaming {size} bytes of state"
                 + (f" (faults: {', '.join(sorted(faults))})" if faults else ""))

        def paced(chunk: bytes) -> Iterator[bytes]:
            nonlocal sent
            if not slow:
                pieces = [chunk]
            else:
                step = max(1, min(len(chunk), slow.bps // 20))
                pieces = [chunk[i:i + step] for i in range(0, len(chunk), step)]
            for piece in pieces:
                if slow:
                    due = t0 + (sent + len(piece)) / slow.bps
                    while not self.stop_event.is_set() and not (conn and conn.killed):
                        delay = due - time.monotonic()
                        if delay <= 0:
                            break
                        self.stop_event.wait(min(delay, 0.2))
                    if self.stop_event.is_set() or (conn and conn.killed):
                        raise ConnectionAbortedError("simulator stopping")
                yield piece
                sent += len(piece)
                resp.sent = sent
                with self.lock:
                    self.snapshot_bytes_sent += len(piece)

        for chunk in src:
            if corrupt and sent <= corrupt.offset < sent + len(chunk):
                b = bytearray(chunk)
                b[corrupt.offset - sent] ^= corrupt.xor
                chunk = bytes(b)
            if cut and sent + len(chunk) >= cut.bytes:
                yield from paced(chunk[:cut.bytes - sent])
                self.log(f"snapshot {meta['ID']}: cut after {sent} bytes ({'clean end' if cut.clean else 'connection closed'})")
                raise StreamCut(cut.clean)
            yield from paced(chunk)
        if cut and sent < cut.bytes:
            self.log(f"snapshot {meta['ID']}: stream ({sent} bytes) shorter than cut point {cut.bytes}")
        with self.lock:
            self.snapshots_completed += 1
            self.last_snapshot = {"id": meta["ID"], "index": meta["Index"], "term": meta["Term"],
                                  "size": size, "seed": seed, "state_sha256": info.get("state_sha256"),
                                  "bytes": sent}
        self.log(f"snapshot {meta['ID']}: done, {sent} bytes in {time.monotonic() - t0:.2f}s")

    def restore_snapshot(self, meta: dict, force: bool) -> None:
        """After a verified archive: the node's data becomes the snapshot's (raft index; tokens
        created after the snapshot's index are gone, as Vault's token store is the snapshot's)."""
        index = int(meta.get("Index") or 0)
        with self.lock:
            self.raft_index = index
            self.raft_term = max(self.raft_term, int(meta.get("Term") or 0))
            self.restores += 1
            self.last_restore = {"id": meta.get("ID", ""), "index": index, "term": meta.get("Term", 0),
                                 "force": force, "time": time.time()}
        dropped = self.revoke_tokens(lambda e: e.get("index", 0) > index)
        self.log(f"snapshot restored{' (force)' if force else ''}: raft index {index}, "
                 f"{dropped} token(s) newer than the snapshot dropped")

    # ----- connections / listeners --------------------------------------
    def new_conn(self, sock: socket.socket, addr: Any, listener: "Listener") -> Conn:
        with self.lock:
            self._next_conn += 1
            c = Conn(self._next_conn, sock, addr, listener)
            if listener.vault:
                self.conns[c.id] = c
                self.connections_total += 1
            return c

    def drop_conn(self, conn: Conn) -> None:
        with self.lock:
            self.conns.pop(conn.id, None)
            try:
                conn.ctl.close()
            except OSError:
                pass
            self.cond.notify_all()

    def kill_all_connections(self) -> int:
        with self.lock:
            conns = list(self.conns.values())
            for c in conns:
                c.kill()
            self.cond.notify_all()
            return len(conns)

    def make_ssl_context(self) -> Optional[ssl.SSLContext]:
        """A context for new handshakes, from one read of the cert and key files.

        The files are read once and the context is built from that copy, so the fingerprint in
        /state is that of the certificate actually served even when the files change meanwhile.
        Returns None without TLS; raises OSError/ssl.SSLError/ValueError for unreadable or
        invalid files (a key that does not match the certificate is ssl.SSLError)."""
        a = self.args
        if not a.tls_cert:
            return None
        with open(a.tls_cert, "rb") as f:
            cert_pem = f.read()
        with open(a.tls_key, "rb") as f:
            key_pem = f.read()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        with tempfile.TemporaryDirectory(prefix="vault-sim-tls-") as d:
            cert_copy, key_copy = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
            for path, data in ((cert_copy, cert_pem), (key_copy, key_pem)):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
            ctx.load_cert_chain(cert_copy, key_copy)
        ctx.set_alpn_protocols(["http/1.1"])
        if a.client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(a.client_ca)
        ctx.vault_sim_cert_sha256 = leaf_sha256(cert_pem)  # type: ignore[attr-defined]
        return ctx

    def use_ssl_context(self, ctx: Optional[ssl.SSLContext]) -> None:
        with self.lock:
            self.ssl_ctx = ctx
            self.tls_cert_sha256 = getattr(ctx, "vault_sim_cert_sha256", None) if ctx else None

    def reload_tls(self) -> bool:
        """SIGHUP: re-read cert/key from the same paths; keep the old pair on failure.

        Like Vault, the new pair applies to new connections only: serve_connection picks
        sim.ssl_ctx at accept time, and a kept-alive connection stays on the SSLSocket it was
        handshaken with."""
        if not self.args.tls_cert:
            return False
        try:
            ctx = self.make_ssl_context()
        except (OSError, ssl.SSLError, ValueError) as e:
            with self.lock:
                self.tls_reload_failures += 1
                self.tls_reload_last_error = str(e)
            self.log(f"Error(s) were encountered during reload: {e}; keeping the old certificate")
            return False
        self.use_ssl_context(ctx)
        with self.lock:
            self.tls_reloads += 1
            self.tls_reload_last_error = None
        self.log(f"TLS certificate reloaded (new handshakes only), sha256 {self.tls_cert_sha256}")
        return True

    def on_sighup(self) -> None:
        """The SIGHUP handler's work (on a thread of its own, not in the signal handler)."""
        with self.lock:
            self.sighups += 1
            ignore = self.ignore_sighup
            if ignore:
                self.sighups_ignored += 1
        if ignore:
            self.log("SIGHUP ignored (ignore mode): still serving the old certificate")
            return
        self.reload_tls()

    def _want_listening(self) -> bool:
        return not self.down and "refuse" not in self.faults and not self.stop_event.is_set()

    def sync_listeners(self) -> None:
        """Open or close the Vault listeners to match down/refuse state."""
        with self.lock:
            want = self._want_listening()
            have = bool(self.listeners)
            if want and not have:
                self.listeners = self._open_listeners()
            elif not want and have:
                ls, self.listeners = self.listeners, []
                for lst in ls:
                    lst.close()

    def _open_listeners(self) -> list["Listener"]:
        out = []
        a = self.args
        if a.listen:
            host, port = split_hostport(a.listen)
            if self.port is not None:
                port = self.port
            for attempt in range(100):
                try:
                    lst = Listener(self, (host, port), vault=True, tls=self.ssl_ctx is not None)
                    break
                except OSError as e:
                    if attempt == 99:
                        raise
                    self.log(f"rebind {host}:{port} failed ({e}); retrying")
                    time.sleep(0.05)
            self.port = lst.port
            self.listen_host = host
            out.append(lst)
        if a.unix_socket:
            out.append(Listener(self, a.unix_socket, vault=True, tls=False))
        for lst in out:
            lst.start()
        return out

    def restart(self, down_ms: int) -> dict:
        """Simulated process restart: drop listener + all connections, come back sealed."""
        with self.lock:
            self.generation += 1
            self.restarts += 1
            gen = self.generation
            self.down = True
            self._seal_locked()
        self.sync_listeners()
        killed = self.kill_all_connections()
        self.log(f"simulated restart: listener closed, {killed} connection(s) dropped, down {down_ms} ms")

        def come_back() -> None:
            with self.lock:
                if gen != self.generation:
                    return
                self.down = False
            self.sync_listeners()
            self.log("simulated restart: listening again (sealed)")
            self.schedule_auto_unseal()

        t = threading.Timer(max(0, down_ms) / 1000.0, come_back)
        t.daemon = True
        t.start()
        return {"ok": True, "down_ms": down_ms, "connections_dropped": killed, "restarts": self.restarts}

    def shutdown(self) -> None:
        self.stop_event.set()
        with self.lock:
            ls, self.listeners = self.listeners, []
            self.cond.notify_all()
        for lst in ls:
            lst.close()
        self.kill_all_connections()
        if self.control:
            self.control.close()

    # ----- routes ------------------------------------------------------
    def _build_router(self) -> Router:
        r = Router(fallback=vault_not_found)
        r.add("/v1/sys/health", lambda q: vault_health(self, q))
        r.add("/v1/sys/seal-status", lambda q: vault_seal_status(self, q))
        r.add("/v1/sys/unseal", lambda q: vault_unseal(self, q))
        r.add("/v1/sys/init", lambda q: vault_init(self, q))
        r.add("/v1/sys/leader", lambda q: vault_leader(self, q))
        r.add("/v1/sys/seal", lambda q: vault_seal(self, q))
        r.add(SNAPSHOT_PATH, lambda q: vault_snapshot(self, q))
        r.add(SNAPSHOT_FORCE_PATH, lambda q: vault_snapshot(self, q))
        r.add("/v1/auth/approle/login", lambda q: vault_approle_login(self, q))
        r.add("/v1/auth/token/lookup-self", lambda q: vault_token_lookup_self(self, q))
        r.add("/v1/auth/token/renew-self", lambda q: vault_token_renew_self(self, q))
        r.add("/v1/auth/token/revoke-self", lambda q: vault_token_revoke_self(self, q))
        r.add_prefix("/v1/", lambda q: vault_logical(self, q))
        return r


def seal_config_error(shares: int, threshold: int) -> Optional[str]:
    """SealConfig.Validate messages."""
    if shares < 1:
        return "shares must be at least one"
    if threshold < 1:
        return "threshold must be at least one"
    if shares > 1 and threshold == 1:
        return "threshold must be greater than one for multiple shares"
    if shares > 255:
        return "shares must be less than 256"
    if threshold > 255:
        return "threshold must be less than 256"
    if threshold > shares:
        return "threshold cannot be larger than shares"
    return None


def make_root_token(ver: tuple[int, int]) -> str:
    alphabet = string.ascii_letters + string.digits
    rand = "".join(secrets.choice(alphabet) for _ in range(24))
    return ("hvs." if ver >= (1, 10) else "s.") + rand


def init_output_json(seal_auto: bool, result: dict, req_shares: int, req_threshold: int) -> str:
    """`vault operator init -format=json` (machineInit key order, 2-space indent)."""
    keys, rkeys = result["keys"], result["recovery_keys"]
    out = {
        "unseal_keys_b64": [base64.b64encode(k).decode() for k in keys],
        "unseal_keys_hex": [k.hex() for k in keys],
        "unseal_shares": 1 if seal_auto else req_shares,
        "unseal_threshold": 1 if seal_auto else req_threshold,
        "recovery_keys_b64": [base64.b64encode(k).decode() for k in rkeys],
        "recovery_keys_hex": [k.hex() for k in rkeys],
        "recovery_keys_shares": req_shares if seal_auto else 0,
        "recovery_keys_threshold": req_threshold if seal_auto else 0,
        "root_token": result["root_token"],
    }
    return go_json_indent(out)


def atomic_write(path: str, data: str, mode: int) -> None:
    d = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(d, f".{os.path.basename(path)}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def leaf_sha256(cert_pem: bytes) -> str:
    """SHA-256 (hex) of the DER of the first certificate in a PEM file: what a client sees as
    the served certificate's fingerprint."""
    m = re.search(rb"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", cert_pem, re.S)
    if not m:
        raise ValueError("no PEM certificate in the certificate file")
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(m.group(0).decode("ascii"))).hexdigest()


def split_hostport(s: str) -> tuple[str, int]:
    if s.startswith("["):
        host, _, rest = s[1:].partition("]")
        port = rest.lstrip(":")
    else:
        host, _, port = s.rpartition(":")
    return host or "127.0.0.1", int(port or 0)


# ---------------------------------------------------------------------------
# Vault endpoint handlers
# ---------------------------------------------------------------------------

def vault_not_found(req: Request) -> Response:
    return Response(404, [("Content-Type", "text/plain; charset=utf-8"),
                          ("X-Content-Type-Options", "nosniff")], b"404 page not found\n")


def vault_health(sim: Sim, req: Request) -> Response:
    if req.method not in ("GET", "HEAD"):
        return respond_error(405)
    code, body = sim.health(req.query)
    if not 100 <= code <= 999:
        return Response(0, drop=True)   # Go's WriteHeader panics; the connection is dropped
    if req.method == "HEAD":
        # handleSysHealthHead: status only; Content-Type only when a body would exist
        return Response(code, [("Content-Type", "application/json")] if body is not None else [], None)
    if body is None:
        return respond_error(code)
    if 100 <= code <= 199:
        # informational header, then the implicit 200 carrying the body
        return Response(200, [("Content-Type", "application/json")], go_json(body), informational=[code])
    return json_response(code, body)


def vault_seal_status(sim: Sim, req: Request) -> Response:
    if req.method != "GET":
        return respond_error(405)
    return respond_ok(sim.seal_status())


UNSEAL_FIELDS = [("Key", "string"), ("Reset", "bool"), ("Migrate", "bool")]
INIT_FIELDS = [("secret_shares", "int"), ("secret_threshold", "int"), ("stored_shares", "int"),
               ("pgp_keys", "[]string"), ("recovery_shares", "int"), ("recovery_threshold", "int"),
               ("recovery_pgp_keys", "[]string"), ("root_token_pgp_key", "string")]


def parse_json_request(req: Request, fields: list[tuple[str, str]], go_type: str) -> dict:
    if req.too_large:
        raise VaultError(413, "failed to parse JSON input: http: request body too large")
    try:
        return go_decode_struct(req.body, fields, go_type)
    except GoJSONError as e:
        raise VaultError(400, f"failed to parse JSON input: {e}") from None


def vault_unseal(sim: Sim, req: Request) -> Response:
    if req.method not in ("PUT", "POST"):
        return respond_error(405)
    try:
        body = parse_json_request(req, UNSEAL_FIELDS, "http.UnsealRequest")
        if body.get("Reset"):
            sim.reset_unseal()
            return respond_ok(sim.seal_status())
        key_str = body.get("Key", "")
        if key_str == "":
            raise VaultError(400, "'key' must be specified in request body as JSON, or 'reset' set to true")
        with sim.lock:
            sim.unseal_key_submissions += 1
        key = go_decode_hex(key_str)
        if key is None or not (16 <= len(key) <= 32 + SHARE_OVERHEAD):
            key = go_decode_b64std(key_str)
            if key is None:
                raise VaultError(400, "'key' must be a valid hex or base64 string")
        sim.submit_key(key, migrate=bool(body.get("Migrate")))
    except VaultError as e:
        return respond_error(e.status, *e.errors)
    return respond_ok(sim.seal_status())


def vault_init(sim: Sim, req: Request) -> Response:
    if req.method == "GET":
        with sim.lock:
            return respond_ok({"initialized": sim.initialized})
    if req.method not in ("PUT", "POST"):
        return respond_error(405)
    try:
        body = parse_json_request(req, INIT_FIELDS, "http.InitRequest")
        g = lambda k: body.get(k) or 0  # noqa: E731
        barrier_flags = [n for n, present in (("secret_shares", g("secret_shares")),
                                              ("secret_threshold", g("secret_threshold")),
                                              ("pgp_keys", body.get("pgp_keys"))) if present]
        recovery_flags = [n for n, present in (("recovery_shares", g("recovery_shares")),
                                               ("recovery_threshold", g("recovery_threshold")),
                                               ("recovery_pgp_keys", body.get("recovery_pgp_keys"))) if present]
        if sim.auto and barrier_flags:
            raise VaultError(400, f"parameters {','.join(barrier_flags)} not applicable to seal type {sim.seal_type}")
        if not sim.auto and recovery_flags:
            raise VaultError(400, f"parameters {','.join(recovery_flags)} not applicable to seal type {sim.seal_type}")
        if body.get("pgp_keys") or body.get("recovery_pgp_keys") or body.get("root_token_pgp_key"):
            raise VaultError(400, "vault_sim: PGP-encrypted init output is not simulated")
        result = sim.initialize(g("secret_shares"), g("secret_threshold"), g("recovery_shares"),
                                g("recovery_threshold"), g("stored_shares"))
    except VaultError as e:
        return respond_error(e.status, *e.errors)
    resp: dict[str, Any] = {
        "keys": [k.hex() for k in result["keys"]],
        "keys_base64": [base64.b64encode(k).decode() for k in result["keys"]],
    }
    if result["recovery_keys"]:
        resp["recovery_keys"] = [k.hex() for k in result["recovery_keys"]]
        resp["recovery_keys_base64"] = [base64.b64encode(k).decode() for k in result["recovery_keys"]]
    resp["root_token"] = result["root_token"]
    if sim.auto:
        with sim.lock:   # UnsealWithStoredKeys: auto-unseal right away
            sim._unseal_locked()
    sim.log(f"initialized ({'recovery' if sim.auto else 'unseal'} shares "
            f"{len(result['recovery_keys'] or result['keys'])})")
    return respond_ok(resp)


def vault_leader(sim: Sim, req: Request) -> Response:
    if req.method != "GET":
        return respond_error(405)
    try:
        return respond_ok(sim.leader())
    except VaultError as e:
        return respond_error(e.status, *e.errors)


def vault_seal(sim: Sim, req: Request) -> Response:
    """PUT /v1/sys/seal (vault operator seal): root token needed."""
    if req.method not in ("PUT", "POST"):
        return respond_error(405)
    with sim.lock:
        if sim.sealed:
            return respond_ok(None)
        if sim.is_standby(sim.effective_role()):
            return respond_error(500, "vault cannot seal when in standby mode; please restart instead")
        err, _ = sim.authorize(req, "sys/seal", "sudo")
        if err:
            return err
        sim._seal_locked()
    sim.log("sealed via sys/seal")
    return respond_ok(None)


def logical_envelope(data: Any = None, auth: Any = None, warnings: Optional[list[str]] = None,
                     mount_type: str = "token") -> dict:
    """Vault's logical response envelope (http/logical.go, api.Secret field order)."""
    return {"request_id": str(uuid.uuid4()), "lease_id": "", "renewable": False, "lease_duration": 0,
            "data": data, "wrap_info": None, "warnings": warnings or None, "auth": auth,
            "mount_type": mount_type}


def redirect_location(leader: str, req: Request) -> str:
    """respondStandby: scheme + host of the active node's api_addr, same path and raw query."""
    from urllib.parse import urlsplit
    u = urlsplit(leader if "://" in leader else "https://" + leader)
    return f"{u.scheme or 'https'}://{u.netloc}{req.path}" + (f"?{req.raw_query}" if req.raw_query else "")


def vault_snapshot(sim: Sim, req: Request) -> Response:
    """GET (save) / POST|PUT (restore) sys/storage/raft/snapshot, POST|PUT snapshot-force (§6)."""
    force = req.path == SNAPSHOT_FORCE_PATH
    rel = req.path[len("/v1/"):]
    with sim.lock:
        if sim.sealed or not sim.initialized:
            return respond_error(503, "Vault is sealed")
        role = sim.effective_role()
        if sim.ha_enabled and sim.is_standby(role):
            # alwaysRedirectPaths: never forwarded, the client must follow (and resend token/body)
            leader = sim.leader_address_locked(role)
            if not leader:
                return respond_error(503, "no active Vault instance found")
            return Response(307, [("Location", redirect_location(leader, req))], b"")
    err, _ = sim.authorize(req, rel, method_capability(req.method))
    if err:
        return err
    if req.method not in (("POST", "PUT") if force else ("GET", "POST", "PUT")):
        return respond_error(405, UNSUPPORTED_OPERATION_ERROR)
    if sim.storage_type != "raft":
        return respond_error(400, "raft storage is not in use")
    if req.method == "GET":
        faults = sim.take_stream_faults(req.path)
        resp = Response(200, [("Content-Type", "application/gzip"), ("Content-Disposition", "attachment")], None)
        resp.stream = sim.snapshot_stream(req, faults, resp)
        resp.fault = ",".join(sorted(faults)) or None
        return resp
    return vault_snapshot_restore(sim, req, force)


def vault_snapshot_restore(sim: Sim, req: Request, force: bool) -> Response:
    reader = SnapshotArchiveReader()
    try:
        if req.body_reader is None:
            reader.feed(req.body)
        else:
            while True:
                data = req.body_reader.read(256 * 1024)
                if not data:
                    break
                reader.feed(data)
        meta = reader.finish(None if force else sim.open_sealed)
    except SnapshotReadError as e:
        if e.sealed:
            return respond_error(400, FORCE_HINT_AUTO if sim.auto else FORCE_HINT_SHAMIR)
        sim.log(f"raft snapshot restore: failed to write snapshot: {e}")
        return respond_error(500, multierror(str(e)))
    except (EOFError, OSError, ValueError):
        return respond_error(500, multierror("failed to read snapshot file: failed reading snapshot: unexpected EOF"))
    sim.restore_snapshot(meta, force)
    return respond_ok(None)


APPROLE_LOGIN_FIELDS = [("role_id", "string"), ("secret_id", "string")]


def vault_approle_login(sim: Sim, req: Request) -> Response:
    """POST auth/approle/login (unauthenticated)."""
    if req.method not in ("POST", "PUT"):
        return respond_error(405, UNSUPPORTED_OPERATION_ERROR)
    with sim.lock:
        if sim.sealed or not sim.initialized:
            return respond_error(503, "Vault is sealed")
    try:
        body = parse_json_request(req, APPROLE_LOGIN_FIELDS, "map[string]interface {}")
        token, e = sim.approle_login(body.get("role_id", ""), body.get("secret_id", ""))
    except VaultError as err:
        return respond_error(err.status, *err.errors)
    sim.log(f"approle login: token accessor {e['accessor']} ttl {e['ttl']}s policies {','.join(e['policies'])}")
    return json_response(200, logical_envelope(auth=Sim.auth_block(token, e, e["ttl"]), mount_type="approle"))


def token_lookup_data(token: str, e: dict) -> dict:
    """auth/token/lookup-self `data` (a Go map: keys sorted)."""
    now = time.time()
    expire = e.get("expire")
    d: dict[str, Any] = {
        "accessor": e["accessor"], "creation_time": int(e["issue"]), "creation_ttl": e["ttl"],
        "display_name": e["display_name"], "entity_id": e["entity_id"],
        "expire_time": rfc3339_nano(int(expire * 1e9)) if expire else None,
        "explicit_max_ttl": 0, "id": token, "issue_time": rfc3339_nano(int(e["issue"] * 1e9)),
        "meta": e["meta"], "num_uses": 0, "orphan": e["orphan"], "path": e["path"],
        "policies": list(e["policies"]), "renewable": e["renewable"],
        "ttl": max(0, int(expire - round(now))) if expire else 0, "type": "service",
    }
    if e.get("last_renewal"):
        d["last_renewal"] = rfc3339_nano(int(e["last_renewal"] * 1e9))
        d["last_renewal_time"] = int(e["last_renewal"])
    if e.get("root"):
        # handleLookup: issue_time and renewable come from the token's lease, which the root
        # token does not have
        del d["issue_time"], d["renewable"]
    return dict(sorted(d.items()))


def vault_token_lookup_self(sim: Sim, req: Request) -> Response:
    if req.method not in ("GET", "POST", "PUT"):
        return respond_error(405, UNSUPPORTED_OPERATION_ERROR)
    with sim.lock:
        if sim.sealed or not sim.initialized:
            return respond_error(503, "Vault is sealed")
    err, e = sim.authorize(req, "auth/token/lookup-self", method_capability(req.method))
    if err:
        return err
    return json_response(200, logical_envelope(data=token_lookup_data(req.token(), e), mount_type="token"))


def vault_token_renew_self(sim: Sim, req: Request) -> Response:
    if req.method not in ("POST", "PUT"):
        return respond_error(405, UNSUPPORTED_OPERATION_ERROR)
    with sim.lock:
        if sim.sealed or not sim.initialized:
            return respond_error(503, "Vault is sealed")
    err, e = sim.authorize(req, "auth/token/renew-self", "update")
    if err:
        return err
    try:
        text = req.body.decode("utf-8", "replace").strip()
        body = json.loads(text) if text else {}
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise VaultError(400, "failed to parse JSON input: json: cannot unmarshal into Go value of type map[string]interface {}")
        raw_inc = body.get("increment")
        inc = parse_duration_second(raw_inc)
        if inc is None or inc < 0:
            raise VaultError(400, f"error converting input {raw_inc} for field \"increment\"")
        if e.get("root"):
            raise VaultError(400, "invalid lease ID")     # RenewToken: the root token has no lease entry
        entry, lease, warnings = sim.renew_token(req.token(), inc)
    except json.JSONDecodeError as je:
        return respond_error(400, f"failed to parse JSON input: {je.msg}")
    except VaultError as ve:
        return respond_error(ve.status, *ve.errors)
    return json_response(200, logical_envelope(auth=Sim.auth_block(req.token(), entry, lease),
                                               warnings=warnings, mount_type="token"))


def vault_token_revoke_self(sim: Sim, req: Request) -> Response:
    if req.method not in ("POST", "PUT"):
        return respond_error(405, UNSUPPORTED_OPERATION_ERROR)
    with sim.lock:
        if sim.sealed or not sim.initialized:
            return respond_error(503, "Vault is sealed")
    err, _ = sim.authorize(req, "auth/token/revoke-self", "update")
    if err:
        return err
    sim.revoke_token(req.token())
    return respond_ok(None)


def vault_logical(sim: Sim, req: Request) -> Response:
    """Any other /v1/ path: a logical request. Sealed -> 503; token checked; root -> 404."""
    with sim.lock:
        if sim.sealed:
            return respond_error(503, "Vault is sealed")
    rel = req.path[len("/v1/"):]
    err, _ = sim.authorize(req, rel, method_capability(req.method))
    if err:
        return err
    return respond_error(404, f'no handler for route "{rel}". route entry not found.')


# ---------------------------------------------------------------------------
# Network: listener + connection handlers
# ---------------------------------------------------------------------------

class Listener:
    """A listening socket with its own accept thread; close() refuses new connections at once."""

    def __init__(self, sim: Sim, address: Any, vault: bool, tls: bool):
        self.sim = sim
        self.vault = vault
        self.tls = tls
        self.closed = False
        self.unix_path: Optional[str] = None
        if isinstance(address, str):
            self.unix_path = address
            try:
                os.unlink(address)
            except FileNotFoundError:
                pass
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(address)
            self.port = None
        else:
            host, port = address
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            family, _, _, _, sockaddr = infos[0]
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(sockaddr)
            except OSError:
                sock.close()
                raise
            self.port = sock.getsockname()[1]
        sock.listen(128)
        sock.setblocking(False)
        self.sock = sock
        self._wake_r, self._wake_w = socket.socketpair()
        self.thread = threading.Thread(target=self._loop, name="accept", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _loop(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.sock, selectors.EVENT_READ)
        sel.register(self._wake_r, selectors.EVENT_READ)
        try:
            while not self.closed:
                for key, _ in sel.select():
                    if key.fileobj is self._wake_r or self.closed:
                        return
                    try:
                        raw, addr = self.sock.accept()
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        if self.closed:
                            return
                        continue
                    raw.setblocking(True)
                    threading.Thread(target=serve_connection, args=(self.sim, raw, addr, self),
                                     name="conn", daemon=True).start()
        finally:
            sel.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.sock.close()      # from now on: connection refused
        except OSError:
            pass
        if self.unix_path:
            try:
                os.unlink(self.unix_path)
            except OSError:
                pass
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass


def serve_connection(sim: Sim, raw: socket.socket, addr: Any, listener: Listener) -> None:
    conn = sim.new_conn(raw, addr, listener)
    sock: socket.socket = raw
    peer = format_peer(addr)
    try:
        if listener.vault and sim.accept_hang_active():
            sim.wait_while(conn, sim.accept_hang_active)
            return
        if listener.tls:
            ctx = sim.ssl_ctx
            raw.settimeout(10)
            try:
                sock = ctx.wrap_socket(raw, server_side=True)
            except (ssl.SSLError, OSError) as e:
                with sim.lock:
                    sim.tls_handshake_failures += 1
                if not conn.killed:
                    sim.log(f"{peer} TLS handshake failed: {getattr(e, 'reason', None) or e}")
                return
        handler = VaultHandler if listener.vault else ControlHandler
        handler(sock, addr, sim, conn)
    except Exception as e:  # never a traceback for one connection
        if not conn.killed:
            sim.log(f"{peer} connection error: {type(e).__name__}: {e}")
    finally:
        sim.drop_conn(conn)
        try:
            sock.close()
        except OSError:
            pass
        try:
            raw.close()
        except OSError:
            pass


def format_peer(addr: Any) -> str:
    if isinstance(addr, tuple) and len(addr) >= 2:
        host = addr[0]
        return f"[{host}]:{addr[1]}" if ":" in host else f"{host}:{addr[1]}"
    return "unix"


class BodyReader:
    """A request body read on demand (Content-Length or chunked), for snapshot restores of any size."""

    def __init__(self, rfile: Any, length: Optional[int], chunked: bool):
        self.rfile = rfile
        self.chunked = chunked
        self.remaining = length or 0
        self.chunk_left = 0
        self.eof = not chunked and self.remaining == 0
        self.total = 0

    def read(self, n: int = 65536) -> bytes:
        """Up to n bytes; b"" at the end. EOFError/ValueError on a short or malformed body."""
        if self.eof:
            return b""
        if not self.chunked:
            data = self.rfile.read(min(n, self.remaining))
            if not data:
                raise EOFError("unexpected EOF")
            self.remaining -= len(data)
            self.eof = self.remaining == 0
            self.total += len(data)
            return data
        if self.chunk_left == 0:
            line = self.rfile.readline(65537)
            if not line:
                raise EOFError("unexpected EOF")
            size = int(line.split(b";", 1)[0].strip() or b"x", 16)
            if size == 0:
                while True:   # trailers
                    t = self.rfile.readline(65537)
                    if t in (b"\r\n", b"\n", b""):
                        break
                self.eof = True
                return b""
            self.chunk_left = size
        data = self.rfile.read(min(n, self.chunk_left))
        if not data:
            raise EOFError("unexpected EOF")
        self.chunk_left -= len(data)
        self.total += len(data)
        if self.chunk_left == 0:
            self.rfile.readline(65537)
        return data

    def drain(self, limit: int) -> bool:
        """Read and drop the rest (at most `limit` bytes). True when the body was read to its end."""
        seen = 0
        try:
            while not self.eof and seen <= limit:
                seen += len(self.read(65536))
        except (EOFError, ValueError, OSError):
            return False
        return self.eof


STREAMED_BODY_PATHS = SNAPSHOT_PATHS
DRAIN_LIMIT = 64 * 1024 * 1024   # unread request body drained after an early answer (e.g. a 307)


class _BaseHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 300           # idle keep-alive timeout (s)
    is_vault = False

    def __init__(self, sock: socket.socket, addr: Any, sim: Sim, conn: Conn):
        self.sim = sim
        self.conn = conn
        self.peer = format_peer(addr)
        super().__init__(sock, addr, sim)

    # ----- quiet, robust loop ---------------------------------------------
    def handle(self) -> None:
        self.close_connection = True
        try:
            self.handle_one_request()
            while not self.close_connection and not self.conn.killed:
                self.handle_one_request()
        except (ConnectionError, TimeoutError, ssl.SSLError, OSError, ValueError):
            self.close_connection = True

    def finish(self) -> None:
        try:
            super().finish()
        except (OSError, ValueError):
            pass

    def handle_one_request(self) -> None:
        try:
            self.raw_requestline = self.rfile.readline(65537)
        except (TimeoutError, socket.timeout):
            self.close_connection = True
            return
        if len(self.raw_requestline) > 65536:
            self.requestline = ""
            self.request_version = "HTTP/1.1"
            self.send_error(414)
            return
        if not self.raw_requestline:
            self.close_connection = True
            return
        if not self.parse_request():
            return
        self.conn.requests += 1
        self.dispatch()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence BaseHTTPRequestHandler
        pass

    def send_error(self, code: int, message: Optional[str] = None, explain: Optional[str] = None) -> None:
        """Malformed request: answer like Go's net/http (plain text, close)."""
        self.close_connection = True
        text = GO_STATUS_TEXT.get(code, "Bad Request")
        body = f"{code} {text}".encode()
        head = (go_status_line("HTTP/1.1", code)
                + "Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n")
        try:
            self.wfile.write(head.encode() + body)
        except OSError:
            pass
        self.sim.log(f"{self.peer} {getattr(self, 'command', None) or '-'} - {code} (malformed request)")

    # ----- request reading --------------------------------------------------
    def read_body(self) -> Optional[bytes]:
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks = []
            total = 0
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    return None
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while True:   # trailers
                        t = self.rfile.readline(65537)
                        if t in (b"\r\n", b"\n", b""):
                            break
                    return b"".join(chunks)
                total += size
                if total > MAX_REQUEST_SIZE:
                    self._too_large = True
                    return b""
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
        cl = self.headers.get("Content-Length")
        if cl is None:
            return b""
        n = go_atoi(cl.strip())
        if n is None or n < 0:
            self.send_error(400)
            return None
        if n > MAX_REQUEST_SIZE:
            self._too_large = True      # body left unread; the connection is closed afterwards
            return b""
        data = self.rfile.read(n)
        if len(data) != n:
            self.close_connection = True
            return None
        return data

    def body_reader(self) -> Optional[BodyReader]:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return BodyReader(self.rfile, None, True)
        cl = self.headers.get("Content-Length")
        n = 0 if cl is None else go_atoi(cl.strip())
        if n is None or n < 0:
            self.send_error(400)
            return None
        return BodyReader(self.rfile, n, False)

    def build_request(self) -> Optional[Request]:
        self._too_large = False
        target = self.path
        if "://" in target.split("?", 1)[0]:
            from urllib.parse import urlsplit
            u = urlsplit(target)
            target = u.path + ("?" + u.query if u.query else "")
        path, _, qs = target.partition("?")
        reader: Optional[BodyReader] = None
        if self.is_vault and self.command in ("POST", "PUT") and path in STREAMED_BODY_PATHS:
            reader = self.body_reader()
            if reader is None:
                self.close_connection = True
                return None
            body: Optional[bytes] = b""
        else:
            body = self.read_body()
        if body is None:
            self.close_connection = True
            return None
        if self._too_large:
            self.close_connection = True
        return Request(method=self.command, path=path, raw_query=qs, query=go_parse_query(qs),
                       headers=self.headers, body=body, client=self.peer, conn_id=self.conn.id,
                       tls=isinstance(self.connection, ssl.SSLSocket), too_large=self._too_large,
                       body_reader=reader)

    # ----- response writing -------------------------------------------------
    def write_response(self, req: Request, resp: Response, extra_headers: list[tuple[str, str]]) -> None:
        if resp.drop:
            self.close_connection = True
            return
        proto = "HTTP/1.0" if self.request_version == "HTTP/1.0" else "HTTP/1.1"
        out = bytearray()
        headers = list(extra_headers) + list(resp.headers)
        for code in resp.informational:
            out += go_status_line(proto, code).encode()
            out += "".join(f"{k}: {v}\r\n" for k, v in headers).encode() + b"\r\n"
        headers.append(("Date", email.utils.formatdate(usegmt=True)))
        is_head = req.method == "HEAD"
        body = resp.body or b""
        streamed = resp.stream is not None and not is_head and go_body_allowed(resp.status)
        chunked = streamed and proto == "HTTP/1.1"      # HTTP/1.0: raw body ended by closing
        if chunked:
            headers.append(("Transfer-Encoding", "chunked"))
        elif streamed:
            self.close_connection = True
        elif go_body_allowed(resp.status) and not (is_head and not body):
            headers.append(("Content-Length", str(len(body))))
        if resp.close or self.close_connection or (self.headers.get("Connection") or "").lower() == "close":
            self.close_connection = True
            headers.append(("Connection", "close"))
        out += go_status_line(proto, resp.status).encode()
        out += "".join(f"{k}: {v}\r\n" for k, v in headers).encode() + b"\r\n"
        if not is_head and go_body_allowed(resp.status) and not streamed:
            out += body
        self.wfile.write(bytes(out))
        if streamed:
            try:
                for chunk in resp.stream:  # type: ignore[union-attr]
                    if chunk:
                        self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" if chunked else chunk)
            except StreamCut as cut:
                if not (cut.clean and chunked):
                    # like a Go handler aborting mid-body: no terminating chunk, connection closed
                    self.close_connection = True
                    return
            if chunked:
                self.wfile.write(b"0\r\n\r\n")


class VaultHandler(_BaseHandler):
    is_vault = True

    def dispatch(self) -> None:
        sim = self.sim
        t0 = time.monotonic()
        req = self.build_request()
        if req is None:
            return
        sim.note_request(req)
        faults = sim.take_faults(req.path)
        by_kind = {f.kind: f for f in faults}
        fault_name = None
        if "latency" in by_kind:
            fault_name = "latency"
            if not sim.wait_while(self.conn, lambda: True, timeout=by_kind["latency"].ms / 1000.0):
                self.close_connection = True
                return
        resp: Optional[Response] = None
        if "hang" in by_kind:
            sim.log(f"{self.peer} {req.method} {req.path} - (fault: hang)")
            sim.wait_while(self.conn, lambda: "hang" in sim.faults)
            sim.record(req, None, "hang", (time.monotonic() - t0) * 1000)
            self.close_connection = True
            return
        if "close" in by_kind:
            sim.log(f"{self.peer} {req.method} {req.path} - (fault: close)")
            sim.record(req, None, "close", (time.monotonic() - t0) * 1000)
            self.close_connection = True
            if by_kind["close"].rst:
                try:   # l_onoff=1, l_linger=0: close() sends RST
                    self.conn.ctl.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                             b"\x01\x00\x00\x00\x00\x00\x00\x00")
                except OSError:
                    pass
            return
        if "garbage" in by_kind:
            fault_name = "garbage"
            g = by_kind["garbage"]
            body = (g.body if g.body is not None else "<html><body>502 upstream garbage \x01</body></html>")
            resp = Response(200, [("Content-Type", "text/html; charset=utf-8")], body.encode())
        elif "status" in by_kind:
            fault_name = "status"
            s = by_kind["status"]
            body_b = s.body.encode() if s.body is not None else go_json({"errors": []})
            resp = Response(s.code, [("Content-Type", "application/json"), ("Cache-Control", "no-store")], body_b)
        if resp is None:
            clean = go_clean_path(req.path)
            if clean != req.path:
                loc = clean + ("?" + req.raw_query if req.raw_query else "")
                resp = Response(301, [("Content-Type", "text/html; charset=utf-8"), ("Location", loc)],
                                f'<a href="{loc}">Moved Permanently</a>.\n\n'.encode())
            else:
                try:
                    resp = sim.router.dispatch(req)
                except Exception as e:  # a bug in a handler: 500, never a traceback on the wire
                    sim.log(f"handler error on {req.path}: {type(e).__name__}: {e}")
                    resp = respond_error(500)
            resp.headers.insert(0, ("Cache-Control", "no-store"))
        fault_name = fault_name or resp.fault
        try:
            self.write_response(req, resp, [])
        finally:
            status = None if resp.drop else resp.status
            ms = (time.monotonic() - t0) * 1000
            sim.record(req, status, fault_name, ms, resp.sent if resp.stream is not None else None)
            sim.log(f"{self.peer} {req.method} {req.path} {status if status is not None else '- (dropped)'}"
                    f"{' (fault: ' + fault_name + ')' if fault_name else ''} {ms:.1f}ms")
            br = req.body_reader
            if br is not None and not br.eof and not self.close_connection and not br.drain(DRAIN_LIMIT):
                self.close_connection = True


# ---------------------------------------------------------------------------
# Control channel
# ---------------------------------------------------------------------------

class ControlHandler(_BaseHandler):
    timeout = 60

    def dispatch(self) -> None:
        sim = self.sim
        req = self.build_request()
        if req is None:
            return
        try:
            spec = json.loads(req.body or b"{}") if req.body.strip() else {}
            if not isinstance(spec, dict):
                raise VaultError(400, "body must be a JSON object")
            status, obj = self.route(req, spec)
        except VaultError as e:
            status, obj = e.status, {"error": e.errors[0] if e.errors else ""}
        except (ValueError, TypeError) as e:
            status, obj = 400, {"error": str(e)}
        resp = Response(status, [("Content-Type", "application/json")], (json.dumps(obj) + "\n").encode())
        self.write_response(req, resp, [])
        sim.log(f"control {req.method} {req.path} {status}")
        if req.path == "/shutdown" and status == 200:
            threading.Thread(target=sim.stop_event.set, daemon=True).start()

    def route(self, req: Request, spec: dict) -> tuple[int, Any]:
        sim, m, p = self.sim, req.method, req.path
        if p == "/state" and m == "GET":
            return 200, sim.public_state()
        if p == "/requests" and m == "GET":
            with sim.lock:
                return 200, list(sim.request_log)
        if p == "/tokens" and m == "GET":
            now = time.time()
            with sim.tokens.txn() as t:
                return 200, [{"accessor": e["accessor"], "policies": e["policies"], "path": e["path"],
                              "renewable": e["renewable"], "index": e.get("index", 0),
                              "ttl_remaining": None if e.get("expire") is None else round(e["expire"] - now, 3),
                              "expired": e.get("expire") is not None and e["expire"] <= now}
                             for e in t.values() if not e.get("revoked")]
        if m != "POST":
            return 404, {"error": f"no control route {m} {p}"}
        if p == "/snapshot-size":
            with sim.lock:
                if "bytes" in spec:
                    n = int(spec["bytes"])
                    if n < 0:
                        raise VaultError(400, "bytes must be >= 0")
                    sim.snapshot_size = n
                if "seed" in spec:
                    sim.snapshot_seed = int(spec["seed"])
                if "gzip_level" in spec:
                    lvl = int(spec["gzip_level"])
                    if not 0 <= lvl <= 9:
                        raise VaultError(400, "gzip_level must be 0..9")
                    sim.snapshot_gzip_level = lvl
                return 200, {"bytes": sim.snapshot_size, "seed": sim.snapshot_seed,
                             "gzip_level": sim.snapshot_gzip_level}
        if p == "/raft":
            with sim.lock:
                if "index" in spec:
                    sim.raft_index = int(spec["index"])
                if "term" in spec:
                    sim.raft_term = int(spec["term"])
                return 200, {"index": sim.raft_index, "term": sim.raft_term}
        if p == "/leader":
            if "address" not in spec or not (spec["address"] is None or isinstance(spec["address"], str)):
                raise VaultError(400, 'body must be {"address": URL | "" | null}')
            with sim.lock:
                sim.leader_address = spec["address"]
                return 200, {"leader_address": sim.leader_address_locked(sim.effective_role())}
        if p == "/approle":
            role = sim.approle
            with sim.lock:
                for k in ("role_id", "secret_id", "role_name"):
                    if k in spec:
                        role[k] = None if spec[k] is None else str(spec[k])
                if "policies" in spec:
                    role["policies"] = [str(x) for x in spec["policies"]]
                if "ttl" in spec:
                    role["ttl"] = int(spec["ttl"])
                    if "max_ttl" not in spec and role["max_ttl"] < role["ttl"]:
                        role["max_ttl"] = 4 * role["ttl"]
                if "max_ttl" in spec:
                    role["max_ttl"] = int(spec["max_ttl"])
                if "renewable" in spec:
                    role["renewable"] = bool(spec["renewable"])
                return 200, {k: v for k, v in role.items() if k != "secret_id"}
        if p == "/tokens":
            policies = [str(x) for x in spec.get("policies", ["default", "snapshot"])]
            ttl = int(spec.get("ttl", sim.token_ttl))
            max_ttl = int(spec.get("max_ttl", sim.token_max_ttl if ttl <= sim.token_max_ttl else 4 * ttl))
            token, e = sim.issue_token(policies, ttl, max_ttl, bool(spec.get("renewable", True)),
                                       "auth/token/create", "token", None, "", False)
            return 200, {"token": token, "accessor": e["accessor"], "policies": e["policies"], "ttl": e["ttl"],
                         "max_ttl": e["max_ttl"], "renewable": e["renewable"],
                         "expire_time": rfc3339_nano(int(e["expire"] * 1e9)) if e["expire"] else None}
        if p == "/tokens/revoke":
            if spec.get("token"):
                return 200, {"revoked": int(sim.revoke_token(str(spec["token"])))}
            if spec.get("accessor"):
                acc = str(spec["accessor"])
                return 200, {"revoked": sim.revoke_tokens(lambda e: e.get("accessor") == acc)}
            raise VaultError(400, 'body must be {"token": T} or {"accessor": A}')
        if p == "/tokens/revoke-all":
            n = sim.revoke_tokens(lambda e: True)
            if spec.get("include_root") and sim.root_token:
                n += int(sim.revoke_token(sim.root_token))
            return 200, {"revoked": n}
        if p == "/seal":
            sim.seal()
            sim.log("sealed via control channel")
            return 200, sim.public_state()
        if p == "/unseal":
            sim.force_unseal()
            return 200, sim.public_state()
        if p == "/restart":
            return 200, sim.restart(int(spec.get("down_ms", 300)))
        if p == "/role":
            role = spec.get("role")
            if role not in ROLES:
                raise VaultError(400, f"role must be one of {', '.join(ROLES)}")
            with sim.lock:
                sim.role = role
                sim.role_since = time.monotonic()
            return 200, sim.public_state()
        if p == "/fault":
            f = sim.set_fault(spec)
            return 200, {"ok": True, "fault": f.public()}
        if p == "/fault/clear":
            sim.clear_faults(spec.get("kind"))
            return 200, {"ok": True}
        if p == "/foreign-share":
            return 200, sim.foreign_share(spec.get("key"), spec.get("index"))
        if p == "/requests/clear":
            with sim.lock:
                sim.request_log.clear()
                sim.unseal_requests = sim.unseal_key_submissions = sim.requests_total = 0
                sim.foreign_shares = 0
            return 200, {"ok": True}
        if p == "/reload-tls":
            return 200, {"ok": sim.reload_tls()}
        if p == "/sighup":
            if "ignore" in spec:
                if not isinstance(spec["ignore"], bool):
                    raise VaultError(400, "ignore must be true or false")
                with sim.lock:
                    sim.ignore_sighup = spec["ignore"]
                sim.log(f"SIGHUP will be {'ignored' if spec['ignore'] else 'honoured'}")
            with sim.lock:
                return 200, {"ignore_sighup": sim.ignore_sighup}
        if p == "/shutdown":
            return 200, {"ok": True}
        return 404, {"error": f"no control route {m} {p}"}


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------

def build_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="HashiCorp Vault HTTP API simulator (vaultkeeper tests)")
    p.add_argument("--listen", default=None,
                   help="HOST:PORT for the Vault API (PORT 0 = pick a free one); "
                        "default 127.0.0.1:8200 unless only --unix-socket is given")
    p.add_argument("--port-file", help="write the chosen TCP port here (atomically) once listening")
    p.add_argument("--unix-socket", help="also/only serve plain HTTP on this unix socket path")
    p.add_argument("--tls-cert", help="PEM certificate (chain) for the TCP listener; plain HTTP without it")
    p.add_argument("--tls-key", help="PEM private key for --tls-cert")
    p.add_argument("--client-ca", help="require client certificates signed by this CA (mTLS)")
    p.add_argument("--ignore-sighup", action="store_true",
                   help="log and count SIGHUP but do not reload the certificate (a Vault that never picks up "
                        "a renewal); control POST /sighup {\"ignore\": false} turns it off")
    p.add_argument("--control-listen", default="127.0.0.1:0", help="control channel HOST:PORT (plain HTTP)")
    p.add_argument("--control-port-file", help="write the control port here (atomically)")
    p.add_argument("--state-dir", help="persist seal config / encrypted blob / cluster info here")
    p.add_argument("--init-shares", type=int, help="initialise at startup (if not yet) with N shares "
                   "(recovery shares for auto-unseal types)")
    p.add_argument("--init-threshold", type=int, help="threshold for --init-shares")
    p.add_argument("--init-output", help="write `vault operator init -format=json` output here (0600)")
    p.add_argument("--seal-type", default="shamir", help="shamir | awskms | transit (| other auto types)")
    p.add_argument("--auto-unseal-delay", type=float, default=0.2,
                   help="auto-unseal types unseal themselves this many seconds after (re)start")
    p.add_argument("--legacy-wrong-key-500", action="store_true",
                   help="wrong unseal key -> 500 instead of 400 (Vault 1.3-1.12)")
    p.add_argument("--version", default="1.19.0", help="simulated Vault version (e.g. 1.15.4, 1.19.0+ent)")
    p.add_argument("--build-date", default="2025-03-04T12:36:40Z")
    p.add_argument("--storage-type", default="raft", help="raft (HA) | file | inmem | consul ...")
    p.add_argument("--role", default="active", choices=ROLES)
    p.add_argument("--active-delay", type=float, default=0.0,
                   help="after unsealing, report standby for this many seconds before becoming active")
    p.add_argument("--api-addr", help="api_addr reported by sys/leader (default: derived from --listen)")
    p.add_argument("--leader-address", help="the active node's api_addr as standby roles know it: reported "
                   "by sys/leader and used for 307 redirects; \"\" = no leader known "
                   "(default https://127.0.0.2:8200)")
    p.add_argument("--node-id", default="node1", help="raft node ID in snapshot meta.json")
    p.add_argument("--snapshot-size", type=int, default=1024 * 1024,
                   help="bytes of state.bin in each snapshot (default 1 MiB)")
    p.add_argument("--snapshot-seed", type=int, default=0,
                   help="seed of the deterministic state.bin content (see state_bin_chunks)")
    p.add_argument("--snapshot-gzip-level", type=int, default=6, choices=range(0, 10), metavar="0-9",
                   help="gzip level of the snapshot stream (6 = Go's default; 0 = stored, fastest)")
    p.add_argument("--approle-role-id", help="role_id of the one AppRole (no AppRole login without it)")
    p.add_argument("--approle-secret-id", help="secret_id of that AppRole")
    p.add_argument("--approle-role-name", default="vaultkeeper", help="role name (auth.metadata.role_name)")
    p.add_argument("--token-ttl", type=int, default=3600, help="TTL (s) of AppRole and control-created tokens")
    p.add_argument("--token-max-ttl", type=int, default=None, help="max TTL (s) for renewals (default 4 x ttl)")
    return p


def main(argv: Optional[list[str]] = None) -> int:
    args = build_arg_parser().parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        print("vault_sim: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    if (args.init_shares is None) != (args.init_threshold is None):
        print("vault_sim: --init-shares and --init-threshold go together", file=sys.stderr)
        return 2
    if args.listen is None and not args.unix_socket:
        args.listen = "127.0.0.1:8200"
    if args.state_dir:
        os.makedirs(args.state_dir, exist_ok=True)

    sim = Sim(args)
    sim.load_state()
    if args.init_shares is not None and not sim.initialized:
        try:
            if sim.auto:
                result = sim.initialize(0, 0, args.init_shares, args.init_threshold)
            else:
                result = sim.initialize(args.init_shares, args.init_threshold, 0, 0)
        except VaultError as e:
            print(f"vault_sim: init failed: {e.errors[0]}", file=sys.stderr)
            return 2
        if args.init_output:
            atomic_write(args.init_output,
                         init_output_json(sim.auto, result, args.init_shares, args.init_threshold), 0o600)
        sim.log(f"initialized at startup: {args.init_shares} shares, threshold {args.init_threshold}")

    try:
        sim.use_ssl_context(sim.make_ssl_context())
    except (OSError, ssl.SSLError, ValueError) as e:
        print(f"vault_sim: TLS setup failed: {e}", file=sys.stderr)
        return 2

    chost, cport = split_hostport(args.control_listen)
    sim.control = Listener(sim, (chost, cport), vault=False, tls=False)
    sim.control.start()
    try:
        sim.sync_listeners()
    except OSError as e:
        print(f"vault_sim: cannot listen: {e}", file=sys.stderr)
        return 2
    if args.port_file and sim.port is not None:
        atomic_write(args.port_file, f"{sim.port}\n", 0o644)
    if args.control_port_file:
        atomic_write(args.control_port_file, f"{sim.control.port}\n", 0o644)

    signal.signal(signal.SIGTERM, lambda *_: sim.stop_event.set())
    signal.signal(signal.SIGINT, lambda *_: sim.stop_event.set())
    signal.signal(signal.SIGHUP, lambda *_: threading.Thread(target=sim.on_sighup, daemon=True).start())

    where = []
    if sim.port is not None:
        where.append(f"{'https' if sim.ssl_ctx else 'http'}://{args.listen.rsplit(':', 1)[0]}:{sim.port}")
    if args.unix_socket:
        where.append(f"unix:{args.unix_socket}")
    sim.log(f"Vault {sim.version} simulator ({sim.seal_type}, {'initialized' if sim.initialized else 'uninitialized'}, "
            f"sealed) listening on {', '.join(where)}; control on 127.0.0.1:{sim.control.port}")
    sim.schedule_auto_unseal()

    while not sim.stop_event.wait(0.5):
        pass
    sim.log("shutting down")
    sim.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
