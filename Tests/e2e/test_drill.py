# SPDX-License-Identifier: Apache-2.0
"""Issue #12 under a real systemd: the packaged vaultkeeper.service, as the `vaultkeeper` user in
the shipped unit's sandbox, takes a scheduled snapshot of the real OpenBao (openbao.service) and
then drills it: a throwaway `bao server` (/usr/bin/bao, read from openbao.service's ExecStart) started by the daemon in
`/var/lib/vaultkeeper/restore-drill`, the snapshot restored into it and unsealed with the shares
of the encrypted `unseal-keys` credential. Reported in `journalctl -x` with its catalog text.
A copy of bao carrying HashiCorp's vault package's file capability drills too. Then production is rekeyed with `bao operator rekey`, and the next scheduled drill fails on the
shares.

conftest.py runs this file after test_systemd.py (same container, one boot); run alone, it
first does test_systemd.py's set-up steps (package, OpenBao initialised, vaultkeeper active).
"""
from __future__ import annotations

import json
import re
import secrets

import test_systemd as base
from machine import Machine, wait_until

UNIT = base.UNIT
CONFIG = base.CONFIG
DRILL_DIR = "/var/lib/vaultkeeper/restore-drill"
SERVER_HCL = f"{DRILL_DIR}/server.hcl"
CANARY = "drill-e2e/canary"
SYSTEMD_WATCHDOG = "Watchdog timeout"
VAULT_LIKE = "/usr/local/bin/vault-with-file-capability"
# setcap cap_ipc_lock=+ep FILE, without libcap's tools: a VFS_CAP_REVISION_2 xattr with the
# effective flag and CAP_IPC_LOCK (14) permitted.
SET_CAP_IPC_LOCK = ("import os, struct, sys; "
                    "os.setxattr(sys.argv[1], 'security.capability', struct.pack('<5I', 0x02000001, 1 << 14, 0, 0, 0))")


def drill_config(interval: str = "1m", binary: str | None = None) -> str:
    """Snapshots every 10 s (the first one at once); a drill after a new snapshot once `interval`
    has passed since the last passed drill (the first one after the first snapshot). Without
    `binary` the daemon asks systemd for openbao.service's ExecStart."""
    binary_line = f'binary = "{binary}"\n' if binary else ""
    return base.config(extra=base.SNAPSHOT_TABLE + f"""interval = "10s"

[snapshot.drill]
enabled = true
interval = "{interval}"
{binary_line}timeout = "2m"
""")


def ensure_baseline(m: Machine) -> None:
    """The state test_systemd.py leaves the container in (package installed, OpenBao initialised
    and unsealed by a running vaultkeeper), made by test_systemd.py's own steps when this file
    runs alone."""
    if m.run(["dpkg-query", "-W", "-f=${Status}", "vaultkeeper"], check=False).stdout != "install ok installed":
        base.test_package_installs_and_does_not_start_unconfigured(m)
    if m.run(["test", "-s", base.INIT_JSON], check=False).returncode != 0:
        base.test_openbao_runs_as_a_notify_unit_and_is_initialised(m)
    if m.systemctl("is-active", UNIT, check=False).stdout.strip() != "active":
        base.test_start_becomes_active_only_after_ready(m)
    assert base.bao_sealed(m) is False


def approle_credentials(m: Machine, token: str) -> None:
    """The snapshot AppRole (docs: the shipped policy and the role command in its comment), with a
    fresh secret ID, as the encrypted credentials the unit loads. test_systemd.py destroyed the
    secret ID it stored, so a new one is made either way."""
    auths = json.loads(m.bao("auth", "list", "-format=json", token=token).stdout)
    if "approle/" not in auths:
        m.bao("auth", "enable", "approle", token=token)
    m.bao("policy", "write", "vaultkeeper-snapshot", "/usr/share/doc/vaultkeeper/examples/vault-policy-snapshot.hcl", token=token)
    m.bao("write", "auth/approle/role/vaultkeeper", "token_policies=vaultkeeper-snapshot", "token_ttl=10m",
          "token_max_ttl=30m", "secret_id_ttl=0", "token_no_default_policy=true", token=token)
    role_id = json.loads(m.bao("read", "-format=json", "auth/approle/role/vaultkeeper/role-id", token=token).stdout)["data"]["role_id"]
    secret_id = json.loads(m.bao("write", "-format=json", "-f", "auth/approle/role/vaultkeeper/secret-id",
                                 token=token).stdout)["data"]["secret_id"]
    for name, value in (("approle-role-id", role_id), ("approle-secret-id", secret_id)):
        m.write(f"/root/{name}", value + "\n", mode=0o600)
        m.run(["rm", "-f", f"/etc/credstore.encrypted/{name}"])
        m.run(["systemd-creds", "encrypt", f"--name={name}", f"/root/{name}", f"/etc/credstore.encrypted/{name}"])
        m.run(["rm", f"/root/{name}"])


def drill_server_pids(m: Machine) -> list[str]:
    """The throwaway servers running now (their command line names the drill's configuration)."""
    return m.run(["pgrep", "-f", f"server -config={SERVER_HCL}"], check=False).stdout.split()


def proc_status(m: Machine, pid: str) -> dict[str, str]:
    text = m.run(["cat", f"/proc/{pid}/status"], check=False).stdout
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def health_checked_at(m: Machine) -> float:
    prom = m.read(f"{base.TEXTFILE_DIR}/vaultkeeper.prom")
    match = re.search(r"^vaultkeeper_health_check_timestamp_seconds(?:\{[^}]*\})? (\S+)$", prom, re.M)
    assert match, prom
    return float(match.group(1))


def snapshot_index(path: str) -> int:
    """The Raft index in a snapshot's file name (vaultkeeper-NODE-TIME-INDEX.snap)."""
    match = re.search(r"-(\d+)\.snap$", path)
    assert match, path
    return int(match.group(1))


def drill_entry(m: Machine, name: str, cursor: str, min_index: int = 0, timeout: float = 150) -> dict:
    """The first drill entry (passed or failed) after `cursor` about a snapshot taken after it
    (at Raft index `min_index` or later)."""
    def look():
        taken = {e["SNAPSHOT_FILE"] for e in base.vk_entries(m, "snapshotTaken", after=cursor)}
        for e in m.journal("_SYSTEMD_UNIT=" + UNIT, after=cursor):
            if e.get("MESSAGE_ID") in (base.ID["snapshotDrillPassed"], base.ID["snapshotDrillFailed"]) \
                    and e.get("SNAPSHOT_FILE") in taken and snapshot_index(e["SNAPSHOT_FILE"]) >= min_index:
                return e
        return None
    entry = wait_until(look, timeout, interval=0.2, what="a scheduled restore drill of a snapshot taken after the cursor")
    assert entry["MESSAGE_ID"] == base.ID[name], (name, entry["MESSAGE"])
    return entry


def nothing_left_behind(m: Machine) -> None:
    m.run(["test", "!", "-e", DRILL_DIR])
    assert drill_server_pids(m) == []


def watchdog_kills(m: Machine, cursor: str) -> list[str]:
    return [e.get("MESSAGE", "") for e in m.journal("_PID=1", after=cursor)
            if e.get("UNIT") == UNIT and SYSTEMD_WATCHDOG in e.get("MESSAGE", "")]


def test_scheduled_drill_passes_under_the_units_sandbox(machine: Machine):
    m = machine
    ensure_baseline(m)
    token = base.root_token(m)
    approle_credentials(m, token)
    # Production data the drill restores, and which must be the same afterwards.
    mounts = json.loads(m.bao("secrets", "list", "-format=json", token=token).stdout)
    if "drill-e2e/" not in mounts:
        m.bao("secrets", "enable", "-path=drill-e2e", "kv", token=token)
    canary = secrets.token_hex(16)
    m.bao("kv", "put", CANARY, f"value={canary}", token=token)
    bao_pid = base.bao_pid(m)

    m.write(CONFIG, drill_config())
    m.run(["vaultkeeper", "config", "check", "--config", CONFIG])
    cursor = m.cursor()
    m.systemctl("restart", UNIT)
    props = m.show(UNIT, "MainPID", "NRestarts")
    uid = m.run(["id", "-u", "vaultkeeper"]).stdout.strip()

    # The throwaway server, caught while it runs: the daemon's child, as the vaultkeeper user,
    # in vaultkeeper.service's cgroup, with no capabilities, no new privileges and the unit's
    # seccomp filter.
    pid = wait_until(lambda: (p := drill_server_pids(m)) and p[0], 120, interval=0.05, what="the drill's throwaway bao server")
    status = proc_status(m, pid)
    cgroup = m.run(["cat", f"/proc/{pid}/cgroup"], check=False).stdout
    assert status, "the throwaway server exited before it could be looked at"
    assert status["Uid"].split()[0] == uid and status["CapEff"].strip() == "0" * 16, status
    assert status["NoNewPrivs"].strip() == "1" and status["Seccomp"].strip() == "2", status
    assert f"/system.slice/{UNIT}" in cgroup, cgroup

    passed = drill_entry(m, "snapshotDrillPassed", cursor)
    assert passed["PRIORITY"] == "5" and passed["_UID"] == uid, passed
    assert f"restore drill passed: {passed['SNAPSHOT_FILE']} restored (raft index " in passed["MESSAGE"], passed["MESSAGE"]
    assert "unsealed with 3 of the shares vaultkeeper holds, AppRole login ok" in passed["MESSAGE"], passed["MESSAGE"]
    # No `binary` configured: the one openbao.service runs, read from its ExecStart over the
    # real system bus, from inside the sandbox.
    assert passed["DRILL_BINARY"] == "/usr/bin/bao", passed
    assert passed["MESSAGE"].endswith(", by /usr/bin/bao (openbao.service's ExecStart)"), passed["MESSAGE"]
    text = m.run(["journalctl", "-x", "--no-pager", "-u", UNIT, f"MESSAGE_ID={base.ID['snapshotDrillPassed']}"]).stdout
    assert "Subject: Restore drill passed: the snapshot restores and our shares unseal it" in text, text
    assert passed["SNAPSHOT_FILE"] in text and "What to do: nothing." in text and "@SNAPSHOT_" not in text, text

    # Tidy: the private directory and its server are gone.
    nothing_left_behind(m)
    # Production untouched: same process, unsealed and active, same data.
    assert base.bao_pid(m) == bao_pid and m.show(base.BAO_UNIT, "ActiveState")["ActiveState"] == "active"
    assert base.bao_sealed(m) is False
    assert json.loads(m.bao("kv", "get", "-format=json", CANARY, token=token).stdout)["data"]["value"] == canary
    # The daemon stayed up (no watchdog kill) and its health checks went on after the drill.
    assert not watchdog_kills(m, cursor)
    assert m.show(UNIT, "MainPID", "NRestarts") == props and m.show(UNIT, "ActiveState")["ActiveState"] == "active"
    wait_until(lambda: health_checked_at(m) > base.ts(passed), 10, interval=0.2, what="a health check after the drill")
    assert not base.vk_entries(m, "snapshotDrillFailed", after=cursor)
    status_text = wait_until(lambda: s if "restore drill ok" in (s := m.show(UNIT, "StatusText")["StatusText"]) else None, 10,
                             what="STATUS restore drill ok")
    assert status_text.startswith("vault active"), status_text
    prom = m.read(f"{base.TEXTFILE_DIR}/vaultkeeper.prom")
    assert re.search(r"^vaultkeeper_snapshot_drill_last_success_timestamp_seconds [1-9]", prom, re.M), prom
    # HashiCorp's vault package gives /usr/bin/vault the file capability cap_ipc_lock+ep (its
    # postinst runs setcap), and the kernel refuses to exec() such a file when the capability is
    # outside the bounding set, which the unit empties. The unit's read-only system is mounted
    # nosuid (ProtectSystem= with NoNewPrivileges=), so the file capability is ignored instead
    # and the drill's server starts, with no capability. A copy of bao marked the same way:
    m.run(["install", "-m", "0755", "/usr/bin/bao", VAULT_LIKE])
    m.run(["python3", "-c", SET_CAP_IPC_LOCK, VAULT_LIKE])
    assert m.run(["setpriv", "--reuid=vaultkeeper", "--regid=vaultkeeper", "--clear-groups", "--bounding-set=-all",
                  VAULT_LIKE, "version"], check=False).returncode == 126, "outside the unit, the kernel refuses it"
    m.write(CONFIG, drill_config(interval="1s", binary=VAULT_LIKE))
    cursor = m.cursor()
    m.systemctl("reload", UNIT)
    base.wait_vk(m, "configReloaded", cursor)
    passed = drill_entry(m, "snapshotDrillPassed", cursor)
    nothing_left_behind(m)
    assert m.show(UNIT, "MainPID", "NRestarts") == props

    # No key share or root token reached the journal on the way.
    init = json.loads(m.read(base.INIT_JSON))
    exported = m.run(["journalctl", "-o", "export", "--no-pager", "-u", UNIT], timeout=120).stdout
    for secret in init["unseal_keys_b64"] + init["unseal_keys_hex"] + [init["root_token"]]:
        assert secret not in exported


# OpenBao 2.5+ refuses the (unauthenticated) sys/rekey endpoints unless the listener allows them.
REKEY_LISTENER = "disable_unauthed_rekey_endpoints = false"


def rekey(m: Machine) -> dict:
    """`bao operator rekey` with three of the current shares: five new shares, threshold 3."""
    init = json.loads(m.read(base.INIT_JSON))
    started = json.loads(m.bao("operator", "rekey", "-init", "-key-shares=5", "-key-threshold=3", "-format=json").stdout)
    final = None
    for key in init["unseal_keys_b64"][:3]:
        out = m.bao("operator", "rekey", "-format=json", f"-nonce={started['nonce']}", key).stdout
        if out.strip():
            final = json.loads(out)
    assert final and final.get("complete") is True and len(final["keys_base64"]) == 5, "rekey did not complete"
    return {**init, "unseal_keys_b64": final["keys_base64"], "unseal_keys_hex": final["keys"]}


def test_scheduled_drill_after_a_rekey_fails_on_the_shares(machine: Machine):
    m = machine
    token = base.root_token(m)
    m.write(CONFIG, drill_config(interval="1s"))
    m.systemctl("reload", UNIT)
    base.write_bao_hcl(m, base.openbao_hcl(listener_extra=REKEY_LISTENER))
    base.restart_vault(m)  # unsealed by vaultkeeper with the shares it holds, as always
    pid = m.show(UNIT, "MainPID")["MainPID"]
    cursor = m.cursor()
    rekeyed = rekey(m)
    # The next scheduled snapshot holds the new keyring (its Raft index is past the rekey's);
    # vaultkeeper's credential still holds the old shares.
    rekeyed_at = int(json.loads(m.bao("read", "-format=json", "sys/leader", token=token).stdout)["data"]["raft_committed_index"])
    failed = drill_entry(m, "snapshotDrillFailed", cursor, min_index=rekeyed_at)
    assert failed["DRILL_STAGE"] == "unseal" and failed["DRILL_REASON"] == "shares-rejected" and failed["PRIORITY"] == "3", failed
    assert "the shares we hold do not unseal this snapshot" in failed["MESSAGE"], failed["MESSAGE"]
    text = m.run(["journalctl", "-x", "--no-pager", "-u", UNIT, f"MESSAGE_ID={base.ID['snapshotDrillFailed']}"]).stdout
    assert "Subject: Restore drill failed" in text and "unseal (reason shares-rejected)" in text, text
    nothing_left_behind(m)
    wait_until(lambda: "restore drill FAILED (shares)" in m.show(UNIT, "StatusText")["StatusText"], 10,
               what="STATUS restore drill FAILED (shares)")
    check = m.run(["vaultkeeper", "check"], user="nobody:nogroup", check=False)
    assert check.returncode == 2 and "restore drill FAILED on the shares" in check.stdout, check.stdout
    assert m.show(UNIT, "MainPID")["MainPID"] == pid and not watchdog_kills(m, cursor)
    assert base.bao_sealed(m) is False

    # The operator puts the new shares into the credential: the next drill passes with them.
    m.write(base.INIT_JSON, json.dumps(rekeyed), mode=0o600)
    m.run(["rm", "-f", "/etc/credstore.encrypted/unseal-keys"])
    m.run(["systemd-creds", "encrypt", "--name=unseal-keys", base.INIT_JSON, "/etc/credstore.encrypted/unseal-keys"])
    # A restart, not a reload: systemd decrypts a credential when the unit starts, and a reload
    # leaves /run/credentials/vaultkeeper.service/ as it was.
    cursor = m.cursor()
    m.systemctl("restart", UNIT)
    passed = drill_entry(m, "snapshotDrillPassed", cursor)
    assert "unsealed with 3 of the shares vaultkeeper holds" in passed["MESSAGE"], passed["MESSAGE"]
    nothing_left_behind(m)

    # Back to the suite's usual configuration (no snapshots, no drills, OpenBao's own listener),
    # and the new shares unseal production too.
    m.write(CONFIG, base.config())
    m.systemctl("restart", UNIT)
    base.write_bao_hcl(m, base.openbao_hcl())
    base.restart_vault(m)
