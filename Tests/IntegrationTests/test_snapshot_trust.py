# SPDX-License-Identifier: Apache-2.0
"""Issue #10, items 4 and 5, run as attacks against the built binary:

- retention trusts no name it should not: objects dated in the future, put in the bucket by
  someone allowed to write there, do not evict vaultkeeper's real backups and are reported; two
  clusters sharing a bucket prefix do not prune each other; a file dated in the future in the
  snapshot directory (a clock that was ahead) neither hides staleness nor deletes real snapshots;
- a slow peer does not freeze the snapshot duty: a real listener on loopback stands in for it,
  accepting the upload and then reading it at 2 KiB/s (just above curl's low-speed limit) or not
  at all. The upload is abandoned at its deadline, local snapshots go on on schedule, the stale
  alert fires on its timer while the upload hangs, and an upload cut short by a reload is made
  up by the next generation.

The S3 peers are the real `moto_server` and `rclone serve s3` of test_snapshot_s3.py."""

from __future__ import annotations

import datetime as dt
import http.client
import http.server
import json
import os
import shutil
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any, Optional

import pytest

import test_snapshot as ts
import test_snapshot_duty as td
import test_snapshot_s3 as t3
import vk_harness as h
from test_snapshot_s3 import BUCKET, moto, rclone  # noqa: F401  (module fixtures)

DAY = dt.timedelta(days=1)


@pytest.fixture(params=["moto", "rclone"])
def each_peer(request):
    return t3._emptied(request.getfixturevalue(request.param))


def _config(config, s: h.Sim, tmp_path: Path, snapshot: dict, s3: Optional[dict] = None, *, name: str = "vk",
            metrics_dir: Optional[Path] = None) -> Path:
    """A [vault] table for `s`, a token-authenticated [snapshot] (own token file and state file
    under tmp_path/name) and, with `s3`, a [snapshot.s3] table."""
    work = tmp_path / name
    work.mkdir(exist_ok=True)
    token = ts._make_token(s)
    table = {"token_file": str(ts._secret_file(work / "token", token)), "min_free_space": "1MiB",
             "state_file": str(work / "snapshot-state.json")}
    table.update(snapshot)
    path = config(s, name=f"{name}.toml", metrics={"textfile_dir": str(metrics_dir)} if metrics_dir else None)
    lines = ["", "[snapshot]"] + [f"{k} = {h._toml_value(v)}" for k, v in table.items()]
    if s3 is not None:
        lines += ["", "[snapshot.s3]"] + [f"{k} = {h._toml_value(v)}" for k, v in s3.items()]
    path.write_text(path.read_text() + "\n".join(lines) + "\n")
    return path


def _s3(tmp_path: Path, m: Any, name: str = "vk") -> dict:
    work = tmp_path / name
    work.mkdir(exist_ok=True)
    return t3._s3_table(work, m)


def _name(cluster: str, when: dt.datetime, index: int) -> str:
    return f"vaultkeeper-{cluster}-{when.strftime('%Y%m%dT%H%M%SZ')}-{index}.snap"


def _uploaded_keys(d: h.Daemon) -> list[str]:
    """Keys of the daemon's snapshot-uploaded entries, in order."""
    out = []
    for e in d.entries("snapshot_uploaded"):
        location = e.text.split("snapshot uploaded to s3://", 1)[1].split(" ", 1)[0]
        out.append(location.split("/", 1)[1])
    return out


def _attacker(m: t3.S3Peer):
    """A client allowed to put objects under the prefix: on moto an IAM user with s3:PutObject
    only (nothing else), on rclone (no policies) the admin key."""
    if not isinstance(m, t3.Moto):
        return m.admin
    cached = getattr(m, "_attacker", None)
    if cached is not None:
        return cached
    # The fixture's admin user may do anything, IAM included.
    creds = m.admin._request_signer._credentials
    iam = m._client("iam", creds.access_key, creds.secret_key)
    iam.create_user(UserName="attacker")
    iam.put_user_policy(UserName="attacker", PolicyName="put-only", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["s3:PutObject"], "Resource": [f"arn:aws:s3:::{BUCKET}/{m.prefix}*"]}]}))
    key = iam.create_access_key(UserName="attacker")["AccessKey"]
    h.LEDGER.secret(key["SecretAccessKey"], "S3 attacker secret access key")
    client = m._client("s3", key["AccessKeyId"], key["SecretAccessKey"])
    m._attacker = client
    return client


def _entry_time(e: h.LogEntry) -> float:
    return dt.datetime.strptime(e.time, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc).timestamp()


def _metric(d: h.Daemon, name: str) -> Optional[float]:
    return td._metrics(d).get(name)


# ---------------------------------------------------------------------------
# Item 4: retention trusts names
# ---------------------------------------------------------------------------

def test_future_dated_objects_put_by_an_attacker_do_not_evict_the_real_backups(sims, daemons, config, tmp_path, each_peer):
    m = each_peer
    s = ts._start(sims)
    cluster, cluster_id = s.state()["cluster_name"], s.state()["cluster_id"]
    snaps = ts._snap_dir(tmp_path)
    mdir = tmp_path / "textfile"
    mdir.mkdir()
    cfg = _config(config, s, tmp_path, {"directory": str(snaps), "interval": "2s", "keep_last": 3}, _s3(tmp_path, m), metrics_dir=mdir)
    d = daemons(cfg, metrics_dir=mdir)
    d.wait_entry("snapshot_uploaded", count=3, timeout=30)

    # Someone allowed to put objects under the prefix uploads three "snapshots" of this cluster
    # dated in the future, copying a real one's bytes and the cluster ID (sys/health tells anyone).
    attacker = _attacker(m)
    now = dt.datetime.now(dt.timezone.utc)
    body = t3._object_bytes(m, _uploaded_keys(d)[-1])
    forged = [m.prefix + _name(cluster, now + n * DAY, 10_000 + n) for n in (1, 2, 3)]
    for key in forged:
        attacker.put_object(Bucket=BUCKET, Key=key, Body=body, Metadata={"vaultkeeper-cluster-id": cluster_id})
    assert set(forged) <= set(m.keys())

    # vaultkeeper goes on uploading and pruning: its own newest three stay, the forgeries neither
    # count nor get deleted.
    before = len(d.entries("snapshot_uploaded"))
    d.wait_entry("snapshot_uploaded", count=before + 3, timeout=30)
    uploaded = _uploaded_keys(d)
    d.stop()
    keys = set(m.keys())
    assert set(forged) <= keys, sorted(keys)
    real = sorted(k for k in keys if k not in forged)
    # keep_last = 3 (a fourth may be just uploaded when the stop came before its retention).
    assert 3 <= len(real) <= 4 and uploaded[-1] in real, (real, uploaded)
    assert set(real) <= set(uploaded)
    assert not [e for e in d.entries("snapshot_retention_deleted") if any(k in e.text for k in forged)]
    # Each forgery was reported: a journal warning, and the metric (written at the stop too).
    warned = d.entries("snapshot_future_dated")
    assert all(e.level == "warning" and "dated in the future" in e.text for e in warned)
    assert {k for k in forged if any(k in e.text for e in warned)} == set(forged), d.stderr()
    assert _metric(d, "vaultkeeper_snapshot_future_dated") == 3


def test_two_clusters_sharing_a_prefix_do_not_prune_each_other(sims, daemons, config, tmp_path, each_peer):
    m = each_peer
    a, b = ts._start(sims, name="a"), ts._start(sims, name="b")
    names = {a.state()["cluster_name"], b.state()["cluster_name"]}
    assert len(names) == 2
    ds = []
    for s, name in ((a, "a"), (b, "b")):
        snaps = ts._snap_dir(tmp_path, f"snaps-{name}")
        cfg = _config(config, s, tmp_path, {"directory": str(snaps), "interval": "2s", "keep_last": 2}, _s3(tmp_path, m, name), name=name)
        ds.append(daemons(cfg, name=name))
    for d in ds:
        d.wait_entry("snapshot_uploaded", count=4, timeout=40)
    for d in ds:
        d.stop()
    keys = m.keys()
    for cluster in names:
        mine = [k for k in keys if k.startswith(f"{m.prefix}vaultkeeper-{cluster}-")]
        # keep_last = 2 per cluster (3 when a stop came between an upload and its retention).
        assert 2 <= len(mine) <= 3, (cluster, sorted(keys))
    for d, s in zip(ds, (a, b)):
        other = (names - {s.state()["cluster_name"]}).pop()
        assert not [e for e in d.entries("snapshot_retention_deleted") if other in e.text], d.stderr()


def test_a_future_dated_local_file_neither_hides_staleness_nor_deletes_real_snapshots(sims, daemons, config, tmp_path):
    s = ts._start(sims)
    snaps = ts._snap_dir(tmp_path)
    mdir = tmp_path / "textfile"
    mdir.mkdir()
    cfg = _config(config, s, tmp_path, {"directory": str(snaps), "interval": "1h", "stale_after": "1h", "keep_last": 2}, metrics_dir=mdir)
    # A real, verified snapshot; copies of it stand for the ones taken 3 h and 2 h ago, and one
    # written while the clock was 30 days ahead.
    path, _, _ = ts._assert_saved(ts._now(cfg), snaps)
    cluster, _, index = ts.NAME_RE.match(path.name).groups()
    now = dt.datetime.now(dt.timezone.utc)
    old3, old2 = _name(cluster, now - dt.timedelta(hours=3), 1), _name(cluster, now - dt.timedelta(hours=2), 2)
    future = _name(cluster, now + 30 * DAY, 3)
    for name in (old3, old2, future):
        shutil.copy2(path, snaps / name)
    path.unlink()
    ledger = tmp_path / "vk" / "snapshot-state.json"
    ledger.write_text(json.dumps({"tracking_since": time.time() - 7 * 86400, "last_success": {
        "time": time.time() - 2 * 3600, "file": old2, "raft_index": 2, "bytes": (snaps / old2).stat().st_size, "duration_seconds": 1}}))
    os.chmod(ledger, 0o600)
    s.seal()  # no new snapshot can hide the problem

    d = daemons(cfg, metrics_dir=mdir)
    # Stale: the last good snapshot (the ledger's) is 2 h old; the future name does not count.
    stale = d.wait_entry("snapshots_stale", timeout=15)
    assert "last good snapshot is 2h" in stale[0].text, stale[0].text
    d.wait_status("backups STALE")
    warned = d.wait_entry("snapshot_future_dated", timeout=5)
    assert future in warned[0].text and warned[0].level == "warning"
    h.wait_until(lambda: _metric(d, "vaultkeeper_snapshot_stale") == 1, 10, what="stale metric")
    assert _metric(d, "vaultkeeper_snapshot_future_dated") == 1
    r = h.run_cli(["check", "--config", str(cfg), "--state-file", str(d.state_file)])
    assert r.returncode in (1, 2) and "snapshots: last good snapshot 2h" in r.stdout, r
    d.stop()
    # Without the daemon, `check` reads the ledger (not the names) the same way.
    r = h.run_cli(["check", "--config", str(cfg), "--state-file", str(tmp_path / "none.json")])
    assert r.returncode == 2 and "CRITICAL: snapshots: last good snapshot 2h" in r.stdout, r

    # Vault is back: a snapshot is taken, retention keeps it and the newest real one (keep_last
    # 2); the future-dated file is neither counted nor deleted.
    s.unseal_now()
    d = daemons(cfg, metrics_dir=mdir, name="vk2")
    taken = d.wait_entry("snapshot_taken", timeout=15)
    assert "fresh again" in taken[0].text or not d.entries("snapshots_stale")
    deleted = d.wait_entry("snapshot_retention_deleted", timeout=10)
    assert old3 in deleted[0].text
    files = set(os.listdir(snaps))
    assert old2 in files and future in files and old3 not in files, sorted(files)
    assert len([f for f in files if ts.NAME_RE.match(f)]) == 3


# ---------------------------------------------------------------------------
# Item 5: a slow peer freezes the snapshot duty
# ---------------------------------------------------------------------------

class SlowPeer:
    """A real listener standing in for a slow S3 peer. Every request is forwarded to the real
    peer unchanged (the signature covers the Host header, which is passed through), except a PUT
    while `mode` is not "forward": its body is then read at `bps` bytes/s ("trickle", just above
    curl's 1 KiB/s low-speed limit) or not at all ("stall"), and never forwarded. A small receive
    buffer makes the client feel it at once instead of filling kernel buffers."""

    def __init__(self, upstream_port: int, mode: str, bps: int = 2048, slow_puts: Optional[int] = None):
        peer = self
        self.mode = mode
        self.bps = bps
        # Only this many PUTs are slowed (None: all); later ones are forwarded.
        self.slow_puts = slow_puts
        self.closing = False
        self.lock = threading.Lock()
        self.puts: list[dict] = []

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def server_bind(self) -> None:
                self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                super().server_bind()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _slow(self, length: int) -> None:
                record = {"path": self.path, "started": time.monotonic(), "started_wall": time.time(), "ended": None, "bytes": 0}
                with peer.lock:
                    peer.puts.append(record)
                try:
                    while not peer.closing and peer.mode != "forward" and record["bytes"] < length:
                        if peer.mode == "stall":
                            time.sleep(0.05)
                            continue
                        chunk = self.rfile.read(min(peer.bps // 4, length - record["bytes"]))
                        if not chunk:
                            break  # the client gave up
                        record["bytes"] += len(chunk)
                        time.sleep(0.25)
                finally:
                    record["ended"] = time.monotonic()
                    self.close_connection = True  # a slow body is never forwarded

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if self.command == "PUT" and peer.mode != "forward" and (peer.slow_puts is None or len(peer.puts) < peer.slow_puts):
                    self._slow(length)
                    return
                body = self.rfile.read(length) if length else None
                h.relay(self, "127.0.0.1", upstream_port, self.path, body=body, timeout=20)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        self.server = Server(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def active(self) -> int:
        with self.lock:
            return sum(1 for p in self.puts if p["ended"] is None)

    def wait_put(self, timeout: float) -> dict:
        return h.wait_until(lambda: self.puts[0] if self.puts else None, timeout, what="a PUT at the slow peer")

    def stop(self) -> None:
        self.closing = True
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def slow_peer(moto):
    peers: list[SlowPeer] = []

    def start(mode: str, **kw: Any) -> SlowPeer:
        p = SlowPeer(moto.port, mode, **kw)
        peers.append(p)
        return p

    yield start
    for p in peers:
        p.stop()


BIG = ("--snapshot-size", str(8 << 20), "--snapshot-gzip-level", "0")  # an ~8 MiB file: 70 min at 2 KiB/s


def test_a_trickling_peer_is_abandoned_at_the_deadline_and_local_snapshots_go_on(sims, daemons, config, tmp_path, moto, slow_peer):
    m = t3._emptied(moto)
    peer = slow_peer("trickle")
    s = ts._start(sims, extra=BIG)
    snaps = ts._snap_dir(tmp_path)
    # 8 MiB at 1 MiB/s: the upload's deadline is about 8 s (more than transfer_timeout's 5 s).
    cfg = _config(config, s, tmp_path, {"directory": str(snaps), "interval": "2s", "keep_last": 3, "transfer_timeout": "5s",
                                        "transfer_min_rate": "1MiB"}, _s3(tmp_path, t3._via(m, peer.endpoint)))
    d = daemons(cfg)
    put = peer.wait_put(20)
    taken_at_start = len(d.entries("snapshot_taken"))
    failed = d.wait_entry("snapshot_upload_failed", timeout=30)
    assert "timeout" in failed[0].text.lower() and "is kept" in failed[0].text, failed[0].text
    # From the PUT's arrival to the entry (the peer keeps reading what the kernel still holds
    # after the client's close, so the entry's time is the measure).
    lasted = _entry_time(failed[0]) - put["started_wall"]
    assert 7 <= lasted <= 16, f"the upload lasted {lasted:.1f} s, its deadline is about 8 s"
    assert put["bytes"] < 100_000  # it really was trickling
    # Meanwhile the schedule went on: a snapshot every 2 s while the upload hung.
    assert len(d.entries("snapshot_taken")) - taken_at_start >= 2, d.stderr()
    assert not d.entries("snapshot_failed")
    # The next run tries again (the newest snapshot), and is abandoned the same way.
    d.wait_entry("snapshot_upload_failed", count=2, timeout=30)
    assert m.keys() == {}


def test_the_stale_alert_fires_on_its_timer_while_an_upload_hangs(sims, daemons, config, tmp_path, moto, slow_peer):
    t3._emptied(moto)
    peer = slow_peer("trickle")
    s = ts._start(sims, extra=BIG)
    snaps = ts._snap_dir(tmp_path)
    mdir = tmp_path / "textfile"
    mdir.mkdir()
    # One snapshot now, the next in an hour; stale after 3 s. The upload's deadline (60 s and up)
    # outlasts the test: only the timer can raise the alert.
    cfg = _config(config, s, tmp_path, {"directory": str(snaps), "interval": "1h", "stale_after": "3s", "transfer_timeout": "60s",
                                        "transfer_min_rate": "1MiB"}, _s3(tmp_path, t3._via(moto, peer.endpoint)), metrics_dir=mdir)
    d = daemons(cfg, metrics_dir=mdir)
    peer.wait_put(20)
    stale = d.wait_entry("snapshots_stale", timeout=15)
    assert stale[0].level == "error" and "last good snapshot is" in stale[0].text
    assert peer.active() == 1, "the upload should still be hanging"
    d.wait_status("backups STALE")
    h.wait_until(lambda: _metric(d, "vaultkeeper_snapshot_stale") == 1, 8, what="stale metric")
    r = h.run_cli(["check", "--config", str(cfg), "--state-file", str(d.state_file)])
    assert r.returncode in (1, 2) and "snapshots: last good snapshot" in r.stdout, r
    assert peer.active() == 1 and not d.entries("snapshot_upload_failed")


def test_an_upload_cut_by_a_reload_is_made_up_by_the_next_generation(sims, daemons, config, tmp_path, moto, slow_peer):
    m = t3._emptied(moto)
    peer = slow_peer("stall", slow_puts=1)  # the first upload hangs; the peer then works again
    s = ts._start(sims)
    snaps = ts._snap_dir(tmp_path)
    cfg = _config(config, s, tmp_path, {"directory": str(snaps), "interval": "1h", "transfer_timeout": "60s"},
                  _s3(tmp_path, t3._via(m, peer.endpoint)))
    d = daemons(cfg)
    put = peer.wait_put(20)
    (local,) = ts._listing(snaps)[0]
    key = m.prefix + local
    assert put["path"].endswith("/" + key)
    # The reload lands between the snapshot's commit and its upload's end.
    d.signal(signal.SIGHUP)
    d.wait_entry("config_reloaded", timeout=10)
    h.wait_until(lambda: key in m.keys(), 30, what=f"{key} uploaded after the reload")
    assert t3._object_bytes(m, key) == (snaps / local).read_bytes()
    assert len(d.entries("snapshot_taken")) == 1  # made up by the catch-up, not by a new snapshot
    assert d.wait_entry("snapshot_uploaded", contains=key)
