# SPDX-License-Identifier: Apache-2.0
"""The snapshot duty against one real OpenBao 2.7 node (Raft storage, TLS from the test CA):

- the AppRole set up by running deploy/vault-policy-snapshot.hcl's comment literally, then
  `snapshot now` and `snapshot verify`, with OpenBao's real archive read by Python's gzip/tarfile,
  and a snapshot saved by plain `bao operator raft snapshot save` verified by vaultkeeper;
- scheduled snapshots in `vaultkeeper run`: retention, ledger, STATUS, state file, metrics;
- a short-lived AppRole token renewed, then replaced at its max TTL, seen in OpenBao's own audit
  log, with no request refused;
- `snapshot restore` bringing deleted data back (the node stays unsealed);
- another cluster's snapshot restored with `--force`: OpenBao seals itself, the daemon beside it
  holds that seal (the same process sealed), after the restart reports the wrong key once and
  does not loop, and the operator's recovery from the runbook (restart OpenBao, install the
  other cluster's shares, reload vaultkeeper) unseals it.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import signal
import time
from pathlib import Path

import bao_harness as bh
import snapshot_support as ss
import test_snapshot as ts
import test_snapshot_duty as tsd
import vk_harness as h

SNAPSHOT_MEMBERS = ["meta.json", "state.bin", "SHA256SUMS", "SHA256SUMS.sealed"]
RESTORE_POLICY = 'path "sys/storage/raft/snapshot" {\n  capabilities = ["read", "update"]\n}\n'


def _snapshot_config(config, node: bh.BaoNode, table: dict, **kw) -> Path:
    table = {"min_free_space": "1MiB", **table}
    return ss.with_snapshot(config(node, **kw), table)


def _approle_table(creds: ss.AppRole, directory, **more) -> dict:
    return {"directory": str(directory), "role_id_file": str(creds.role_id_file),
            "secret_id_file": str(creds.secret_id_file), **more}


def _unsealed(node: bh.BaoNode, init: dict) -> None:
    node.unseal_with(init)
    node.wait_active()


def _restore(cfg, *args: str) -> h.CliResult:
    return h.run_cli(["snapshot", "restore", "--config", str(cfg), *args], timeout=90)


# ---------------------------------------------------------------------------
# 1. The policy comment's AppRole, `snapshot now`, `snapshot verify`, OpenBao's archive
# ---------------------------------------------------------------------------

def test_policy_comment_approle_snapshot_now_and_verify_of_openbaos_archive(bao, config, tmp_path):
    node, init = bao
    _unsealed(node, init)
    creds = ss.approle_from_policy_comment(node, tmp_path / "approle")
    assert creds.role == "vaultkeeper"
    for f in (creds.role_id_file, creds.secret_id_file):  # the comment's `umask 077` at work
        assert f.stat().st_mode & 0o777 == 0o600, (f, oct(f.stat().st_mode))
    role = json.loads(node.cli("read", "-format=json", f"auth/approle/role/{creds.role}",
                               token=node.root_token).stdout)["data"]
    assert role["token_no_default_policy"] is True and role["token_policies"] == ["vaultkeeper-snapshot"], role

    snaps = ts._snap_dir(tmp_path)
    cfg = _snapshot_config(config, node, _approle_table(creds, snaps))
    r = ts._now(cfg)
    path, size, index = ts._assert_saved(r, snaps)
    ts._assert_no_secrets(r, creds.role_id, creds.secret_id)
    assert ts._listing(snaps) == ([path.name], [])
    cluster, _, name_index = ts.NAME_RE.match(path.name).groups()
    assert cluster == ts._sanitize(ss.cluster_name(node)) and int(name_index) == index, path.name
    assert path.stat().st_mode & 0o777 == 0o600

    # OpenBao's real archive, read by Python's own gzip and tarfile: the members Vault writes,
    # SHA256SUMS covering meta.json and state.bin, meta.json's index and size.
    entries = ts._archive(path)
    assert list(entries) == SNAPSHOT_MEMBERS, list(entries)
    sums = dict(reversed(line.split()) for line in entries["SHA256SUMS"].decode().splitlines() if line.strip())
    assert sums == {"meta.json": hashlib.sha256(entries["meta.json"]).hexdigest(),
                    "state.bin": hashlib.sha256(entries["state.bin"]).hexdigest()}, sums
    meta = json.loads(entries["meta.json"])
    assert meta["Index"] == index and meta["Size"] == len(entries["state.bin"]), meta
    assert entries["SHA256SUMS.sealed"], "OpenBao seals the checksum file with its barrier key"

    v = ts._verify(path)
    assert v.returncode == 0, str(v)
    assert v.stdout.strip() == f"{path}: OK (index {index}, term {meta['Term']}, state {meta['Size']} bytes)", str(v)

    # A snapshot saved by the operator with plain `bao operator raft snapshot save` verifies too.
    plain = tmp_path / "plain.snap"
    node.cli("operator", "raft", "snapshot", "save", str(plain), token=node.root_token)
    plain_meta = json.loads(ts._archive(plain)["meta.json"])
    assert plain_meta["Index"] >= index, (plain_meta, index)
    v = ts._verify(plain)
    assert v.returncode == 0, str(v)
    assert v.stdout.strip() == (f"{plain}: OK (index {plain_meta['Index']}, term {plain_meta['Term']}, "
                                f"state {plain_meta['Size']} bytes)"), str(v)

    # A damaged copy of OpenBao's archive is caught.
    damaged = tmp_path / "damaged.snap"
    data = bytearray(plain.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    v = ts._verify(damaged)
    assert v.returncode == 1 and "BAD" in v.stdout, str(v)

    # The policy is read-only: the duty's own token cannot restore, and the command says what to use.
    r = _restore(cfg, str(path), "--confirm-overwrite")
    assert r.returncode == 1 and "403" in r.stdout and "--token-file" in r.stdout, str(r)
    ts._assert_no_secrets(r, creds.role_id, creds.secret_id)


# ---------------------------------------------------------------------------
# 2. Scheduled snapshots in `vaultkeeper run`
# ---------------------------------------------------------------------------

def test_scheduled_snapshots_with_retention_ledger_status_and_metrics(bao, daemons, config, tmp_path):
    node, init = bao
    _unsealed(node, init)
    creds = ss.approle_from_policy_comment(node, tmp_path / "approle")
    node.seal()  # the daemon starts beside a sealed node: it unseals it, then the duty begins
    snaps = ts._snap_dir(tmp_path)
    mdir = tmp_path / "textfile"
    mdir.mkdir()
    ledger = tmp_path / "snapshot-state.json"
    cfg = _snapshot_config(config, node, _approle_table(creds, snaps, interval="2s", keep_last=2, state_file=str(ledger)),
                           key_file=ss.unseal_key_file(tmp_path / "keys.json", init),
                           metrics={"textfile_dir": str(mdir)})
    d = daemons(cfg, metrics_dir=mdir)
    d.wait_entry("unsealed", contains="sealed at start-up", timeout=20)
    taken = d.wait_entry("snapshot_taken", count=4, timeout=60)
    assert all(e.level == "notice" and "verified" in e.text and "raft index" in e.text for e in taken), taken
    # The first snapshot came after the unseal, never while sealed.
    log = d.log()
    assert log.index(d.entries("unsealed")[0]) < log.index(taken[0])
    deleted = d.wait_entry("snapshot_retention_deleted", count=2, timeout=20)
    assert all("not kept by any keep_* rule" in e.text for e in deleted), deleted
    d.wait_status("snapshot ", "ago", timeout=15)
    state = d.wait_state(lambda s: (s.get("snapshot") or {}).get("last_success"), timeout=15)
    assert state["nodes"][0]["state"] == "active", state
    # The metrics file is rewritten after the journal entries: wait for one that counts both
    # deletions the journal showed.
    m = h.wait_until(lambda: x if (x := tsd._metrics(d)).get("vaultkeeper_snapshot_retention_deleted_total", 0) >= 2 else None,
                     h.WAIT_CEILING, what="snapshot metrics counting both deletions")
    assert abs(m["vaultkeeper_snapshot_last_success_timestamp_seconds"] - time.time()) < 60, m
    assert m["vaultkeeper_snapshot_last_size_bytes"] > 0
    assert m["vaultkeeper_snapshot_stale"] == 0
    assert m['vaultkeeper_snapshot_failures_total{reason="auth"}'] == 0
    assert m["vaultkeeper_snapshot_retention_deleted_total"] >= 2

    # Stop in the quiet gap after a snapshot and its retention (the next one is 2 s away), so the
    # directory and the ledger are what the duty left, not a snapshot cut off by the stop.
    def settled():
        n = len(d.entries("snapshot_taken"))
        return n >= 4 and len(d.entries("snapshot_retention_deleted")) == n - 2
    h.wait_until(settled, 30, interval=0.01, what="a snapshot and its retention done")
    assert d.stop(timeout=20) == 0
    assert not d.entries("snapshot_failed"), d.stderr()
    assert not d.entries(contains="could not renew"), d.stderr()
    # Retention leaves the two newest; the ledger names the newest; each is OpenBao's archive intact.
    files = tsd._snapshots(snaps)
    assert len(files) == 2, (files, d.stderr())
    indexes = [int(ts.NAME_RE.match(f).group(3)) for f in files]
    newest = max(files, key=lambda f: (ts.NAME_RE.match(f).group(2), int(ts.NAME_RE.match(f).group(3))))
    assert json.loads(ledger.read_text())["last_success"]["file"] == newest, (ledger.read_text(), files, d.stderr())
    assert ledger.stat().st_mode & 0o777 == 0o600
    v = ts._verify(*(snaps / f for f in files))
    assert v.returncode == 0 and v.stdout.count(": OK (index ") == 2, str(v)
    assert int(ts.NAME_RE.match(newest).group(3)) == max(indexes), files
    for f in files:
        assert (snaps / f).stat().st_mode & 0o777 == 0o600


# ---------------------------------------------------------------------------
# 3. A short-lived AppRole token: renewed, then replaced at its max TTL, never refused
# ---------------------------------------------------------------------------

def test_short_lived_token_is_renewed_then_replaced_and_no_request_is_refused(baos, daemons, config, tmp_path):
    audit = tmp_path / "audit.log"
    node = baos("node1", config_extra=ss.audit_stanza(audit))
    init = node.operator_init(5, 3)
    _unsealed(node, init)
    ttl, max_ttl = 3, 8
    creds = ss.approle_from_policy_comment(node, tmp_path / "approle", token_ttl=f"{ttl}s", token_max_ttl=f"{max_ttl}s")
    snaps = ts._snap_dir(tmp_path)
    cfg = _snapshot_config(config, node, _approle_table(creds, snaps, interval="2s", keep_last=3,
                                                        state_file=str(tmp_path / "snapshot-state.json")))
    d = daemons(cfg)
    login_path = "auth/approle/login"
    renew_path = "auth/token/renew-self"

    def enough():
        logins = ss.audit_responses(audit, login_path)
        renewals = ss.audit_responses(audit, renew_path)
        return len(logins) >= 3 and len(renewals) >= 4 and len(d.entries("snapshot_taken")) >= 6
    try:
        h.wait_until(enough, 90, interval=0.2, what="three logins, four renewals and six snapshots")
    except AssertionError as e:
        raise AssertionError(f"{e}\n--- daemon ---\n{d.stderr()}\n--- audit ---\n"
                             f"{[(r['request']['path'], r.get('error')) for r in ss.audit_records(audit) if r.get('type') == 'response']}")
    assert d.stop(timeout=20) == 0

    logins = ss.audit_responses(audit, login_path)
    renewals = ss.audit_responses(audit, renew_path)
    snapshots = ss.audit_responses(audit, ss.SNAPSHOT_API, operation="read")
    taken = d.entries("snapshot_taken")
    # Nothing OpenBao refused: no 403 for a snapshot, no refused renewal (the policy grants
    # renew-self although the role drops the default policy; nor "past the max TTL, cannot
    # renew"), no failed login. The daemon warned about nothing.
    for r in logins + renewals + snapshots:
        assert not r.get("error"), ss.describe(r)
    assert not d.entries("snapshot_failed"), d.stderr()
    assert not d.entries(level="warning", contains="snapshot token"), d.stderr()
    assert len(snapshots) == len(taken), (len(snapshots), len(taken))
    # One token serves several snapshots: renewed, not replaced per snapshot.
    assert len(logins) < len(taken), (len(logins), len(taken))

    # The token's life as OpenBao granted it: each login gives token_ttl; renewals give it again
    # until the max TTL caps one (OpenBao warns "TTL ... capped"); after a capped renewal the
    # daemon never renews again but logs in afresh.
    def granted(r: dict) -> int:
        return r["response"]["auth"]["token_ttl"]
    events = sorted([(r["time"], "login", r) for r in logins] + [(r["time"], "renew", r) for r in renewals],
                    key=lambda e: e[0])
    story = [(kind, granted(r)) for _, kind, r in events]
    print("token story:", story)
    assert story[0][0] == "login", story
    for i, (kind, got) in enumerate(story):
        if kind == "login":
            assert got == ttl, story
            if i > 0:  # a fresh login only after OpenBao capped the token
                assert story[i - 1][0] == "renew" and story[i - 1][1] < ttl, story
        else:
            assert 0 < got <= ttl, story
            prev_kind, prev_got = story[i - 1]
            assert prev_kind == "login" or prev_got == ttl, f"renewed again after a capped renewal: {story}"
    capped = [r for _, kind, r in events if kind == "renew" and granted(r) < ttl]
    assert capped and all("capped" in " ".join(r["response"].get("warnings") or []) for r in capped), story
    # Every snapshot request came with a token OpenBao accepted (checked above), and each used
    # the token of the login before it.
    assert {r["request"]["client_token"] for r in snapshots} <= {r["response"]["auth"]["client_token"] for r in logins}


# ---------------------------------------------------------------------------
# 4. `snapshot restore` brings deleted data back
# ---------------------------------------------------------------------------

def test_restore_brings_deleted_data_back_and_the_node_stays_unsealed(bao, daemons, config, tmp_path):
    node, init = bao
    d = daemons(config(node, key_file=ss.unseal_key_file(tmp_path / "keys.json", init)))
    node.wait_unsealed(timeout=20)
    node.wait_active()
    d.wait_state(lambda s: s["nodes"][0]["state"] == "active", timeout=20)

    root = node.root_token
    policy = tmp_path / "restore.hcl"
    policy.write_text(RESTORE_POLICY)
    node.cli("policy", "write", "vaultkeeper-restore", str(policy), token=root)
    operator = ss.create_token(node, "restore operator token", "vaultkeeper-restore")
    node.cli("secrets", "enable", "-path=secret", "kv-v2", token=root)
    value = secrets.token_hex(8)
    node.cli("kv", "put", "secret/app", f"password={value}", token=root)

    snaps = ts._snap_dir(tmp_path)
    cfg = _snapshot_config(config, node, {"directory": str(snaps),
                                          "token_file": str(ss.secret_file(tmp_path / "operator-token", operator))},
                           key_file=tmp_path / "keys.json", name="restore.toml")
    path, _, index = ts._assert_saved(ts._now(cfg), snaps)

    later = ss.create_token(node, "token issued after the snapshot", "default")
    node.cli("kv", "metadata", "delete", "secret/app", token=root)
    assert ss.kv_get(node, "secret/app", root) is None

    r = _restore(cfg, str(path))
    assert r.returncode == h.EX_USAGE and "Nothing was sent" in r.stdout and f"raft index {index}" in r.stdout, str(r)
    assert ss.kv_get(node, "secret/app", root) is None

    sealed_before = len(d.entries("sealed"))
    r = _restore(cfg, str(path), "--confirm-overwrite")
    assert r.returncode == 0, str(r)
    assert f"restore accepted by {node.address}: {path} (raft index {index}," in r.stdout, str(r)
    assert "snapshot-force" not in r.stdout and "Tokens issued after the snapshot no longer work" in r.stdout, str(r)
    ts._assert_no_secrets(r, operator, root)

    # OpenBao installs it in the background; the secret comes back.
    h.wait_until(lambda: ss.kv_get(node, "secret/app", root) == {"password": value}, 60, interval=0.2,
                 what="the deleted secret restored")
    # OpenBao did not seal (a same-cluster restore keeps the barrier keys): still unsealed and
    # active, and the daemon beside it saw no seal, sent no share and raised no alarm.
    assert node.is_unsealed() and node.is_active()
    d.wait_state(lambda s: s["nodes"][0]["state"] == "active", timeout=20)
    assert len(d.entries("sealed")) == sealed_before, d.stderr()
    for mid in ("deliberate_seal", "wrong_key", "unseal_failed"):
        assert not d.entries(mid), d.stderr()
    assert len(d.entries("unsealed")) == 1, d.stderr()
    assert d.read_state()["nodes"][0]["unseal_attempts"] == {"success": 3}
    # What the command said: tokens issued after the snapshot are gone, older ones still work.
    assert not ss.token_works(node, later)
    assert ss.token_works(node, operator)


# ---------------------------------------------------------------------------
# 5. Another cluster's snapshot with --force, and the operator's recovery
# ---------------------------------------------------------------------------

def test_forced_restore_of_another_clusters_snapshot_and_the_recovery(baos, daemons, config, tmp_path):
    # Cluster B (3 shares, threshold 2) holds the data; its snapshot is taken by vaultkeeper.
    b = baos("other")
    init_b = b.operator_init(3, 2)
    _unsealed(b, init_b)
    b.cli("secrets", "enable", "-path=secret", "kv-v2", token=b.root_token)
    value = secrets.token_hex(8)
    b.cli("kv", "put", "secret/from-b", f"origin={value}", token=b.root_token)
    b_cfg = _snapshot_config(config, b, {"directory": str(ts._snap_dir(tmp_path, "b-snaps")),
                                         "token_file": str(ss.secret_file(tmp_path / "b-root-token", b.root_token))},
                             name="b.toml")
    b_snap, _, b_index = ts._assert_saved(ts._now(b_cfg), tmp_path / "b-snaps")

    # Cluster A (5 shares, threshold 3), with vaultkeeper beside it.
    a = baos("node1")
    init_a = a.operator_init(5, 3)
    keys = ss.unseal_key_file(tmp_path / "keys.json", init_a)
    cfg = config(a, key_file=keys)
    d = daemons(cfg)
    a.wait_unsealed(timeout=20)
    a.wait_active()
    d.wait_state(lambda s: s["nodes"][0]["state"] == "active", timeout=20)
    # The operator's restore token: a policy as the runbook describes it.
    policy = tmp_path / "restore.hcl"
    policy.write_text(RESTORE_POLICY)
    a.cli("policy", "write", "vaultkeeper-restore", str(policy), token=a.root_token)
    policy.write_text(RESTORE_POLICY + 'path "sys/storage/raft/snapshot-force" {\n  capabilities = ["update"]\n}\n')
    a.cli("policy", "write", "vaultkeeper-restore-force", str(policy), token=a.root_token)
    plain = ss.secret_file(tmp_path / "restore-token", ss.create_token(a, "restore token", "vaultkeeper-restore"))
    force = ss.secret_file(tmp_path / "force-token", ss.create_token(a, "forced restore token", "vaultkeeper-restore-force"))
    a_cfg = _snapshot_config(config, a, {"directory": str(ts._snap_dir(tmp_path, "a-snaps")), "token_file": str(plain)},
                             key_file=keys, name="a-restore.toml")

    # Without --force OpenBao refuses another cluster's snapshot, and the command explains it.
    r = _restore(a_cfg, str(b_snap), "--confirm-overwrite")
    assert r.returncode == 1, str(r)
    assert "different unseal" in r.stdout and "--force" in r.stdout, str(r)
    # --force needs update on sys/storage/raft/snapshot-force too.
    r = _restore(a_cfg, str(b_snap), "--confirm-overwrite", "--force")
    assert r.returncode == 1 and "403" in r.stdout, str(r)
    assert a.is_unsealed() and a.is_active()

    r = _restore(a_cfg, str(b_snap), "--confirm-overwrite", "--force", "--token-file", str(force))
    assert r.returncode == 0, str(r)
    assert f"restore accepted by {a.address} (snapshot-force): {b_snap} (raft index {b_index}," in r.stdout, str(r)
    # The next steps, as printed: restart Vault, install the other cluster's shares, reload.
    steps = r.stdout
    assert "seals itself" in steps and "systemctl restart vault.service" in steps, steps
    assert str(keys) in steps and "systemctl reload vaultkeeper" in steps, steps
    ts._assert_no_secrets(r, a.root_token, b.root_token, force.read_text().strip())

    # OpenBao seals itself once it has installed the foreign keyring.
    a.wait_sealed(timeout=60)
    # The daemon saw the same process answer throughout (OpenBao's sys/health answers 500 while
    # it installs, then sealed): no sign of a new process, so a seal it must not undo
    # (docs/operations.md#deliberate-seals). It holds and sends nothing.
    held = d.wait_entry("deliberate_seal", timeout=30)[0]
    assert held.level == "critical", held.text
    assert d.entries("protocol_error", contains="unexpected HTTP status 500 from /v1/sys/health"), d.stderr()
    d.wait_state(lambda s: s["nodes"][0].get("hold") == "deliberately sealed", timeout=15)
    bh.wait_quiet(3.0, lambda: bool(d.entries("wrong_key")) or a.seal_status()["progress"] != 0)
    assert d.read_state()["nodes"][0]["unseal_attempts"] == {"success": 3}, d.read_state()
    # Before its restart the node still shows this cluster's seal configuration.
    st = a.seal_status()
    assert (st["sealed"], st["t"], st["n"]) == (True, 3, 5), st

    # Recovery step 1: restart OpenBao. It now shows the other cluster's seal configuration.
    a.restart()
    st = a.seal_status()
    assert (st["sealed"], st["t"], st["n"]) == (True, 2, 3), st
    # A new process: the daemon tries this cluster's shares once and gets OpenBao's wrong-key
    # answer ...
    wrong = d.wait_entry("wrong_key", timeout=30)[0]
    assert wrong.level == "critical" and str(keys) in wrong.text, wrong.text
    assert "message authentication failed" in wrong.text, wrong.text
    d.wait_state(lambda s: s["nodes"][0].get("hold") == "wrong unseal key", timeout=15)
    # ... and backs off: no loop of old shares, the hold stays.
    bh.wait_quiet(3.0, lambda: len(d.entries("wrong_key")) > 1 or a.seal_status()["progress"] != 0)
    node_state = d.read_state()["nodes"][0]
    assert node_state["hold"] == "wrong unseal key", node_state
    # One round: share 1 was taken, the 2nd completed OpenBao's threshold of 2 and its wrong-key answer.
    assert node_state["unseal_attempts"] == {"success": 3 + 1, "wrong_key": 1}, node_state
    assert "wrong unseal key" in d.statuses()[-1], d.statuses()[-1]

    # Step 2: the other cluster's key file in place of the old one, and a reload: unsealed at once.
    ss.unseal_key_file(keys, init_b)
    d.signal(signal.SIGHUP)
    d.wait_entry("config_reloaded", timeout=20)
    a.wait_unsealed(timeout=20)
    entry = d.wait_entry("unsealed", count=2, timeout=20)[-1]
    assert "(sealed after a restart) with 2 shares" in entry.text, entry.text
    a.wait_active()
    d.wait_state(lambda s: s["nodes"][0]["state"] == "active" and s["nodes"][0].get("hold") is None, timeout=20)

    # The other cluster's data and tokens are here now; this cluster's root token is gone.
    assert ss.kv_get(a, "secret/from-b", b.root_token) == {"origin": value}
    assert not ss.token_works(a, a.root_token)
    assert len(d.entries("wrong_key")) == 1
