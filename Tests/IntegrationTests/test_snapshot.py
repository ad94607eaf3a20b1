# SPDX-License-Identifier: Apache-2.0
"""`vaultkeeper snapshot now` and `vaultkeeper snapshot verify` against the simulator's Raft
snapshot endpoint: AppRole and static-token auth, a standby's 307, every way a download can go
wrong (cut, corrupt, 500, empty, 403, sealed, disk space), credential-file checks, [snapshot]
config errors, and the offline verifier. A failed snapshot must never leave a partial or
temporary file, nor touch the good snapshots already in the directory. Tokens, role IDs and
secret IDs must never appear in any output."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import signal
import ssl
import tarfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Optional

import pytest

import vk_harness as h
from vk_fixtures import needs

NOBODY = 65534
SNAPSHOT_PATH = "/v1/sys/storage/raft/snapshot"
SNAPSHOT_SIZE = 256 * 1024  # state.bin bytes: a ~260 KiB gzip stream, fast to serve and verify
SAVED_RE = re.compile(r"^saved (/\S+): (\d+) bytes in [0-9.]+ s \(\d+ MiB/s\), raft index (\d+), verified$", re.M)
NAME_RE = re.compile(r"^vaultkeeper-([a-z0-9-]+)-(\d{8}T\d{6}Z)-(\d+)\.snap$")
TMP_RE = re.compile(r"^\.vaultkeeper-snapshot-.*\.tmp$")


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

def _new_approle() -> tuple[str, str]:
    """A fresh role ID / secret ID pair, registered as secrets for the session-wide leak check."""
    role_id = f"{secrets.token_hex(4)}-{secrets.token_hex(2)}-{secrets.token_hex(2)}-{secrets.token_hex(6)}"
    secret_id = f"{secrets.token_hex(4)}-{secrets.token_hex(2)}-{secrets.token_hex(2)}-{secrets.token_hex(6)}"
    h.LEDGER.secret(role_id, "snapshot test AppRole role ID")
    h.LEDGER.secret(secret_id, "snapshot test AppRole secret ID")
    return role_id, secret_id


def _start(sims, name: str = "sim", *, approle: Optional[tuple[str, str]] = None, unseal: bool = True,
           extra: tuple[str, ...] = (), **kw: Any) -> h.Sim:
    args = ["--snapshot-size", str(SNAPSHOT_SIZE)]
    if approle:
        args += ["--approle-role-id", approle[0], "--approle-secret-id", approle[1]]
    s = sims(name, extra=args + list(extra), **kw)
    if unseal:
        s.unseal_now()
        s.wait_unsealed()
    return s


def _make_token(s: h.Sim, **body: Any) -> str:
    token = s.control("POST", "/tokens", body)["token"]
    h.LEDGER.secret(token, f"snapshot test token {body or ''}")
    return token


def _secret_file(path: Path, value: str, mode: int = 0o600) -> Path:
    path.write_text(value + "\n")
    os.chmod(path, mode)
    return path


def _snap_dir(tmp_path: Path, name: str = "snaps") -> Path:
    d = tmp_path / name
    d.mkdir(mode=0o700, exist_ok=True)
    return d


def _with_snapshot(config, target: Any, snapshot: dict, *, name: str = "vk.toml", peers: Any = ()) -> Path:
    """The `config` fixture's file plus a [snapshot] table (the fixture does not render one)."""
    path = config(target, name=name, peers=peers)
    lines = ["", "[snapshot]"] + [f"{k} = {h._toml_value(v)}" for k, v in snapshot.items()]
    path.write_text(path.read_text() + "\n".join(lines) + "\n")
    return path


def _approle_config(config, target: Any, tmp_path: Path, approle: tuple[str, str], directory: Path,
                    *, peers: Any = (), **more: Any) -> Path:
    role_file = _secret_file(tmp_path / "role_id", approle[0])
    secret_file = _secret_file(tmp_path / "secret_id", approle[1])
    table = {"directory": str(directory), "role_id_file": str(role_file), "secret_id_file": str(secret_file),
             "min_free_space": "1MiB"}
    table.update(more)
    return _with_snapshot(config, target, table, peers=peers)


def _token_config(config, target: Any, tmp_path: Path, token: str, directory: Path, *, peers: Any = (),
                  **more: Any) -> Path:
    token_file = _secret_file(tmp_path / "token", token)
    table = {"directory": str(directory), "token_file": str(token_file), "min_free_space": "1MiB"}
    table.update(more)
    return _with_snapshot(config, target, table, peers=peers)


def _now(cfg: Path, **kw: Any) -> h.CliResult:
    return h.run_cli(["snapshot", "now", "--config", str(cfg)], timeout=30, **kw)


def _verify(*files: Any) -> h.CliResult:
    return h.run_cli(["snapshot", "verify", *[str(f) for f in files]])


def _listing(directory: Path) -> tuple[list[str], list[str]]:
    """(snapshot files, temporary files) in the directory; anything else is a test failure."""
    names = sorted(os.listdir(directory))
    snaps = [n for n in names if NAME_RE.match(n)]
    temps = [n for n in names if TMP_RE.match(n)]
    other = [n for n in names if n not in snaps and n not in temps]
    assert not other, f"unexpected files in {directory}: {other}"
    return snaps, temps


def _assert_saved(r: h.CliResult, directory: Path) -> tuple[Path, int, int]:
    assert r.returncode == 0, str(r)
    m = SAVED_RE.search(r.stdout)
    assert m, str(r)
    path, size, index = Path(m.group(1)), int(m.group(2)), int(m.group(3))
    assert path.parent == directory, str(r)
    assert path.stat().st_size == size
    return path, size, index


def _assert_failed(r: h.CliResult, *needles: str) -> str:
    assert r.returncode == 1, str(r)
    assert "snapshot failed: " in r.stdout, str(r)
    assert not SAVED_RE.search(r.stdout), str(r)
    low = r.output.lower()
    for n in needles:
        assert n.lower() in low, f"{n!r} not in the output of {r}"
    return r.output


def _assert_no_secrets(r: h.CliResult, *values: str) -> None:
    for v in values:
        assert v and v not in r.output, f"a secret ({len(v)} chars) appears in the output of {r.args}"


def _archive(path: Path) -> dict[str, bytes]:
    """The snapshot's tar entries, read with Python's own gzip/tarfile (not vaultkeeper's)."""
    with gzip.open(path, "rb") as gz:
        data = gz.read()
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for member in tar.getmembers():
            f = tar.extractfile(member)
            assert f is not None, member.name
            out[member.name] = f.read()
    return out


def _sanitize(cluster: str) -> str:
    mapped = "".join(c if (c.isascii() and c.isalnum()) else "-" for c in cluster.lower())
    return "-".join(p for p in mapped.split("-") if p)[:64] or "vault"


def _fetch_snapshot(s: h.Sim, token: str, dest: Path, ca: str) -> Path:
    """A snapshot downloaded by Python itself, for the verifier tests."""
    ctx = ssl.create_default_context(cafile=ca)
    req = urllib.request.Request(s.address + SNAPSHOT_PATH, headers={"X-Vault-Token": token})
    with urllib.request.urlopen(req, timeout=10, context=ctx) as resp:
        dest.write_bytes(resp.read())
    return dest


def _snapshot_requests(s: h.Sim) -> list[dict]:
    return [r for r in s.requests() if r["path"] == SNAPSHOT_PATH]


# ---------------------------------------------------------------------------
# 1. Success: AppRole and static token
# ---------------------------------------------------------------------------

def test_approle_snapshot_is_saved_verified_and_matches_vault(sims, config, tmp_path):
    approle = _new_approle()
    s = _start(sims, approle=approle)
    snaps = _snap_dir(tmp_path)
    cfg = _approle_config(config, s, tmp_path, approle, snaps)

    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    r = _now(cfg)
    after = dt.datetime.now(dt.timezone.utc)
    path, size, index = _assert_saved(r, snaps)
    _assert_no_secrets(r, *approle)

    files, temps = _listing(snaps)
    assert files == [path.name] and temps == [], (files, temps)
    cluster, stamp, name_index = NAME_RE.match(path.name).groups()
    st = s.state()
    assert cluster == _sanitize(st["cluster_name"]), (cluster, st["cluster_name"])
    taken = dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
    assert before <= taken <= after, (before, taken, after)
    assert int(name_index) == index
    assert (path.stat().st_mode & 0o777) == 0o600, oct(path.stat().st_mode)
    assert path.stat().st_uid == os.geteuid()

    # What the simulator says it sent, and what is in the file, read by Python's gzip/tarfile.
    last = st["last_snapshot"]
    assert st["snapshots_completed"] == 1 and st["approle_logins"] == 1, st
    assert last["index"] == index and last["bytes"] == size == path.stat().st_size, (last, size)
    entries = _archive(path)
    assert list(entries) == ["meta.json", "state.bin", "SHA256SUMS", "SHA256SUMS.sealed"], list(entries)
    assert hashlib.sha256(entries["state.bin"]).hexdigest() == last["state_sha256"]
    meta = json.loads(entries["meta.json"])
    assert meta["Index"] == index and meta["Size"] == SNAPSHOT_SIZE == last["size"], meta

    # The token went in the X-Vault-Token header of the download.
    reqs = _snapshot_requests(s)
    assert [(q["status"], q["has_token"]) for q in reqs] == [(200, True)], reqs

    v = _verify(path)
    assert v.returncode == 0, str(v)
    assert v.stdout.strip() == f"{path}: OK (index {index}, term {meta['Term']}, state {SNAPSHOT_SIZE} bytes)", str(v)


def test_static_token_file_and_a_second_snapshot_beside_the_first(sims, config, tmp_path):
    s = _start(sims)
    token = _make_token(s)
    snaps = _snap_dir(tmp_path)
    cfg = _token_config(config, s, tmp_path, token, snaps)

    first, _, index1 = _assert_saved(_now(cfg), snaps)
    r = _now(cfg)
    second, _, index2 = _assert_saved(r, snaps)
    _assert_no_secrets(r, token)
    assert index2 > index1 and first != second
    files, temps = _listing(snaps)
    assert files == sorted([first.name, second.name]) and temps == []
    st = s.state()
    assert st["snapshots_completed"] == 2 and st["approle_logins"] == 0, st
    assert st["last_snapshot"]["index"] == index2
    assert hashlib.sha256(_archive(second)["state.bin"]).hexdigest() == st["last_snapshot"]["state_sha256"]
    v = _verify(first, second)
    assert v.returncode == 0 and v.stdout.count(": OK (index ") == 2, str(v)


def test_token_as_a_systemd_credential(sims, config, tmp_path):
    s = _start(sims)
    token = _make_token(s)
    creds = tmp_path / "creds"
    creds.mkdir(mode=0o700)
    _secret_file(creds / "snapshot-token", token, 0o400)
    snaps = _snap_dir(tmp_path)
    cfg = _with_snapshot(config, s, {"directory": str(snaps), "token_credential": "snapshot-token",
                                     "min_free_space": "1MiB"})

    r = _now(cfg, env={"CREDENTIALS_DIRECTORY": str(creds)})
    _assert_saved(r, snaps)
    _assert_no_secrets(r, token)

    r = _now(cfg, env={"CREDENTIALS_DIRECTORY": ""})
    _assert_failed(r, "CREDENTIALS_DIRECTORY", "snapshot-token")
    files, temps = _listing(snaps)
    assert len(files) == 1 and temps == [], (files, temps)


def test_slow_stream_is_received_completely(sims, config, tmp_path):
    s = _start(sims)
    token = _make_token(s)
    snaps = _snap_dir(tmp_path)
    cfg = _token_config(config, s, tmp_path, token, snaps)
    s.fault(kind="slow", bps=1024 * 1024, count=1)
    started = time.monotonic()
    path, size, _ = _assert_saved(_now(cfg), snaps)
    assert time.monotonic() - started >= 0.2  # the pacing was in effect
    assert s.state()["last_snapshot"]["bytes"] == size
    assert _verify(path).returncode == 0


# ---------------------------------------------------------------------------
# 2. Broken downloads: nothing kept, earlier snapshots untouched
# ---------------------------------------------------------------------------

BROKEN = {
    # case: (fault, words the reason must contain)
    "cut-unclean": ({"kind": "cut", "bytes": 100_000}, ("download failed", "closed")),
    "cut-clean": ({"kind": "cut", "bytes": 100_000, "clean": True}, ("verification", "truncated")),
    "corrupt": ({"kind": "corrupt", "offset": 50_000}, ("verification", "gzip")),
    "status-500": ({"kind": "status", "code": 500, "paths": [SNAPSHOT_PATH]}, ("500",)),
    "empty-200": ({"kind": "cut", "bytes": 0, "clean": True}, ("empty",)),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_download_keeps_only_the_earlier_snapshot(case, sims, config, tmp_path):
    fault, needles = BROKEN[case]
    approle = _new_approle()
    s = _start(sims, approle=approle)
    snaps = _snap_dir(tmp_path)
    cfg = _approle_config(config, s, tmp_path, approle, snaps)
    good, _, _ = _assert_saved(_now(cfg), snaps)
    good_bytes = good.read_bytes()

    s.fault(**fault, count=1)
    r = _now(cfg)
    _assert_failed(r, *needles)
    _assert_no_secrets(r, *approle)
    print(f"{case}: {r.stdout.strip()}")  # shown with -s / on failure

    files, temps = _listing(snaps)
    assert files == [good.name] and temps == [], (files, temps)
    assert good.read_bytes() == good_bytes
    st = s.state()
    if fault["kind"] in ("cut", "status"):
        assert st["snapshots_completed"] == 1, st  # the simulator really broke the second one
    if fault["kind"] != "status":
        assert st["snapshots_served"] == 2, st

    # The fault is used up: the next snapshot works and lands beside the first.
    again, _, _ = _assert_saved(_now(cfg), snaps)
    assert sorted(_listing(snaps)[0]) == sorted([good.name, again.name])


def test_max_duration_abandons_a_stalled_download(sims, config, tmp_path):
    s = _start(sims)
    token = _make_token(s)
    snaps = _snap_dir(tmp_path)
    cfg = _token_config(config, s, tmp_path, token, snaps, max_duration="10s")  # the smallest allowed
    # ~4 minutes for the whole stream: far beyond the test's own deadline, so a download that
    # was not abandoned at max_duration could not end in time (no stopwatch needed for that).
    s.fault(kind="slow", bps=1_000, count=1)
    started = time.monotonic()
    r = _now(cfg)
    took = time.monotonic() - started
    _assert_failed(r, "download failed", "timed out")
    assert took >= 9.5, took  # not before max_duration (a lower bound, which load cannot break)
    assert _listing(snaps) == ([], [])
    assert s.state()["snapshots_completed"] == 0


# ---------------------------------------------------------------------------
# 3. Authentication and authorisation failures
# ---------------------------------------------------------------------------

def test_token_without_the_snapshot_policy_gets_403(sims, config, tmp_path):
    s = _start(sims)
    token = _make_token(s, policies=["default"])
    snaps = _snap_dir(tmp_path)
    r = _now(_token_config(config, s, tmp_path, token, snaps))
    _assert_failed(r, "403", "permission denied", "sys/storage/raft/snapshot")
    _assert_no_secrets(r, token)
    assert _listing(snaps) == ([], [])
    assert [q["status"] for q in _snapshot_requests(s)] == [403]


@pytest.mark.parametrize("how", ["expired", "revoked"])
def test_expired_or_revoked_token_is_refused(how, sims, config, tmp_path):
    s = _start(sims)
    token = _make_token(s, ttl=1 if how == "expired" else 3600)
    snaps = _snap_dir(tmp_path)
    cfg = _token_config(config, s, tmp_path, token, snaps)
    if how == "expired":
        time.sleep(1.2)
    else:
        assert s.control("POST", "/tokens/revoke-all")["revoked"] >= 1
    r = _now(cfg)
    _assert_failed(r, "403", "invalid token")
    _assert_no_secrets(r, token)
    assert _listing(snaps) == ([], [])
    assert s.state()["snapshots_served"] == 0


def test_wrong_approle_secret_id_fails_the_login(sims, config, tmp_path):
    approle = _new_approle()
    wrong = _new_approle()[1]
    s = _start(sims, approle=approle)
    snaps = _snap_dir(tmp_path)
    r = _now(_approle_config(config, s, tmp_path, (approle[0], wrong), snaps))
    _assert_failed(r, "login", "failed", "auth/approle", "400")
    _assert_no_secrets(r, approle[0], approle[1], wrong)
    assert _listing(snaps) == ([], [])
    st = s.state()
    assert st["approle_login_failures"] == 1 and st["approle_logins"] == 0, st
    assert _snapshot_requests(s) == []  # no download attempted without a token


# ---------------------------------------------------------------------------
# 4. A standby redirects (307) to the active node
# ---------------------------------------------------------------------------

def test_standby_redirects_to_the_active_node_and_the_token_is_resent(sims, config, tmp_path):
    approle = _new_approle()
    active = _start(sims, "a", approle=approle, extra=("--node-id", "node-a"))
    # The standby shares the active node's --state-dir (seal, token store), as the README says.
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "state").symlink_to(active.state_dir, target_is_directory=True)
    standby = _start(sims, "b", approle=approle, init=None,
                     extra=("--node-id", "node-b", "--role", "standby", "--leader-address", active.address))
    assert standby.state()["role"] == "standby"

    snaps = _snap_dir(tmp_path)
    # The active node is a configured [[peer]]: a redirect is followed only to a configured node.
    cfg = _approle_config(config, standby, tmp_path, approle, snaps, peers=[active])
    r = _now(cfg)
    path, _, index = _assert_saved(r, snaps)
    _assert_no_secrets(r, *approle)

    a, b = active.state(), standby.state()
    assert a["snapshots_completed"] == 1 and b["snapshots_completed"] == 0, (a, b)
    assert b["approle_logins"] + a["approle_logins"] == 1
    assert a["last_snapshot"]["index"] == index
    assert [(q["status"], q["has_token"]) for q in _snapshot_requests(standby)] == [(307, True)]
    assert [(q["status"], q["has_token"]) for q in _snapshot_requests(active)] == [(200, True)]
    meta = json.loads(_archive(path)["meta.json"])
    assert meta["Configuration"]["Servers"][0]["ID"] == "node-a", meta
    assert _verify(path).returncode == 0

    # A standby that knows no leader: 503. One that points at itself: a redirect loop, given up.
    # A leader on plain http off this host: the token is not sent there. Nothing written each time.
    for leader, needles in (("", ("503",)), (standby.address, ("too many redirects",)),
                            ("http://192.0.2.1:8200", ("refusing", "plain http"))):
        standby.control("POST", "/leader", {"address": leader})
        r = _now(cfg)
        _assert_failed(r, *needles)
        _assert_no_secrets(r, *approle)
        assert _listing(snaps) == ([path.name], [])
    assert active.state()["snapshots_served"] == 1


# ---------------------------------------------------------------------------
# 5. Sealed Vault, not enough disk space
# ---------------------------------------------------------------------------

def test_sealed_vault_answers_503(sims, config, tmp_path):
    s = _start(sims, unseal=False)
    token = _make_token(s)
    snaps = _snap_dir(tmp_path)
    r = _now(_token_config(config, s, tmp_path, token, snaps))
    _assert_failed(r, "503", "sealed")
    _assert_no_secrets(r, token)
    assert _listing(snaps) == ([], [])
    assert [q["status"] for q in _snapshot_requests(s)] == [503]


def test_min_free_space_above_the_free_space_skips_the_snapshot(sims, config, tmp_path):
    approle = _new_approle()
    s = _start(sims, approle=approle)
    snaps = _snap_dir(tmp_path)
    free = shutil.disk_usage(snaps).free
    assert free < 100 * 2**40
    r = _now(_approle_config(config, s, tmp_path, approle, snaps, min_free_space="100TiB"))
    _assert_failed(r, "below min_free_space", str(snaps))
    assert _listing(snaps) == ([], [])
    st = s.state()
    # Checked before anything else: no login, no download.
    assert st["approle_logins"] == 0 and st["snapshots_served"] == 0, st


# ---------------------------------------------------------------------------
# 6. Credential files and configuration errors
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("problem", ["mode-0644", "mode-0640", "other-owner"])
def test_insecure_secret_id_file_is_refused(problem, sims, config, tmp_path):
    approle = _new_approle()
    s = _start(sims, approle=approle)
    snaps = _snap_dir(tmp_path)
    cfg = _approle_config(config, s, tmp_path, approle, snaps)
    secret_file = tmp_path / "secret_id"
    if problem == "other-owner":
        needs(os.geteuid() == 0, "root (to chown)")
        os.chown(secret_file, NOBODY, NOBODY)
        needles = (str(secret_file), f"uid {NOBODY}", "chown")
    else:
        os.chmod(secret_file, 0o644 if problem == "mode-0644" else 0o640)
        needles = (str(secret_file), "chmod 0600")
    r = _now(cfg)
    _assert_failed(r, *needles)
    _assert_no_secrets(r, *approle)
    assert _listing(snaps) == ([], [])
    st = s.state()
    assert st["approle_logins"] == 0 and st["approle_login_failures"] == 0, st


def test_missing_snapshot_table_is_a_config_error(sim, config):
    cfg = config(sim)
    r = _now(cfg)
    assert r.returncode == h.EX_CONFIG, str(r)
    assert f"{cfg}: snapshot: no [snapshot] table" in r.stderr, str(r)
    assert r.stdout == ""


def _bad_snapshot_tables(tmp_path: Path) -> dict[str, tuple[list[str], str, str]]:
    """case -> ([snapshot] lines, the offending key, a needle of the message)."""
    d = _snap_dir(tmp_path)
    tok = _secret_file(tmp_path / "tok", "s.placeholder000000000000")
    base = [f'directory = "{d}"', f'token_file = "{tok}"']
    return {
        "unknown-key": (base + ['keep_lats = 3'], "keep_lats", "unknown key"),
        "interval-too-short": (base + ['interval = "500ms"'], "interval", "at least"),
        "bad-size": (base + ['min_free_space = "lots"'], "min_free_space", "is not a size"),
        "bad-daily-at": (base + ['daily_at = "25:00"'], "daily_at", "HH:MM"),
        "relative-directory": (['directory = "snaps"', f'token_file = "{tok}"'], "directory", "absolute path"),
        "missing-token-file": (base[:1] + [f'token_file = "{tmp_path}/nope"'], "token_file", "does not exist"),
        "token-and-approle": (base + [f'role_id_file = "{tok}"', f'secret_id_file = "{tok}"'], "token_file",
                              "not both"),
        "keep-negative": (base + ['keep_last = -1'], "keep_last", "between"),
    }


@pytest.mark.parametrize("case", ["unknown-key", "interval-too-short", "bad-size", "bad-daily-at",
                                  "relative-directory", "missing-token-file", "token-and-approle", "keep-negative"])
def test_bad_snapshot_key_is_a_located_config_error(case, config, tmp_path):
    lines, key, needle = _bad_snapshot_tables(tmp_path)[case]
    cfg = config({"address": f"https://127.0.0.1:{h.free_port()}"})
    text = cfg.read_text() + "\n[snapshot]\n" + "\n".join(lines) + "\n"
    cfg.write_text(text)
    all_lines = text.splitlines()
    table_at = all_lines.index("[snapshot]")  # [health] has an `interval` too: find the one in [snapshot]
    line = next(i for i, l in enumerate(all_lines, 1) if i > table_at and re.match(rf"^{key} = ", l))
    r = _now(cfg)
    assert r.returncode == h.EX_CONFIG, str(r)
    assert f"{cfg}:{line}: snapshot.{key}: " in r.stderr, str(r)
    assert needle in r.stderr, str(r)
    assert r.stdout == ""


# ---------------------------------------------------------------------------
# 7. snapshot verify
# ---------------------------------------------------------------------------

@pytest.fixture
def fetched(sims, tmp_path, pki) -> Path:
    """One good snapshot, downloaded by Python (not by vaultkeeper)."""
    s = _start(sims)
    return _fetch_snapshot(s, _make_token(s), tmp_path / "good.snap", pki["ca"])


def test_verify_accepts_a_snapshot_taken_by_another_client(fetched):
    r = _verify(fetched)
    assert r.returncode == 0, str(r)
    assert r.stdout.startswith(f"{fetched}: OK (index "), str(r)


def _damaged(good: Path, tmp_path: Path) -> dict[str, Path]:
    data = good.read_bytes()
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    out = {
        "flipped-byte": bytes(flipped),
        "truncated": data[: len(data) // 2],
        "no-trailer": data[:-8],
        "not-gzip": b"this is not a snapshot\n",
        "empty": b"",
    }
    paths = {}
    for name, content in out.items():
        p = tmp_path / f"{name}.snap"
        p.write_bytes(content)
        paths[name] = p
    return paths


def test_verify_rejects_damaged_files(fetched, tmp_path):
    for name, path in _damaged(fetched, tmp_path).items():
        r = _verify(path)
        assert r.returncode == 1, f"{name}: {r}"
        assert r.stdout.startswith(f"{path}: BAD: "), f"{name}: {r}"
        assert len(r.stdout.strip().splitlines()) == 1, f"{name}: {r}"
    r = _verify(tmp_path / "missing.snap")
    assert r.returncode == 1 and f"{tmp_path / 'missing.snap'}: BAD: cannot open" in r.stdout, str(r)


def test_verify_several_files_reports_each(fetched, tmp_path):
    bad = _damaged(fetched, tmp_path)["flipped-byte"]
    r = _verify(fetched, bad)
    assert r.returncode == 1, str(r)
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 2, str(r)
    assert lines[0].startswith(f"{fetched}: OK (index "), str(r)
    assert lines[1].startswith(f"{bad}: BAD: "), str(r)


# ---------------------------------------------------------------------------
# 8. No secrets in the output of a failing run (the session ledger checks everything globally)
# ---------------------------------------------------------------------------

def test_failing_runs_never_print_credentials(sims, config, tmp_path):
    approle = _new_approle()
    s = _start(sims, approle=approle)
    snaps = _snap_dir(tmp_path)
    # The wrong secret ID contains the role ID: a login error echoing the request would show both.
    cfg = _approle_config(config, s, tmp_path, (approle[0], approle[0] + "x"), snaps)
    h.LEDGER.secret(approle[0] + "x", "snapshot test wrong secret ID")
    r = _now(cfg)
    _assert_failed(r, "login")
    _assert_no_secrets(r, approle[0], approle[0] + "x", approle[1])

    token = _make_token(s, policies=["default"])
    r = _now(_token_config(config, s, tmp_path, token, snaps))
    _assert_failed(r, "403")
    _assert_no_secrets(r, token, approle[0], approle[1])
    s.seal()
    r = _now(_token_config(config, s, tmp_path, token, snaps))
    _assert_failed(r, "503")
    _assert_no_secrets(r, token)
