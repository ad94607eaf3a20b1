# SPDX-License-Identifier: Apache-2.0
"""Fidelity tests for vault_sim.py (the Vault HTTP API simulator) and testca.py.

Every test about Vault API behaviour that a real server can show runs twice, with the same
assertions: against the simulator (`[sim]`) and against a real OpenBao server (`[openbao]`, the
official `bao` binary, see openbao_target.py). Where Vault (what the simulator imitates) and OpenBao
differ, the expected value comes from the target's flavor (conftest.py), each a row of README.md's
"Known differences between Vault and OpenBao" table. Checks of the simulator's own bookkeeping
(its control channel) sit under `if t.sim:`.

The tests marked `sim_only` need what only the simulator can do: faults (cut, corrupt and slow
streams, 5xx, garbage, hangs), Vault-only status codes and versions (472/473/474/530, old Vault's
500 on a wrong key), a standby's 307, auto-unseal seals, its state files and control channel.

Clients are the real `hvac` where hvac has a method for the call, raw `requests`/sockets otherwise.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import http.client
import io
import json
import os
import re
import secrets
import socket
import ssl
import stat
import tarfile
import time
import urllib.error
import urllib.parse
import zlib

import hvac
import pytest
import requests

import vault_sim
from vault_sim import gf_div, gf_inv, gf_mul, shamir_combine, shamir_split, ShamirError

WRONG_KEY = ("unable to retrieve stored keys: invalid key: failed to decrypt keys from storage: "
             "error decrypting seal wrapped value; cipher: message authentication failed")   # Vault 1.15+
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# the health query vaultkeeper sends (Sources/VaultKeeper/Health/HealthClassifier.swift)
VK_HEALTH = ("/v1/sys/health?activecode=200&standbycode=429&drsecondarycode=472&performancestandbycode=473"
             "&haunhealthycode=474&uninitcode=501&sealedcode=503&removedcode=530")
SNAP = "/v1/sys/storage/raft/snapshot"
SNAP_FORCE = "/v1/sys/storage/raft/snapshot-force"
INVALID_TOKEN = "2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n"
ACL_DENIED = "1 error occurred:\n\t* permission denied\n\n"      # a valid token without the capability
ROLE_ID, SECRET_ID = "role-7f3c", "secret-5e2a91"
META_KEYS = ["Version", "ID", "Index", "Term", "Peers", "Configuration", "ConfigurationIndex", "Size"]
AUTH_KEYS = ["client_token", "accessor", "policies", "token_policies", "metadata", "lease_duration", "renewable",
             "entity_id", "token_type", "orphan", "mfa_requirement", "num_uses"]
FORCE_HINT = ("could not verify hash file, possibly the snapshot is using a different set of unseal keys; "
              "use the snapshot-force API to bypass this check")


def raw(sim, method, path, **kw):
    kw.setdefault("verify", sim.verify)
    kw.setdefault("timeout", 5)
    return requests.request(method, sim.url + path, **kw)


def unseal_errors(client, key):
    with pytest.raises(hvac.exceptions.VaultError) as ei:
        client.sys.submit_unseal_key(key)
    return type(ei.value), ei.value.errors


def multierror(*errors):
    return f"{len(errors)} error{'s' if len(errors) != 1 else ''} occurred:\n" + "".join(f"\t* {e}\n" for e in errors) + "\n"


def rfc3339_epoch(text):
    """Go's RFC 3339 with nanoseconds ("2026-12-07T12:37:33.035267551Z") -> Unix seconds."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z", text)
    assert m, text
    base = dt.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.timezone.utc).timestamp()
    return base + (int(m.group(2).ljust(9, "0")) / 1e9 if m.group(2) else 0.0)


def sleep_until(wall):
    time.sleep(max(0.0, wall - time.time()))


# ---------------------------------------------------------------------------
# Shamir / GF(2^8) unit tests
# ---------------------------------------------------------------------------

def test_gf256_known_vectors():
    assert gf_mul(0xE5, 0xE5) == 0x4C
    assert gf_mul(0x57, 0x83) == 0xC1
    assert gf_mul(0x57, 0x13) == 0xFE          # FIPS-197 example
    for a in range(1, 256):
        assert gf_mul(a, gf_inv(a)) == 1
        assert gf_mul(a, 1) == a and gf_mul(a, 0) == 0
    # the 0xE5 log/exp tables used for speed agree with the constant-time multiply everywhere
    assert len(set(vault_sim.GF_EXP[:255])) == 255                 # 0xE5 generates the group
    for a in range(256):
        for b in range(256):
            assert vault_sim.gf_mul_fast(a, b) == gf_mul(a, b)
        if a:
            assert gf_div(1, a) == gf_inv(a)
    assert gf_div(0, 7) == 0
    with pytest.raises(ZeroDivisionError):
        gf_div(1, 0)


def test_shamir_lagrange_known_answer():
    # f(x) = 0x42 + 0x11*x  ->  f(1) = 0x53, f(2) = 0x42 ^ 0x22 = 0x60
    assert shamir_combine([bytes([0x53, 1]), bytes([0x60, 2])]) == bytes([0x42])
    assert shamir_combine([bytes([0x60, 2]), bytes([0x53, 1])]) == bytes([0x42])


@pytest.mark.parametrize("n,t", [(2, 2), (3, 2), (5, 3), (7, 7), (255, 2)])
def test_shamir_split_combine_round_trip(n, t):
    secret = secrets.token_bytes(32)
    shares = shamir_split(secret, n, t)
    assert len(shares) == n
    assert all(len(s) == 33 for s in shares)
    xs = [s[-1] for s in shares]
    assert len(set(xs)) == n and 0 not in xs            # x is the LAST byte, unique, non-zero
    for _ in range(3):
        subset = [shares[i] for i in sorted(secrets.SystemRandom().sample(range(n), t))]
        assert shamir_combine(subset) == secret
    if n <= 16:
        assert shamir_combine(shares) == secret         # more than t shares also work
    if t > 2:
        assert shamir_combine(shares[: t - 1]) != secret  # t-1 shares give garbage (no integrity check)


def test_shamir_errors_match_vault():
    s = shamir_split(b"\x01" * 32, 3, 2)
    with pytest.raises(ShamirError, match="^duplicate part detected$"):
        shamir_combine([s[0], s[0][:-1] + bytes([s[0][-1]])])
    with pytest.raises(ShamirError, match="^all parts must be the same length$"):
        shamir_combine([s[0], s[1][:-2] + s[1][-1:]])
    with pytest.raises(ShamirError, match="^parts must be at least two bytes$"):
        shamir_combine([b"\x01", b"\x02"])
    with pytest.raises(ShamirError, match="^less than two parts"):
        shamir_combine([s[0]])
    with pytest.raises(ShamirError, match="^threshold must be at least 2$"):
        shamir_split(b"x", 3, 1)
    with pytest.raises(ShamirError, match="^parts cannot be less than threshold$"):
        shamir_split(b"x", 2, 3)
    with pytest.raises(ShamirError, match="^cannot split an empty secret$"):
        shamir_split(b"", 3, 2)


def test_go_helpers():
    assert vault_sim.go_json({"a": "<&>", "b": [], "c": None}) == b'{"a":"\\u003c\\u0026\\u003e","b":[],"c":null}\n'
    assert vault_sim.go_decode_hex("ABcd" * 8) == bytes.fromhex("abcd" * 8)
    assert vault_sim.go_decode_hex("abc") is None and vault_sim.go_decode_hex("ab cd") is None
    assert vault_sim.go_decode_b64std("QUJD") == b"ABC"
    assert vault_sim.go_decode_b64std("QUI") is None          # padding required
    assert vault_sim.go_decode_b64std("QUI=") == b"AB"
    assert vault_sim.go_parse_query("standbyok") == {"standbyok": [""]}
    assert vault_sim.go_parse_query("a=1;b=2&c=%zz&d=+x") == {"d": [" x"]}
    assert vault_sim.go_atoi("+299") == 299 and vault_sim.go_atoi("2_0") is None
    d = vault_sim.go_decode_struct(b'{"KEY":"a","reset":true,"x":1}', vault_sim.UNSEAL_FIELDS, "http.UnsealRequest")
    assert d == {"Key": "a", "Reset": True}
    with pytest.raises(vault_sim.GoJSONError, match="cannot unmarshal number into Go struct field UnsealRequest.Key of type string"):
        vault_sim.go_decode_struct(b'{"key":1}', vault_sim.UNSEAL_FIELDS, "http.UnsealRequest")
    assert vault_sim.go_decode_struct(b"  \n", vault_sim.UNSEAL_FIELDS, "http.UnsealRequest") == {}


# ---------------------------------------------------------------------------
# Both targets: the simulator and real OpenBao, same assertions
# ---------------------------------------------------------------------------

def test_init_and_unseal_flow(fresh_target):
    t, fl = fresh_target, fresh_target.flavor
    c = t.hvac()
    r = c.sys.read_health_status(method="GET")
    assert r.status_code == 501
    h = r.json()
    assert (h["initialized"], h["sealed"], h["standby"]) == (False, True, True)
    assert list(h) == fl.health_keys_sealed
    assert h["replication_dr_mode"] == h["replication_performance_mode"] == "unknown"
    assert (r.headers["Cache-Control"], r.headers["Content-Type"]) == ("no-store", "application/json")
    assert r.content.endswith(b"}\n") and b"\n" not in r.content[:-1]
    r = t.raw("HEAD", "/v1/sys/health")
    assert (r.status_code, r.content, r.headers["Content-Type"]) == (501, b"", "application/json")
    assert t.raw("GET", VK_HEALTH).status_code == 501
    assert c.sys.is_initialized() is False
    st = c.sys.read_seal_status()
    assert st == {**st, "type": "shamir", "initialized": False, "sealed": True, "t": 0, "n": 0,
                  "progress": 0, "nonce": "", "recovery_seal": False}
    r = t.raw("PUT", "/v1/sys/unseal", json={"key": "ab" * 16})
    assert (r.status_code, r.json()) == (400, {"errors": ["Vault is not initialized"]})
    r = t.raw("GET", "/v1/sys/leader")
    assert (r.status_code, r.json()) == (503, {"errors": ["Vault is sealed"]})

    init = c.sys.initialize(secret_shares=5, secret_threshold=3)
    assert list(init) == ["keys", "keys_base64", "root_token"]
    assert len(init["keys"]) == 5 and all(len(k) == 66 for k in init["keys"])
    assert all(base64.b64decode(b).hex() == h_ for b, h_ in zip(init["keys_base64"], init["keys"]))
    assert re.fullmatch(fl.root_token_re, init["root_token"])
    assert c.sys.is_initialized() is True
    with pytest.raises(hvac.exceptions.InvalidRequest) as ei:
        c.sys.initialize(secret_shares=5, secret_threshold=3)
    assert ei.value.errors == ["Vault is already initialized"]

    assert c.sys.read_health_status(method="GET").status_code == 503
    assert t.raw("GET", VK_HEALTH).status_code == 503
    keys = init["keys"]
    s1 = c.sys.submit_unseal_key(keys[0])
    assert (s1["sealed"], s1["t"], s1["n"], s1["progress"]) == (True, 3, 5, 1)
    assert UUID_RE.match(s1["nonce"])
    dup = c.sys.submit_unseal_key(keys[0])          # duplicate: ignored, progress & nonce unchanged
    assert (dup["progress"], dup["nonce"]) == (1, s1["nonce"])
    dup64 = c.sys.submit_unseal_key(init["keys_base64"][0])   # same bytes, other encoding: duplicate too
    assert (dup64["progress"], dup64["nonce"]) == (1, s1["nonce"])
    s2 = c.sys.submit_unseal_key(init["keys_base64"][1])   # base64 form counts as a new share
    assert (s2["progress"], s2["nonce"]) == (2, s1["nonce"])
    reset = c.sys.submit_unseal_key(reset=True)
    assert (reset["progress"], reset["nonce"], reset["sealed"]) == (0, "", True)
    s1b = c.sys.submit_unseal_key(keys[4])
    assert s1b["progress"] == 1 and s1b["nonce"] != s1["nonce"]

    done = c.sys.submit_unseal_keys(keys[2:5])
    assert done["sealed"] is False and done["progress"] == 0 and done["nonce"] == ""
    assert done["cluster_name"].startswith("vault-cluster-") and UUID_RE.match(done["cluster_id"])
    t.wait_active()
    h = c.sys.read_health_status(method="GET")
    assert isinstance(h, dict) and h["sealed"] is False and h["standby"] is False
    assert list(h) == fl.health_keys_active
    assert h["cluster_id"] == done["cluster_id"] and h["cluster_name"] == done["cluster_name"]
    assert h["replication_performance_mode"] == fl.active_replication_performance_mode
    assert t.raw("GET", VK_HEALTH).status_code == 200
    # already unsealed: any well-formed key -> 200 sealed:false; reset -> 400
    again = c.sys.submit_unseal_key(secrets.token_hex(33))
    assert again["sealed"] is False
    assert unseal_errors(c, None) == (hvac.exceptions.InvalidRequest,
                                      ["'key' must be specified in request body as JSON, or 'reset' set to true"])
    with pytest.raises(hvac.exceptions.InvalidRequest) as ei:
        c.sys.submit_unseal_key(reset=True)
    assert ei.value.errors == ["vault is unsealed"]
    if t.sim:
        st = t.sim.state()
        assert st["unseal_requests"] == 12 and st["sealed"] is False


def test_operator_init_output_and_wrong_shares(target):
    """The key file operators keep (`operator init -format=json`: the simulator's --init-output,
    real `bao operator init` for OpenBao), then shares that do not belong to it."""
    t, fl = target, target.flavor
    text = t.init_text
    out = json.loads(text)
    assert list(out) == ["unseal_keys_b64", "unseal_keys_hex", "unseal_shares", "unseal_threshold",
                         "recovery_keys_b64", "recovery_keys_hex", "recovery_keys_shares",
                         "recovery_keys_threshold", "root_token"]
    assert text.endswith("}\n") and '\n  "unseal_shares": 5,\n' in text
    assert out["recovery_keys_b64"] == out["recovery_keys_hex"] == fl.init_json_empty_recovery
    assert (out["unseal_shares"], out["unseal_threshold"], out["recovery_keys_shares"]) == (5, 3, 0)
    assert re.fullmatch(fl.root_token_re, out["root_token"])
    assert all(base64.b64decode(b).hex() == x for b, x in zip(out["unseal_keys_b64"], out["unseal_keys_hex"]))
    if t.sim:
        assert stat.S_IMODE(os.stat(t.sim.init_output).st_mode) == 0o600

    c = t.hvac()
    foreign = shamir_split(secrets.token_bytes(32), 5, 3)     # shares of a different key
    # two right + one foreign share (distinct x) combine to garbage -> the stored keys do not decrypt
    good = [bytes.fromhex(k) for k in out["unseal_keys_hex"][:2]]
    bad = next(f for f in foreign if f[-1] not in (good[0][-1], good[1][-1]))
    assert c.sys.submit_unseal_key(good[0].hex())["progress"] == 1
    assert c.sys.submit_unseal_key(good[1].hex())["progress"] == 2
    assert unseal_errors(c, bad.hex()) == (hvac.exceptions.InvalidRequest, [fl.wrong_key])
    st = c.sys.read_seal_status()
    assert (st["sealed"], st["progress"], st["nonce"]) == (True, 0, "")   # attempt cleared
    # same x coordinate, different bytes -> combine error
    twin = bytes(good[0][:-1][::-1]) + good[0][-1:]
    c.sys.submit_unseal_key(good[0].hex())
    c.sys.submit_unseal_key(good[1].hex())
    assert unseal_errors(c, twin.hex())[1] == ["invalid key: failed to compute combined key: duplicate part detected"]
    # decoding and length rules
    assert unseal_errors(c, "zz")[1] == ["'key' must be a valid hex or base64 string"]
    # 30 hex chars = 15 bytes: outside [16,33], so it is tried as base64 - and fails there
    assert unseal_errors(c, "ab" * 15)[1] == ["'key' must be a valid hex or base64 string"]
    assert unseal_errors(c, base64.b64encode(b"k" * 15).decode())[1] == \
        ["invalid key: key is shorter than minimum 16 bytes"]
    assert unseal_errors(c, base64.b64encode(b"k" * 34).decode())[1] == \
        ["invalid key: key is longer than maximum 33 bytes"]
    # a 16-byte hex-looking string decodes as hex; 12 hex chars would be base64 of 9 bytes
    assert unseal_errors(c, "abcdef012345")[1] == ["invalid key: key is shorter than minimum 16 bytes"]
    assert c.sys.read_seal_status()["progress"] == 0
    # the right shares still work (case-insensitive JSON keys, hex upper case)
    r = t.raw("PUT", "/v1/sys/unseal", data=json.dumps({"KEY": out["unseal_keys_hex"][1].upper()}))
    assert r.status_code == 200 and r.json()["progress"] == 1
    assert c.sys.submit_unseal_key(out["unseal_keys_b64"][2])["progress"] == 2
    assert c.sys.submit_unseal_key(out["unseal_keys_b64"][3])["sealed"] is False


def test_health_codes_params_and_methods(target):
    t, fl = target, target.flavor
    t.unseal()
    c = t.hvac()
    h = c.sys.read_health_status(method="GET")
    assert isinstance(h, dict) and list(h) == fl.health_keys_active
    assert (h["initialized"], h["sealed"], h["standby"]) == (True, False, False)
    assert (h["replication_performance_mode"], h["replication_dr_mode"]) == \
        (fl.active_replication_performance_mode, "disabled")
    assert re.fullmatch(r"\d+\.\d+\.\d+", h["version"]) and abs(h["server_time_utc"] - time.time()) < 60
    assert h["cluster_name"].startswith("vault-cluster-") and UUID_RE.match(h["cluster_id"])
    assert t.raw("GET", VK_HEALTH).status_code == 200
    # standbyok on an active node changes nothing; the *code parameters set the status
    assert isinstance(c.sys.read_health_status(method="GET", standby_ok=True), dict)
    assert t.raw("GET", "/v1/sys/health?standbyok=t").status_code == 200
    r = t.raw("GET", "/v1/sys/health?activecode=204")
    assert (r.status_code, r.content) == (204, b"")
    r = t.raw("GET", "/v1/sys/health?activecode=299&uninitcode=299&removedcode=299&haunhealthycode=299")
    assert r.status_code == 299 and r.json()["initialized"] is True
    # unparsable *code parameters -> 400 {"errors":[]}
    for q in ("sealedcode=abc", "activecode=", "standbycode=x", "uninitcode=1.5"):
        r = t.raw("GET", "/v1/sys/health?" + q)
        assert (r.status_code, r.content) == (400, b'{"errors":[]}\n'), q
    # boolean parameters without a valid value: Vault parses them (400), OpenBao 2.7 does not
    for q in ("standbyok", "standbyok=", "perfstandbyok=yes", "removedcode=1.5"):
        r = t.raw("GET", "/v1/sys/health?" + q)
        if fl.strict_health_bools:
            assert (r.status_code, r.content) == (400, b'{"errors":[]}\n'), q
        else:
            assert r.status_code == 200 and r.json()["standby"] is False, q
    # a code Go cannot write: the handler panics and the connection is dropped without an answer
    with pytest.raises(requests.ConnectionError):
        t.raw("GET", "/v1/sys/health?activecode=1000")
    # HEAD: status only, no body; wrong method: 405
    r = t.raw("HEAD", "/v1/sys/health")
    assert (r.status_code, r.content, r.headers["Content-Type"]) == (200, b"", "application/json")
    assert r.headers["Cache-Control"] == "no-store" and "Content-Length" not in r.headers
    r = t.raw("POST", "/v1/sys/health")
    assert (r.status_code, r.content) == (405, b'{"errors":[]}\n')
    # sealed: 503, cluster fields omitted, standby true, replication unknown
    t.seal()
    r = c.sys.read_health_status(method="GET")
    b = r.json()
    assert r.status_code == 503 and list(b) == fl.health_keys_sealed
    assert (b["initialized"], b["sealed"], b["standby"]) == (True, True, True)
    assert b["replication_performance_mode"] == b["replication_dr_mode"] == "unknown"
    assert t.raw("HEAD", "/v1/sys/health").status_code == 503
    assert t.raw("GET", VK_HEALTH).status_code == 503


def test_seal_status_unseal_methods_and_errors(target):
    t, fl = target, target.flavor
    assert t.raw("POST", "/v1/sys/seal-status").status_code == 405
    for m in ("GET", "DELETE"):
        r = t.raw(m, "/v1/sys/unseal")
        assert (r.status_code, r.content) == (405, b'{"errors":[]}\n')
    r = t.raw("PUT", "/v1/sys/unseal", data="{nope")
    assert r.status_code == 400 and r.json()["errors"][0].startswith(fl.json_error_prefix)
    r = t.raw("PUT", "/v1/sys/unseal", data=json.dumps({"Reset": True, "key": "zz"}))
    assert r.status_code == 200 and r.json()["progress"] == 0               # reset wins over key
    r = t.raw("PUT", "/v1/sys/unseal", data=json.dumps({"key": "ab" * 17, "migrate": True}))
    assert (r.status_code, r.json()) == (500, {"errors": ["can't perform a seal migration, no migration seal found"]})
    r = t.raw("GET", "/v1/sys/seal-status")
    st = r.json()
    assert list(st) == fl.seal_status_keys_sealed
    assert (st["type"], st["initialized"], st["sealed"], st["t"], st["n"], st["recovery_seal"]) == \
        ("shamir", True, True, 3, 5, False)
    assert st["storage_type"] == "raft" and st["migration"] is False
    assert r.content.endswith(b"}\n") and r.headers["Cache-Control"] == "no-store"
    # logical paths while sealed -> 503 Vault is sealed
    for path in ("/v1/secret/data/x", "/v1/sys/leader", SNAP):
        r = t.raw("GET", path, headers={"X-Vault-Token": t.root})
        assert (r.status_code, r.json()) == (503, {"errors": ["Vault is sealed"]}), path
    # sys/seal: nothing to do while sealed (no token needed); unsealed it wants a token with sudo
    r = t.raw("PUT", "/v1/sys/seal")
    assert (r.status_code, r.content) == (204, b"")
    unsealed = t.unseal()
    assert list(unsealed) == fl.seal_status_keys_unsealed
    assert list(t.raw("GET", "/v1/sys/seal-status").json()) == fl.seal_status_keys_unsealed
    r = t.raw("PUT", "/v1/sys/seal")
    assert (r.status_code, r.json()) == (403, {"errors": ["permission denied"]})
    weak = t.make_token(["default"], 600)
    r = t.raw("PUT", "/v1/sys/seal", headers={"X-Vault-Token": weak})
    assert (r.status_code, r.json()) == (403, {"errors": [ACL_DENIED]})
    r = t.raw("GET", "/v1/secret/data/x", headers={"X-Vault-Token": t.root})
    assert (r.status_code, r.json()) == (404, {"errors": ['no handler for route "secret/data/x". route entry not found.']})
    assert t.hvac(t.root).sys.is_sealed() is False
    t.seal()
    assert t.hvac().sys.is_sealed() is True


def test_leader_endpoint(target):
    t, fl = target, target.flavor
    t.unseal()
    ld = t.hvac().sys.read_leader_status()
    assert list(ld) == fl.leader_keys
    assert ld["ha_enabled"] is True and ld["is_self"] is True and ld["leader_address"] == t.url
    assert ld["leader_cluster_address"].startswith("https://127.0.0.1:")
    assert ld["active_time"] != "0001-01-01T00:00:00Z" and abs(rfc3339_epoch(ld["active_time"]) - time.time()) < 600
    assert ld["raft_committed_index"] > 0 and ld["raft_applied_index"] > 0


def test_operator_seal_keeps_connections_and_a_restart_drops_them(target):
    t = target
    out = t.init
    t.unseal()
    port = urllib.parse.urlsplit(t.url).port
    # a kept-alive TLS connection survives an operator seal ...
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ssl.create_default_context(cafile=t.verify),
                                       timeout=10)
    conn.request("GET", "/v1/sys/health")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.read()
    t.seal()
    conn.request("GET", "/v1/sys/health")
    resp = conn.getresponse()
    assert resp.status == 503 and resp.read()
    c = t.hvac()
    assert c.sys.submit_unseal_key(out["unseal_keys_b64"][0])["progress"] == 1    # progress before the restart
    # ... but not a restart of the server process: the connection is gone, progress is lost
    t.restart()
    with pytest.raises((http.client.HTTPException, OSError)):
        conn.request("GET", "/v1/sys/health")
        conn.getresponse().read()
    conn.close()
    ss = c.sys.read_seal_status()
    assert (ss["sealed"], ss["progress"], ss["nonce"]) == (True, 0, "")
    assert c.sys.submit_unseal_keys(out["unseal_keys_b64"][2:5])["sealed"] is False
    t.wait_active()
    if t.sim:
        st = t.sim.state()
        assert st["restarts"] == 1 and st["port"] == port and st["listening"] is True


def test_tls_identity_mtls_and_test_pki(tls_server, pki):
    srv = tls_server(mtls=True)
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(srv.url + "/v1/sys/health", verify=pki["impostor-ca"], timeout=5)
    with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError)):
        requests.get(srv.url + "/v1/sys/health", verify=pki["ca"], timeout=5)          # no client cert
    r = requests.get(srv.url + "/v1/sys/health", verify=pki["ca"], cert=(pki["client"], pki["client-key"]),
                     timeout=5)
    assert r.status_code == 501
    if srv.sim:
        assert srv.sim.state()["tls_handshake_failures"] >= 1
    # ALPN: a real server offers HTTP/2 (libcurl takes it); the simulator speaks HTTP/1.1 only (README)
    ctx = ssl.create_default_context(cafile=pki["ca"])
    ctx.load_cert_chain(pki["client"], pki["client-key"])
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    port = urllib.parse.urlsplit(srv.url).port
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock, \
            ctx.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
        assert tls.selected_alpn_protocol() == ("http/1.1" if srv.sim else "h2")
    for name in ("ca-key", "server-key", "client-key", "impostor-key", "other-name-key"):
        assert stat.S_IMODE(os.stat(pki[name]).st_mode) == 0o600
    # other-name.pem is signed by the real CA but only valid for other.test
    other = tls_server("other-name")
    with pytest.raises(requests.exceptions.SSLError, match="(?i)hostname|match|IP address"):
        requests.get(other.url + "/v1/sys/health", verify=pki["ca"], timeout=5)
    impostor = tls_server("impostor")
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(impostor.url + "/v1/sys/health", verify=pki["ca"], timeout=5)
    assert requests.get(impostor.url + "/v1/sys/health", verify=pki["impostor-ca"], timeout=5).status_code == 501


# ----- Raft snapshots, tokens, AppRole (vault-api.md §6, §7) --------------------------------

class Tee:
    """File-like wrapper keeping every byte read (so the same stream is parsed and inspected)."""

    def __init__(self, raw):
        self.raw, self.data = raw, bytearray()

    def read(self, n=-1):
        d = self.raw.read(n)
        self.data += d
        return d


def read_archive(fileobj):
    """Parse a streamed snapshot with tarfile in stream mode: [(TarInfo, bytes)] in archive order."""
    out = []
    with tarfile.open(fileobj=fileobj, mode="r|gz") as tar:
        for m in tar:
            f = tar.extractfile(m)
            out.append((m, f.read() if f else b""))
    return out


def verify_sums(entries):
    """SHA256SUMS lines ("%x  %s\\n") against the entries; returns {name: (listed, actual)}."""
    files = dict((m.name, d) for m, d in entries)
    listed = {}
    for line in files["SHA256SUMS"].decode().splitlines(keepends=True):
        m = re.fullmatch(r"([0-9a-f]{64})  (meta\.json|state\.bin)\n", line)
        assert m, line
        listed[m.group(2)] = m.group(1)
    assert set(listed) == {"meta.json", "state.bin"}
    return {n: (h, hashlib.sha256(files[n]).hexdigest()) for n, h in listed.items()}


def snapshot_body(sim, token, **kw):
    r = requests.get(sim.url + SNAP, headers={"X-Vault-Token": token}, verify=sim.verify, timeout=10, **kw)
    assert r.status_code == 200, r.content
    return r.content


def test_snapshot_archive_format_streamed(target):
    t = target
    t.unseal()
    c = t.hvac(t.root)
    before = t.sim.state()["raft_index"] if t.sim else None
    r = c.sys.take_raft_snapshot()                       # hvac streams (stream=True)
    assert r.status_code == 200
    h = r.headers
    assert (h["Content-Type"], h["Content-Disposition"], h["Cache-Control"]) == \
        ("application/gzip", "attachment", "no-store")
    assert h["Transfer-Encoding"] == "chunked" and "Content-Length" not in h
    tee = Tee(r.raw)
    entries = read_archive(tee)
    assert tee.raw.read() == b""
    raw_body = bytes(tee.data)

    # entry order, names, regular files 0600, uid/gid 0, ModTime now, no directories
    assert [m.name for m, _ in entries] == ["meta.json", "state.bin", "SHA256SUMS", "SHA256SUMS.sealed"]
    for m, data in entries:
        assert m.isreg() and m.type == tarfile.REGTYPE and m.mode == 0o600 and (m.uid, m.gid) == (0, 0)
        assert (m.uname, m.gname) == ("", "") and abs(m.mtime - time.time()) < 60 and m.size == len(data)
    files = {m.name: d for m, d in entries}
    # meta.json: raft SnapshotMeta, capitalised keys in Go field order, one trailing newline
    mj = files["meta.json"]
    assert mj.endswith(b"}\n") and mj.count(b"\n") == 1
    meta = json.loads(mj)
    assert list(meta) == META_KEYS
    assert (meta["Version"], meta["ID"], meta["Peers"]) == (1, "bolt-snapshot", None)   # Vault's BoltSnapshotStore
    assert meta["Size"] == len(files["state.bin"]) > 0 and meta["Index"] > 0 and meta["Term"] >= 2
    assert meta["ConfigurationIndex"] >= 1
    (server,) = meta["Configuration"]["Servers"]
    assert list(server) == ["Suffrage", "ID", "Address"] and server["Suffrage"] == 0 and server["ID"] == t.node_id
    assert re.fullmatch(r"127\.0\.0\.1:\d+", server["Address"])
    ld = c.sys.read_leader_status()
    assert meta["Index"] <= ld["raft_applied_index"] and ld["leader_cluster_address"] == "https://" + server["Address"]
    for name, (listed, actual) in verify_sums(entries).items():
        assert listed == actual, name
    sealed = files["SHA256SUMS.sealed"]
    assert 0 < len(sealed) <= 8192 and files["SHA256SUMS"] not in sealed          # opaque, not the plain text

    # byte level: Go gzip header (no name, mtime 0, OS 255), tar ended by exactly two zero blocks
    assert raw_body[:10] == bytes.fromhex("1f8b08000000000000ff")
    tar_bytes = zlib.decompress(raw_body, 31)
    expect_len = sum(512 + -(-len(d) // 512) * 512 for _, d in entries) + 1024
    assert len(tar_bytes) == expect_len and tar_bytes.endswith(bytes(1024))
    hdr = tar_bytes[:512]
    assert hdr[257:265] == b"ustar\x0000" and hdr[100:108] == b"0000600\x00" and hdr[329:337] == b"0000000\x00"
    assert hdr[154:156] == b"\x00 "                                         # Go's checksum field ending

    # Authorization: Bearer works too
    body2 = requests.get(t.url + SNAP, headers={"Authorization": "Bearer " + t.root}, verify=t.verify, timeout=10).content
    e2 = read_archive(io.BytesIO(body2))
    m2 = json.loads(e2[0][1])
    assert [m.name for m, _ in e2] == [m.name for m, _ in entries] and m2["Index"] >= meta["Index"]

    if t.sim:
        # state.bin is deterministic from the seed; the simulator counts what it sent
        assert meta["Size"] == 200000 and files["state.bin"] == b"".join(vault_sim.state_bin_chunks(7, 200000))
        api_port = urllib.parse.urlsplit(t.url).port
        assert server["Address"] == f"127.0.0.1:{api_port + 1}" and meta["Index"] == before + 1
        st = t.sim.state()
        assert st["last_snapshot"]["state_sha256"] == vault_sim.state_bin_sha256(7, 200000)
        assert (st["snapshots_completed"], st["snapshot_bytes_sent"] - len(body2)) == (2, len(raw_body))
        assert t.sim.control("GET", "/requests")[-1]["body_bytes"] == len(body2)
        assert t.sim.control("POST", "/snapshot-size", {"bytes": 1000, "seed": 1}) == \
            {"bytes": 1000, "seed": 1, "gzip_level": 6}
        e3 = read_archive(io.BytesIO(snapshot_body(t, t.root)))
        assert json.loads(e3[0][1])["Size"] == 1000 and e3[1][1] == b"".join(vault_sim.state_bin_chunks(1, 1000))


def test_snapshot_auth_and_sealed(target):
    t, fl = target, target.flavor
    t.unseal()
    r = t.raw("GET", SNAP)
    assert (r.status_code, r.content) == (403, b'{"errors":["permission denied"]}\n')
    r = t.raw("GET", SNAP, headers={"X-Vault-Token": "hvs.not-a-token"})
    assert r.status_code == 403 and r.json() == {"errors": fl.invalid_token_errors}
    assert r.headers["Content-Type"] == "application/json" and "Transfer-Encoding" not in r.headers
    no_snap = t.make_token(["default"], 3600)
    assert re.fullmatch(fl.service_token_re, no_snap)
    c = t.hvac(no_snap)
    with pytest.raises(hvac.exceptions.Forbidden) as ei:
        c.sys.take_raft_snapshot()
    assert ei.value.errors == [ACL_DENIED]
    assert c.auth.token.lookup_self()["data"]["policies"] == ["default"]          # default policy still works
    snap_tok = t.make_token(["snapshot"], 3600)
    assert read_archive(io.BytesIO(snapshot_body(t, snap_tok)))[0][0].name == "meta.json"
    # X-Vault-Token wins over Authorization: Bearer
    r = t.raw("GET", SNAP, headers={"X-Vault-Token": "hvs.bogus", "Authorization": "Bearer " + snap_tok})
    assert r.json() == {"errors": fl.invalid_token_errors}
    # the snapshot policy only grants read: no restore, no lookup-self (no default policy)
    r = t.raw("POST", SNAP, headers={"X-Vault-Token": snap_tok}, data=b"x")
    assert (r.status_code, r.json()) == (403, {"errors": [ACL_DENIED]})
    r = t.raw("GET", "/v1/auth/token/lookup-self", headers={"X-Vault-Token": snap_tok})
    assert (r.status_code, r.json()) == (403, {"errors": [ACL_DENIED]})
    r = t.raw("GET", SNAP_FORCE, headers={"X-Vault-Token": t.root})
    assert (r.status_code, r.json()) == (405, {"errors": [multierror("unsupported operation")]})
    r = t.raw("POST", "/v1/auth/token/revoke-self", headers={"X-Vault-Token": snap_tok})
    assert (r.status_code, r.json()) == (403, {"errors": [ACL_DENIED]})
    if t.sim:
        assert t.sim.control("POST", "/tokens/revoke-all")["revoked"] == 2
        r = t.raw("GET", SNAP, headers={"X-Vault-Token": snap_tok})
        assert r.json() == {"errors": [INVALID_TOKEN]}
        assert t.sim.state()["snapshots_served"] == 1
    assert len(snapshot_body(t, t.root)) > 0
    t.seal()
    r = t.raw("GET", SNAP, headers={"X-Vault-Token": t.root})
    assert (r.status_code, r.json()) == (503, {"errors": ["Vault is sealed"]})


def test_approle_login_lookup_renew_and_expiry(target):
    t, fl = target, target.flavor
    t.unseal()
    role_id, secret_id = t.approle(ttl=1, max_ttl=3)
    c = t.hvac()
    for rid, sid in ((role_id, "wrong"), ("wrong", secret_id)):
        with pytest.raises(hvac.exceptions.InvalidRequest) as ei:
            c.auth.approle.login(rid, sid)
        assert ei.value.errors == ["invalid role or secret ID"]
    r = t.raw("POST", "/v1/auth/approle/login", json={"role_id": role_id})
    assert (r.status_code, r.json()) == (400, {"errors": ["missing secret_id"]})
    r = t.raw("POST", "/v1/auth/approle/login", json={"secret_id": secret_id})   # the alias lookahead's Go error
    assert (r.status_code, r.json()) == (500, {"errors": ["missing role_id"]})
    if t.sim:
        assert t.sim.state()["approle_login_failures"] == 4

    short = t.make_token(["default", "snapshot"], ttl=1)
    login = c.auth.approle.login(role_id, secret_id)          # hvac keeps the token
    a = login["auth"]
    # quickly, while the 1 s token lives: its lookup and a snapshot with it
    d = c.auth.token.lookup_self()["data"]
    assert read_archive(c.sys.take_raft_snapshot().raw)[0][0].name == "meta.json"
    first_expiry = rfc3339_epoch(d["expire_time"])            # issue + 1 s, on the server's clock
    assert list(login) == fl.envelope_keys
    assert (login["data"], login["lease_duration"], login["renewable"]) == (None, 0, False)
    assert login.get("mount_type", "approle") == "approle"
    assert list(a) == AUTH_KEYS
    assert re.fullmatch(fl.service_token_re, a["client_token"]) and c.token == a["client_token"]
    assert (a["lease_duration"], a["renewable"], a["policies"], a["token_policies"]) == \
        (1, True, ["default", "snapshot"], ["default", "snapshot"])
    assert (a["metadata"], a["token_type"], a["orphan"], a["mfa_requirement"], a["num_uses"]) == \
        ({"role_name": "vaultkeeper"}, "service", True, None, 0)
    assert UUID_RE.match(a["entity_id"])
    assert list(d) == sorted(d) and d["id"] == a["client_token"] and d["accessor"] == a["accessor"]
    assert (d["creation_ttl"], d["path"], d["display_name"], d["meta"], d["type"]) == \
        (1, "auth/approle/login", "approle", {"role_name": "vaultkeeper"}, "service")
    assert 0 <= d["ttl"] <= 1 and d["expire_time"].endswith("Z") and d["renewable"] is True
    assert "last_renewal_time" not in d and abs(rfc3339_epoch(d["issue_time"]) + 1 - first_expiry) < 0.01

    sleep_until(first_expiry - 0.5)
    ren = c.auth.token.renew_self()                           # now expires ~0.5 s after the first expiry
    assert ren["auth"]["client_token"] == a["client_token"] and ren["auth"]["lease_duration"] == 1
    assert list(ren) == fl.envelope_keys and ren.get("mount_type", "token") == "token" and ren["warnings"] is None
    sleep_until(first_expiry + 0.15)                          # past the first expiry: alive only thanks to the renewal
    d = c.auth.token.lookup_self()["data"]
    assert "last_renewal_time" in d and d["creation_ttl"] == 1 and rfc3339_epoch(d["expire_time"]) > first_expiry
    r = t.raw("GET", SNAP, headers={"X-Vault-Token": short})         # TTL 1 s, never renewed: expired
    assert (r.status_code, r.json()) == (403, {"errors": fl.invalid_token_errors})
    # capped at the max TTL (3 s from the login; Vault counts in whole seconds)
    capped = c.auth.token.renew_self(increment="1h")
    assert capped["auth"]["lease_duration"] in (1, 2)
    assert re.fullmatch(r'TTL of "1h" exceeded the effective max_ttl of "[12]s"; TTL value is capped accordingly',
                        capped["warnings"][0]), capped["warnings"]
    final_expiry = rfc3339_epoch(c.auth.token.lookup_self()["data"]["expire_time"])
    assert final_expiry < first_expiry + 3.5
    sleep_until(final_expiry + 0.3)
    for call in (c.auth.token.lookup_self, c.auth.token.renew_self, c.sys.take_raft_snapshot):
        with pytest.raises(hvac.exceptions.Forbidden) as ei:
            call()
        assert ei.value.errors == fl.invalid_token_errors
    if t.sim:
        assert t.sim.state()["token_renewals"] == 2

    # root token: no TTL, no lease, not renewable
    c.token = t.root
    d = c.auth.token.lookup_self()["data"]
    assert (d["policies"], d["ttl"], d["creation_ttl"], d["expire_time"], d["path"], d["display_name"]) == \
        (["root"], 0, 0, None, "auth/token/root", "root")
    assert list(d) == sorted(d) and "issue_time" not in d and "renewable" not in d
    with pytest.raises(hvac.exceptions.InvalidRequest) as ei:
        c.auth.token.renew_self()
    assert ei.value.errors == ["invalid lease ID"]
    c.token = t.make_token(["default"], 60, renewable=False)
    with pytest.raises(hvac.exceptions.InvalidRequest) as ei:
        c.auth.token.renew_self()
    assert ei.value.errors == ["lease is not renewable"]
    r = t.raw("POST", "/v1/auth/token/revoke-self", headers={"X-Vault-Token": c.token})
    assert (r.status_code, r.content) == (204, b"")
    r = t.raw("GET", "/v1/auth/token/lookup-self", headers={"X-Vault-Token": c.token})
    assert (r.status_code, r.json()) == (403, {"errors": fl.invalid_token_errors})


def test_approle_renewal_past_the_max_ttl(target):
    """framework.CalculateTTL counts in whole seconds: once the second `issue + max_ttl` has begun a
    renewal is refused (an error of the lease code: 500) although the token itself still lives
    until issue + ttl."""
    t = target
    t.unseal()
    role_id, secret_id = t.approle(ttl=2, max_ttl=2)
    c = t.hvac()
    sleep_until(int(time.time()) + 1.7)                       # log in late in a second: a wide window
    c.auth.approle.login(role_id, secret_id)
    issued = rfc3339_epoch(c.auth.token.lookup_self()["data"]["issue_time"])
    sleep_until(int(issued) + 2.05)
    assert time.time() < issued + 1.9, "the window between the max TTL's second and the expiry was missed"
    r = t.raw("POST", "/v1/auth/token/renew-self", headers={"X-Vault-Token": c.token})
    assert (r.status_code, r.json()) == (500, {"errors": [multierror("past the max TTL, cannot renew")]})
    assert c.auth.token.lookup_self()["data"]["ttl"] in (0, 1)              # still valid


def test_snapshot_restore_and_damaged_archives(target, foreign_snapshot):
    t, fl = target, target.flavor
    t.unseal()
    c = t.hvac(t.root)
    body = c.sys.take_raft_snapshot().content
    later = t.make_token(["default"], 3600)                  # created after the snapshot
    if t.sim:
        index = t.sim.state()["last_snapshot"]["index"]
        assert t.sim.control("POST", "/raft", {"index": 5000})["index"] == 5000
    r = c.sys.restore_raft_snapshot(body)
    assert (r.status_code, r.content) == (204, b"")
    t.wait_active()
    r = t.raw("GET", "/v1/auth/token/lookup-self", headers={"X-Vault-Token": later})
    assert (r.status_code, r.json()) == (403, {"errors": fl.invalid_token_errors})   # the token store is the snapshot's
    if t.sim:
        st = t.sim.state()
        assert st["raft_index"] == index and st["restores"] == 1 and st["last_restore"]["force"] is False
    # update capability needed: a read-only snapshot token gets 403
    reader = t.hvac(t.make_token(["snapshot"], 3600))
    with pytest.raises(hvac.exceptions.Forbidden) as ei:
        reader.sys.restore_raft_snapshot(body)
    assert ei.value.errors == [ACL_DENIED]

    # damaged archives: 500 with the reader's error, wrapped by Vault's request handling
    tar_bytes = bytearray(zlib.decompress(body, 31))
    tar_bytes[3 * 512 + 100] ^= 1                                        # a byte of state.bin
    extra = io.BytesIO()
    with tarfile.open(fileobj=extra, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        ti = tarfile.TarInfo("evil.sh")
        ti.size = 3
        tf.addfile(ti, io.BytesIO(b"x=1"))
    cases = [
        (gzip.compress(bytes(tar_bytes)), 'failed to read snapshot file: failed checking integrity of snapshot: '
                                          'hash check failed for "state.bin"'),
        (gzip.compress(zlib.decompress(body, 31)[:-1024] + extra.getvalue()),
         'failed to read snapshot file: unexpected file "evil.sh" in snapshot'),
        (body[: len(body) // 2], "failed to read snapshot file: failed to read or write snapshot data: unexpected EOF"),
        (b"<html>oops</html>", "failed to decompress snapshot: gzip: invalid header"),
        (b"", "failed to decompress snapshot: EOF"),
    ]
    for data, msg in cases:
        r = t.raw("POST", SNAP, headers={"X-Vault-Token": t.root}, data=data)
        assert (r.status_code, r.json()) == (500, {"errors": [multierror(msg)]}), msg
    if t.sim:
        assert t.sim.state()["restores"] == 1
    # a streamed (chunked) request body, PUT. The restore stops reading at the end of the tar, so
    # a wrong gzip CRC goes unnoticed (vaultkeeper's own `snapshot verify` is what catches it)
    bad_crc = body[:-8] + bytes([body[-8] ^ 1]) + body[-7:]
    r = t.raw("PUT", SNAP, headers={"X-Vault-Token": t.root}, data=iter([bad_crc[:1000], bad_crc[1000:]]))
    assert (r.status_code, r.content) == (204, b"")
    t.wait_active()
    if t.sim:
        assert t.sim.state()["restores"] == 2

    # a snapshot of another cluster (other unseal keys): 400 unless snapshot-force
    foreign = foreign_snapshot(t)
    with pytest.raises(hvac.exceptions.InvalidRequest) as ei:
        c.sys.restore_raft_snapshot(foreign)
    assert ei.value.errors == [FORCE_HINT]
    assert t.hvac().sys.is_sealed() is False


# ---------------------------------------------------------------------------
# Simulator only: faults, Vault-only codes and versions, the control channel
# ---------------------------------------------------------------------------

def unsealed(sim_factory, extra=(), **kw):
    """An initialised (1 share) and unsealed simulator and its root token."""
    sim = sim_factory(list(extra), init=(1, 1), **kw)
    sim.control("POST", "/unseal")
    return sim, sim.init_output_json()["root_token"]


@pytest.mark.sim_only("old Vault answered a wrong key with 500; no current Vault or OpenBao does")
def test_wrong_key_legacy_500(sim_factory):
    sim = sim_factory(["--legacy-wrong-key-500"], init=(1, 1))
    out = sim.init_output_json()
    assert len(out["unseal_keys_hex"][0]) == 64 and out["unseal_keys_b64"][0].endswith("=")  # raw 32-byte key
    c = sim.hvac()
    typ, errors = unseal_errors(c, secrets.token_hex(32))
    assert typ is hvac.exceptions.InternalServerError and errors == [WRONG_KEY]
    # t=1 with a 33-byte share: used as-is, not a valid AES key size
    assert unseal_errors(c, secrets.token_hex(33))[1] == \
        ["invalid key: failed to setup unseal key: crypto/aes: invalid key size 33"]
    assert c.sys.submit_unseal_key(out["unseal_keys_hex"][0])["sealed"] is False


@pytest.mark.sim_only("standby, performance standby, DR secondary, unhealthy HA and removed roles (429/473/472/474/530) are Vault's; one OpenBao node is only ever active")
def test_health_roles_and_vault_only_codes(sim_factory):
    sim = sim_factory(init=(1, 1))
    c = sim.hvac()
    c.sys.submit_unseal_key(sim.init_output_json()["unseal_keys_b64"][0])
    h = c.sys.read_health_status(method="GET")
    assert isinstance(h, dict) and h["removed_from_cluster"] is False and "ha_connection_healthy" not in h
    expect = {"standby": 429, "perfstandby": 473, "drsecondary": 472, "haunhealthy": 474, "removed": 530,
              "active": 200}
    for role, code in expect.items():
        sim.control("POST", "/role", {"role": role})
        r = c.sys.read_health_status(method="GET")
        got = 200 if isinstance(r, dict) else r.status_code
        body = r if isinstance(r, dict) else r.json()
        assert got == code, role
        assert raw(sim, "GET", VK_HEALTH).status_code == code, role      # what vaultkeeper asks
        assert body["standby"] is (role != "active" and role != "drsecondary"), role
        assert body["performance_standby"] is (role == "perfstandby")
        assert body["removed_from_cluster"] is (role == "removed")
        assert body["replication_dr_mode"] == ("secondary" if role == "drsecondary" else "disabled")
        if role in ("standby", "perfstandby", "haunhealthy"):
            assert body["ha_connection_healthy"] is (role != "haunhealthy")
            assert body["last_request_forwarding_heartbeat_ms"] > 0
        else:
            assert "ha_connection_healthy" not in body
    # standbyok / perfstandbyok on standbys
    sim.control("POST", "/role", {"role": "standby"})
    assert isinstance(c.sys.read_health_status(method="GET", standby_ok=True), dict)
    assert raw(sim, "GET", "/v1/sys/health?standbyok=t").status_code == 200
    assert raw(sim, "GET", "/v1/sys/health?standbycode=299").status_code == 299
    sim.control("POST", "/role", {"role": "perfstandby"})
    assert raw(sim, "GET", "/v1/sys/health?standbyok=true").status_code == 473   # no effect on perf standby
    assert raw(sim, "GET", "/v1/sys/health?perfstandbyok=1").status_code == 200
    # sealed and removed: removed wins
    sim.control("POST", "/role", {"role": "active"})
    sim.control("POST", "/seal")
    assert raw(sim, "GET", "/v1/sys/health").status_code == 503
    sim.control("POST", "/role", {"role": "removed"})
    assert raw(sim, "GET", "/v1/sys/health").status_code == 530


@pytest.mark.sim_only("Vault 1.15's field rules: the simulator's version emulation")
def test_old_version_field_rules(sim_factory):
    sim = sim_factory(["--version", "1.15.4"], tls=False, init=(1, 1))
    c = sim.hvac()
    c.sys.submit_unseal_key(sim.init_output_json()["unseal_keys_hex"][0])
    sim.control("POST", "/role", {"role": "standby"})
    r = c.sys.read_health_status(method="GET")
    b = r.json()
    assert r.status_code == 429 and b["version"] == "1.15.4"
    assert "removed_from_cluster" not in b and "ha_connection_healthy" not in b and "enterprise" not in b
    assert raw(sim, "GET", "/v1/sys/health?removedcode=abc").status_code == 429   # param unknown before 1.19


@pytest.mark.sim_only("a standby's sys/leader needs a second node that is not active: the simulator's role switch")
def test_leader_on_a_standby(sim_factory):
    sim, _ = unsealed(sim_factory)
    sim.control("POST", "/role", {"role": "standby"})
    ld = sim.hvac().sys.read_leader_status()
    assert ld["is_self"] is False and ld["active_time"] == "0001-01-01T00:00:00Z" and ld["leader_address"]


@pytest.mark.sim_only("the control channel's restart: refused while down, counted connections")
def test_control_restart_drops_connections_and_comes_back_sealed(sim_factory, pki):
    sim = sim_factory(init=(5, 3))
    out = sim.init_output_json()
    c = sim.hvac()
    c.sys.submit_unseal_keys(out["unseal_keys_hex"][:3])
    assert c.sys.is_sealed() is False
    # a kept-alive TLS connection survives an operator seal ...
    ctx = ssl.create_default_context(cafile=pki["ca"])
    conn = http.client.HTTPSConnection("127.0.0.1", sim.port, context=ctx, timeout=5)
    conn.request("GET", "/v1/sys/health")
    assert conn.getresponse().read() and True
    sim.control("POST", "/seal")
    conn.request("GET", "/v1/sys/health")
    resp = conn.getresponse()
    assert resp.status == 503 and resp.read()
    c.sys.submit_unseal_key(out["unseal_keys_b64"][0])             # progress 1 before the restart
    # ... but not a restart: listener and every connection closed, refused while down
    r = sim.control("POST", "/restart", {"down_ms": 500})
    assert r["connections_dropped"] >= 1
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", sim.port), timeout=1).close()
    conn.request("GET", "/v1/sys/health")
    with pytest.raises((http.client.HTTPException, OSError)):
        conn.getresponse().read()
    conn.close()
    st = sim.wait_state(lambda s: s["listening"], timeout=5)
    assert st["sealed"] and st["progress"] == 0 and st["restarts"] == 1 and st["port"] == sim.port
    c = sim.hvac()
    ss = c.sys.read_seal_status()
    assert (ss["sealed"], ss["progress"], ss["nonce"]) == (True, 0, "")
    assert c.sys.submit_unseal_keys(out["unseal_keys_b64"][2:5])["sealed"] is False


@pytest.mark.sim_only("the simulator's own state file (never a key in it)")
def test_process_restart_same_state_dir_comes_up_sealed(sim_factory, tmp_path):
    state_dir = str(tmp_path / "shared-state")
    s1 = sim_factory(init=(3, 2), state_dir=state_dir, name="first")
    out = s1.init_output_json()
    c = s1.hvac()
    cluster_id = c.sys.submit_unseal_keys(out["unseal_keys_hex"][:2])["cluster_id"]
    assert s1.state()["sealed"] is False
    rc, log = s1.stop()
    assert rc == 0 and "Traceback" not in log
    for k in out["unseal_keys_hex"] + out["unseal_keys_b64"]:
        assert k not in log
    state_text = open(os.path.join(state_dir, vault_sim.STATE_FILE)).read()
    for k in out["unseal_keys_hex"] + out["unseal_keys_b64"]:
        assert k not in state_text
    assert stat.S_IMODE(os.stat(os.path.join(state_dir, vault_sim.STATE_FILE)).st_mode) == 0o600

    s2 = sim_factory(state_dir=state_dir, name="second")           # no init options
    c2 = s2.hvac()
    st = c2.sys.read_seal_status()
    assert (st["initialized"], st["sealed"], st["t"], st["n"]) == (True, True, 2, 3)
    assert c2.sys.read_health_status(method="GET").status_code == 503
    done = c2.sys.submit_unseal_keys(out["unseal_keys_b64"][1:3])
    assert done["sealed"] is False and done["cluster_id"] == cluster_id


@pytest.mark.sim_only("auto-unseal seals (KMS, transit) are not set up for the real server here")
@pytest.mark.parametrize("seal_type", ["awskms", "transit"])
def test_auto_unseal_rejects_keys(sim_factory, seal_type):
    sim = sim_factory(["--seal-type", seal_type, "--auto-unseal-delay", "0.3"], init=(3, 2))
    c = sim.hvac()
    assert c.sys.read_seal_status()["sealed"] is True                # not yet: delay
    sim.wait_state(lambda s: not s["sealed"], timeout=5)
    st = c.sys.read_seal_status()
    assert (st["type"], st["recovery_seal"], st["recovery_seal_type"], st["t"], st["n"]) == \
        (seal_type, True, "shamir", 2, 3)
    out = sim.init_output_json()
    assert (out["unseal_keys_hex"], out["unseal_shares"], out["unseal_threshold"]) == ([], 1, 1)
    assert (len(out["recovery_keys_hex"]), out["recovery_keys_shares"], out["recovery_keys_threshold"]) == (3, 3, 2)
    assert sim.state()["unseal_requests"] == 0
    # operator seal: stays sealed; a Shamir unseal key is treated as a recovery key and rejected
    sim.control("POST", "/seal")
    time.sleep(0.4)
    assert c.sys.is_sealed() is True
    foreign = shamir_split(secrets.token_bytes(32), 3, 2)
    assert c.sys.submit_unseal_key(foreign[0].hex())["progress"] == 1
    assert unseal_errors(c, foreign[1].hex()) == (hvac.exceptions.InvalidRequest, [
        "invalid key: failed to verify recovery key: recovery key does not match submitted values"])
    st = sim.state()
    assert st["unseal_requests"] == 2 and st["sealed"] is True
    assert c.sys.submit_unseal_keys(out["recovery_keys_b64"][:2])["sealed"] is False
    # init via API on an auto-unseal node refuses Shamir parameters (hvac always sends them)
    r = raw(sim, "PUT", "/v1/sys/init", json={"secret_shares": 5, "secret_threshold": 3})
    assert r.json() == {"errors": [f"parameters secret_shares,secret_threshold not applicable to seal type {seal_type}"]}


@pytest.mark.sim_only("another operator's share through the control channel; request counting")
def test_foreign_share_and_request_counting(sim_factory):
    sim = sim_factory(init=(5, 3))
    r = sim.control("POST", "/foreign-share")
    assert r["progress"] == 1 and UUID_RE.match(r["nonce"])
    c = sim.hvac()
    st = c.sys.read_seal_status()
    assert (st["progress"], st["nonce"]) == (1, r["nonce"])
    st = sim.state()
    assert (st["unseal_requests"], st["foreign_shares"]) == (0, 1)
    c.sys.submit_unseal_key(sim.init_output_json()["unseal_keys_hex"][0])
    assert sim.state()["unseal_requests"] == 1
    log = sim.control("GET", "/requests")
    assert [e["path"] for e in log][-1] == "/v1/sys/unseal" and log[-1]["status"] == 200


@pytest.mark.sim_only("faults: latency, 5xx, garbage, dropped and hanging connections, a refused port")
def test_faults(sim_factory):
    sim = sim_factory(init=(1, 1))
    s = requests.Session()     # verify passed per request: REQUESTS_CA_BUNDLE would override s.verify
    sim.control("POST", "/fault", {"kind": "latency", "ms": 300})
    t0 = time.monotonic()
    assert s.get(sim.url + "/v1/sys/seal-status", timeout=5, verify=sim.verify).status_code == 200
    assert time.monotonic() - t0 >= 0.28
    sim.control("POST", "/fault/clear")
    sim.control("POST", "/fault", {"kind": "status", "code": 500, "paths": ["/v1/sys/health"]})
    r = s.get(sim.url + "/v1/sys/health", timeout=5, verify=sim.verify)
    assert (r.status_code, r.content) == (500, b'{"errors":[]}\n')
    assert s.get(sim.url + "/v1/sys/seal-status", timeout=5, verify=sim.verify).status_code == 200   # other paths unaffected
    sim.control("POST", "/fault", {"kind": "garbage"})
    r = s.get(sim.url + "/v1/sys/seal-status", timeout=5, verify=sim.verify)
    assert r.status_code == 200
    with pytest.raises(ValueError):
        r.json()
    sim.control("POST", "/fault/clear")
    sim.control("POST", "/fault", {"kind": "close", "count": 1})
    with pytest.raises(requests.ConnectionError):
        requests.get(sim.url + "/v1/sys/health", verify=sim.verify, timeout=5)
    assert s.get(sim.url + "/v1/sys/health", timeout=5, verify=sim.verify).status_code == 503        # count exhausted
    sim.control("POST", "/fault", {"kind": "hang"})
    with pytest.raises(requests.ReadTimeout):
        requests.get(sim.url + "/v1/sys/health", verify=sim.verify, timeout=0.5)
    sim.control("POST", "/fault/clear")
    sim.control("POST", "/fault", {"kind": "refuse"})
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", sim.port), timeout=1)
    assert sim.state()["listening"] is False                                      # control still answers
    sim.control("POST", "/fault/clear")
    assert requests.get(sim.url + "/v1/sys/health", verify=sim.verify, timeout=5).status_code == 503


@pytest.mark.sim_only("the simulator's own listener variants (unix socket, plain HTTP)")
def test_unix_socket_and_plain_http(sim_factory, tmp_path):
    path = str(tmp_path / "vault.sock")
    sim = sim_factory(["--unix-socket", path], tls=False, listen=False, init=(1, 1))

    class UnixConn(http.client.HTTPConnection):
        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect(path)

    conn = UnixConn("localhost")
    conn.request("GET", "/v1/sys/health")
    r = conn.getresponse()
    assert r.status == 503 and json.loads(r.read())["sealed"] is True
    key = sim.init_output_json()["unseal_keys_hex"][0]
    conn.request("PUT", "/v1/sys/unseal", body=json.dumps({"key": key}))   # same keep-alive connection
    r = conn.getresponse()
    assert r.status == 200 and json.loads(r.read())["sealed"] is False
    assert sim.state()["connections_total"] == 1
    conn.close()


@pytest.mark.sim_only("the simulator's own log and exit")
def test_sigterm_clean_and_logs(sim_factory):
    sim = sim_factory(init=(3, 2))
    c = sim.hvac()
    out = sim.init_output_json()
    c.sys.submit_unseal_keys(out["unseal_keys_hex"][:2])
    # abrupt client disconnects must not produce tracebacks
    s = socket.create_connection(("127.0.0.1", sim.port))
    s.sendall(b"\x16\x03\x01garbage")
    s.close()
    s = socket.create_connection(("127.0.0.1", sim.port))
    s.close()
    rc, log = sim.stop()
    assert rc == 0 and "Traceback" not in log
    assert re.search(r"PUT /v1/sys/unseal 200", log) and "shutting down" in log
    for k in out["unseal_keys_hex"]:
        assert k not in log


@pytest.mark.sim_only("Vault answers a snapshot on a standby with 307; OpenBao forwards it (README; HA tests in Tests/OpenBaoTests)")
def test_standby_redirects_307_and_client_follows(sim_factory, tmp_path):
    shared = str(tmp_path / "cluster-state")      # one cluster: same seal, root token and token store
    approle = ["--approle-role-id", ROLE_ID, "--approle-secret-id", SECRET_ID, "--snapshot-size", "20000"]
    active, root = unsealed(sim_factory, approle + ["--node-id", "node-a"], state_dir=shared, name="active")
    standby = sim_factory(approle + ["--role", "standby", "--leader-address", active.url, "--node-id", "node-b"],
                          state_dir=shared, name="standby")
    standby.control("POST", "/unseal")
    c = standby.hvac()
    c.auth.approle.login(ROLE_ID, SECRET_ID)      # issued through the standby, valid cluster-wide
    hdr = {"X-Vault-Token": c.token}
    r = requests.get(standby.url + SNAP + "?a=1&b=x%20y", headers=hdr, verify=standby.verify,
                     allow_redirects=False, timeout=5)
    assert r.status_code == 307 and r.content == b"" and r.headers["Content-Length"] == "0"
    assert r.headers["Location"] == active.url + SNAP + "?a=1&b=x%20y"
    r = requests.get(standby.url + SNAP, verify=standby.verify, allow_redirects=False, timeout=5)   # no token needed
    assert r.status_code == 307 and r.headers["Location"] == active.url + SNAP
    # hvac/requests follow the 307 and resend X-Vault-Token to the active node
    snap = c.sys.take_raft_snapshot()
    assert snap.status_code == 200 and snap.url == active.url + SNAP and snap.history[0].status_code == 307
    entries = read_archive(snap.raw)
    assert json.loads(entries[0][1])["Configuration"]["Servers"][0]["ID"] == "node-a"
    assert active.control("GET", "/requests")[-1]["has_token"] is True
    assert (active.state()["snapshots_served"], standby.state()["snapshots_served"]) == (1, 0)
    # restore through the standby: the 307 is followed with the body resent
    body = snapshot_body(active, root)
    cr = standby.hvac()
    cr.token = root
    resp = cr.sys.restore_raft_snapshot(body)
    assert resp.status_code == 204 and active.state()["restores"] == 1 and standby.state()["restores"] == 0
    # performance standbys redirect too (never forwarded)
    standby.control("POST", "/role", {"role": "perfstandby"})
    assert raw(standby, "GET", SNAP, allow_redirects=False).status_code == 307
    # no active node known -> 503; sealed standby -> 503 sealed
    assert standby.control("POST", "/leader", {"address": ""}) == {"leader_address": ""}
    r = raw(standby, "GET", SNAP, headers=hdr, allow_redirects=False)
    assert (r.status_code, r.json()) == (503, {"errors": ["no active Vault instance found"]})
    standby.control("POST", "/seal")
    r = raw(standby, "GET", SNAP, headers=hdr, allow_redirects=False)
    assert (r.status_code, r.json()) == (503, {"errors": ["Vault is sealed"]})


@pytest.mark.sim_only("cut, corrupt and slow snapshot streams and a 500 before any byte")
def test_snapshot_stream_faults(sim_factory):
    sim, root = unsealed(sim_factory, ["--snapshot-size", "300000", "--snapshot-gzip-level", "0"])
    hdr = {"X-Vault-Token": root}

    def get():
        return requests.get(sim.url + SNAP, headers=hdr, verify=sim.verify, stream=True, timeout=10)

    clean = snapshot_body(sim, root)
    # cut: headers and K bytes, then the connection closes without the terminating chunk
    f = sim.control("POST", "/fault", {"kind": "cut", "bytes": 100000, "count": 1})["fault"]
    assert f["paths"] == [SNAP] and f["bytes"] == 100000
    assert raw(sim, "GET", SNAP).status_code == 403                  # a non-streamed answer keeps the fault
    assert raw(sim, "GET", "/v1/sys/health").status_code == 200       # other paths unaffected
    sent0 = sim.state()["snapshot_bytes_sent"]
    r = get()
    assert r.status_code == 200 and r.headers["Transfer-Encoding"] == "chunked"
    got = bytearray()
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        for chunk in r.iter_content(8192):
            got += chunk
    assert len(got) == 100000 and got[2000:] == clean[2000:100000]        # same state.bin bytes, then nothing
    st = sim.state()
    assert st["snapshot_bytes_sent"] - sent0 == 100000 and st["faults"] == []       # count consumed
    assert sim.control("GET", "/requests")[-1]["fault"] == "cut"
    # clean cut: a well-formed HTTP body that is a truncated gzip (what a client must catch)
    sim.control("POST", "/fault", {"kind": "cut", "bytes": 5000, "clean": True})
    body = snapshot_body(sim, root)
    assert len(body) == 5000
    with pytest.raises((tarfile.ReadError, EOFError, zlib.error)):
        read_archive(io.BytesIO(body))
    sim.control("POST", "/fault", {"kind": "cut", "bytes": 0, "clean": True})
    assert snapshot_body(sim, root) == b""                              # 200 with an empty body
    sim.control("POST", "/fault/clear")
    # corrupt: exactly one byte flipped at the offset; gzip CRC and SHA256SUMS both catch it
    sim.control("POST", "/fault", {"kind": "corrupt", "offset": 50000, "xor": 1, "count": 1})
    bad = snapshot_body(sim, root)
    good = snapshot_body(sim, root)
    assert len(bad) == len(good) == len(clean)
    diff = [i for i in range(2000, 290000) if bad[i] != good[i]]       # state.bin region (stored deflate)
    assert diff == [50000] and bad[50000] ^ good[50000] == 1
    with pytest.raises(zlib.error):
        zlib.decompress(bad, 31)
    sums = verify_sums(read_archive(io.BytesIO(bad)))                   # tarfile's stream mode skips the CRC
    assert sums["state.bin"][0] != sums["state.bin"][1] and sums["meta.json"][0] == sums["meta.json"][1]
    # slow: bytes per second
    sim.control("POST", "/snapshot-size", {"bytes": 100000})
    sim.control("POST", "/fault", {"kind": "slow", "bps": 250000})
    t0 = time.monotonic()
    body = snapshot_body(sim, root)
    elapsed = time.monotonic() - t0
    assert elapsed >= len(body) / 250000 * 0.9 and len(read_archive(io.BytesIO(body))) == 4
    sim.control("POST", "/fault/clear", {"kind": "slow"})
    # status 500 before any byte (the general status fault, restricted to the snapshot path)
    served = sim.state()["snapshots_served"]
    sim.control("POST", "/fault", {"kind": "status", "code": 500, "paths": [SNAP]})
    r = raw(sim, "GET", SNAP, headers=hdr)
    assert (r.status_code, r.content, r.headers["Content-Length"]) == (500, b'{"errors":[]}\n', "14")
    assert raw(sim, "GET", "/v1/sys/health").status_code == 200
    assert sim.state()["snapshots_served"] == served
    with pytest.raises(urllib.error.HTTPError) as ei:
        sim.control("POST", "/fault", {"kind": "cut", "bytes": -1})
    assert ei.value.code == 400


@pytest.mark.sim_only("a node whose storage is not Raft: the real server here always has Raft storage")
def test_snapshot_without_raft_storage(sim_factory):
    fsim, froot = unsealed(sim_factory, ["--storage-type", "file"], tls=False, name="file")
    r = raw(fsim, "GET", SNAP, headers={"X-Vault-Token": froot})
    assert (r.status_code, r.json()) == (400, {"errors": ["raft storage is not in use"]})
    r = raw(fsim, "GET", SNAP, headers={"X-Vault-Token": "hvs.x"})
    assert (r.status_code, r.json()) == (403, {"errors": [INVALID_TOKEN]})          # the token check comes first


@pytest.mark.sim_only("a forced restore of another cluster's snapshot: the real server then seals itself and wants "
                      "that cluster's keys (README); the simulator only records the restore")
def test_snapshot_force_restore_of_another_cluster(sim_factory):
    sim, root = unsealed(sim_factory, ["--snapshot-size", "50000"])
    other, oroot = unsealed(sim_factory, ["--snapshot-size", "3000"], tls=False, name="other")
    foreign = snapshot_body(other, oroot)
    foreign_index = other.state()["last_snapshot"]["index"]
    c = sim.hvac()
    c.token = root
    with pytest.raises(hvac.exceptions.InvalidRequest) as ei:
        c.sys.restore_raft_snapshot(foreign)
    assert ei.value.errors == [FORCE_HINT]
    sim.control("POST", "/raft", {"index": 9999})
    r = c.sys.force_restore_raft_snapshot(foreign)
    assert r.status_code == 204
    st = sim.state()
    assert st["raft_index"] == foreign_index and st["last_restore"]["force"] is True and st["restores"] == 1
    r = raw(sim, "GET", SNAP_FORCE, headers={"X-Vault-Token": root})
    assert (r.status_code, r.json()) == (405, {"errors": [multierror("unsupported operation")]})
    sim.control("POST", "/seal")
    r = raw(sim, "POST", SNAP_FORCE, headers={"X-Vault-Token": root}, data=foreign)
    assert (r.status_code, r.json()) == (503, {"errors": ["Vault is sealed"]})
