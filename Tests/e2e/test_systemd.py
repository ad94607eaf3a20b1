# SPDX-License-Identifier: Apache-2.0
"""vaultkeeper under a real systemd 252 (Debian 12 in systemd-nspawn) beside a real OpenBao 2.7
(the official `bao` binary as `openbao.service`, a Type=notify unit modelled on OpenBao's own
package), driven through systemctl, journalctl and the `bao` CLI. The tests run in file order
and share one container:

  package → OpenBao as a notify unit, initialised → start (READY after the first result,
  STATUS) → journal and catalog → credential, state file, metrics → OpenBao restart → polkit →
  reload good/bad → restart benchmark (systemctl restart, SIGKILL crash) → deliberate seal
  judged by the unit's main PID over D-Bus → watchdog → exit 78 → exit 77 → scheduled snapshot
  with an encrypted AppRole credential → certbot renewal from pebble reloaded through polkit →
  package upgrade/remove/purge/configured install → no key material anywhere in the journal

There is no simulator here: the only faults the suite needs (a hung server, a crash, a
rotated AppRole secret) are made with the real server.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import re
import statistics
import time

from machine import Machine, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

VAULT = "https://127.0.0.1:8200"
UNIT = "vaultkeeper.service"
BAO_UNIT = "openbao.service"
BAO_HCL = "/etc/openbao/openbao.hcl"
BAO_TLS = "/etc/openbao/tls"
INIT_JSON = "/root/init.json"          # `bao operator init -format=json`, kept by the "operator"
CONFIG = "/etc/vaultkeeper/vaultkeeper.toml"
DROPIN_DIR = "/etc/systemd/system/vaultkeeper.service.d"
BAO_DROPIN_DIR = "/etc/systemd/system/openbao.service.d"
TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"
SYSTEMD_UNIT_STARTED = "39f53479d3a045ac8e11786248231fbf"   # SD_MESSAGE_UNIT_STARTED
SYSTEMD_UNIT_FAILED = "d9b373ed55a64feb8242e02dbe79a49c"    # SD_MESSAGE_UNIT_FAILURE_RESULT ("Failed with result")
SYSTEMD_PROCESS_EXIT = "98e322203f7a4ed290d09fe03c09fe15"   # SD_MESSAGE_UNIT_PROCESS_EXIT
BENCH_RUNS = int(os.environ.get("E2E_BENCH_RUNS", "20"))
CRASH_RUNS = int(os.environ.get("E2E_CRASH_RUNS", "5"))


def message_ids() -> dict[str, str]:
    text = open(os.path.join(ROOT, "Sources/VaultKeeper/Reporting/MessageID.swift")).read()
    cases = dict(re.findall(r'case (\w+) = "([0-9a-f]{32})"', text))
    assert len(cases) >= 16, cases
    return cases


ID = message_ids()


def config(interval: str = "2s", unseal: str = 'credential = "unseal-keys"', extra: str = "",
           ca_file: str = f"{BAO_TLS}/ca.pem", vault_extra: str = "") -> str:
    return f"""# written by Tests/e2e
[vault]
address = "{VAULT}"
ca_file = "{ca_file}"
server_name = "vault.test"
unit = "{BAO_UNIT}"
{vault_extra}
[health]
interval = "{interval}"

[unseal]
{unseal}

[metrics]
textfile_dir = "{TEXTFILE_DIR}"
{extra}"""


def openbao_hcl(cert: str = f"{BAO_TLS}/server.pem", key: str = f"{BAO_TLS}/server-key.pem", listener_extra: str = "") -> str:
    text = open(os.path.join(HERE, "files", "openbao.hcl")).read().replace("@TLS_CERT@", cert).replace("@TLS_KEY@", key)
    if listener_extra:
        text = text.replace(f'  tls_key_file    = "{key}"\n', f'  tls_key_file    = "{key}"\n  {listener_extra}\n')
        assert listener_extra in text
    return text


def write_bao_hcl(m: Machine, text: str) -> None:
    """/etc/openbao/openbao.hcl, root:openbao 0640 (OpenBao reads it as its own user)."""
    m.write(BAO_HCL, text, mode=0o640)
    m.run(["chgrp", "openbao", BAO_HCL])


def vk_entries(m: Machine, name: str, after: str | None = None) -> list[dict]:
    return m.journal(f"MESSAGE_ID={ID[name]}", "_SYSTEMD_UNIT=" + UNIT, after=after)


def wait_vk(m: Machine, name: str, after: str | None, timeout: float = 30, where=lambda e: True) -> dict:
    return m.wait_journal(f"MESSAGE_ID={ID[name]}", "_SYSTEMD_UNIT=" + UNIT, after=after, timeout=timeout,
                          where=where, what=f"vaultkeeper '{name}' entry")


def bao_lines(m: Machine, after: str) -> list[dict]:
    return m.journal("_SYSTEMD_UNIT=" + BAO_UNIT, after=after)


def wait_bao_line(m: Machine, after: str, text: str, timeout: float = 30) -> dict:
    return m.wait_journal("_SYSTEMD_UNIT=" + BAO_UNIT, after=after, timeout=timeout,
                          where=lambda e: text in e.get("MESSAGE", ""), what=f"OpenBao's '{text}'")


def bao_active_entry(m: Machine, after: str, timeout: float = 30) -> dict:
    """OpenBao's own journal line for "active": the post-unseal set-up that follows taking the
    Raft leadership (`acquired lock, enabling active operation`). From then on sys/health
    answers 200 (checked against a 2 ms poll of sys/health while building this suite: within
    5 ms of each other)."""
    def look():
        lock = None
        for e in bao_lines(m, after):
            msg = e.get("MESSAGE", "")
            if lock is None and "core: acquired lock, enabling active operation" in msg:
                lock = e
            elif lock is not None and "core: post-unseal setup complete" in msg:
                return e
        return None
    return wait_until(look, timeout, interval=0.1, what="OpenBao active (post-unseal setup complete as leader)")


def root_token(m: Machine) -> str:
    return json.loads(m.read(INIT_JSON))["root_token"]


def bao_sealed(m: Machine) -> bool:
    return m.bao_status()["sealed"]


def bao_pid(m: Machine) -> str:
    return m.show(BAO_UNIT, "MainPID")["MainPID"]


def ts(entry: dict) -> float:
    return int(entry["__REALTIME_TIMESTAMP"]) / 1e6


def restart_vault(m: Machine, crash: bool = False) -> dict:
    """Restarts OpenBao (`systemctl restart openbao`, or a crash: SIGKILL and systemd's
    Restart=on-failure) and waits for vaultkeeper to unseal it and for OpenBao to be active.
    Returns the seconds from systemd's "Started openbao.service" (READY=1 from the new bao:
    listener up, sealed) to vaultkeeper's "unsealed" entry and to OpenBao's active line."""
    before = bao_pid(m)
    cursor = m.cursor()
    if crash:
        m.systemctl("kill", "--signal=SIGKILL", BAO_UNIT)
    else:
        m.systemctl("restart", BAO_UNIT)
    started = m.wait_journal(f"MESSAGE_ID={SYSTEMD_UNIT_STARTED}", f"UNIT={BAO_UNIT}", after=cursor, timeout=30,
                             what="systemd's Started openbao.service (READY=1)")
    unsealed = wait_vk(m, "unsealed", cursor, timeout=30)
    assert "sealed after a restart" in unsealed["MESSAGE"], unsealed["MESSAGE"]
    active = bao_active_entry(m, cursor)
    after = bao_pid(m)
    assert after not in ("0", before), (before, after)
    # Exactly one unseal per restart, and never a false alarm on the way.
    assert len(vk_entries(m, "unsealed", after=cursor)) == 1
    for name in ("deliberateSeal", "wrongKey", "unsealFailed"):
        assert not vk_entries(m, name, after=cursor), (name, vk_entries(m, name, after=cursor))
    return {"unsealed": ts(unsealed) - ts(started), "active": ts(active) - ts(started), "entry": unsealed}


def set_dropin(m: Machine, name: str, text: str | None, directory: str = DROPIN_DIR) -> None:
    path = f"{directory}/{name}.conf"
    if text is None:
        m.run(["rm", "-f", path])
    else:
        m.run(["mkdir", "-p", directory])
        m.write(path, text)
    m.systemctl("daemon-reload")


def overall_exposure(text: str) -> float:
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d)", text)
    assert match, text
    return float(match.group(1))


def bao_version(m: Machine) -> str:
    out = m.run(["bao", "version"]).stdout
    match = re.match(r"OpenBao v(\d+\.\d+\.\d+)", out)
    assert match, out
    return match.group(1)


# ----------------------------------------------------------------------------------------------
def test_unit_file_static_checks():
    """On the host: the security score of the shipped unit and a catalog entry per MESSAGE_ID."""
    import subprocess
    unit = os.path.join(ROOT, "deploy/vaultkeeper.service")
    out = subprocess.run(["systemd-analyze", "security", "--offline=yes", unit], capture_output=True, text=True)
    score = overall_exposure(out.stdout + out.stderr)
    assert score <= 1.0, out.stdout
    # The internal scale is ×10: --threshold=10 fails above 1.0.
    assert subprocess.run(["systemd-analyze", "security", "--offline=yes", "--threshold=10", unit],
                          capture_output=True).returncode == 0
    catalog = open(os.path.join(ROOT, "deploy/catalog/vaultkeeper.catalog")).read()
    listed = re.findall(r"^-- ([0-9a-f]{32})$", catalog, re.M)
    assert sorted(listed) == sorted(ID.values()), "catalog entries must match MessageID.swift one to one"
    for block in catalog.split("\n-- ")[1:]:
        assert "Defined-By: vaultkeeper" in block and "What to do" in block, block[:200]


def test_package_installs_and_does_not_start_unconfigured(machine: Machine):
    m = machine
    out = m.run(["apt-get", "install", "-y", "--no-install-recommends", "/root/vaultkeeper.deb"],
                timeout=180, check=True).stdout
    assert "Setting up vaultkeeper" in out
    passwd = m.run(["getent", "passwd", "vaultkeeper"]).stdout.strip().split(":")
    assert passwd[5] == "/var/lib/vaultkeeper" and passwd[6] == "/usr/sbin/nologin", passwd
    assert m.systemctl("is-enabled", UNIT, check=False).stdout.strip() == "disabled"
    assert m.systemctl("is-active", UNIT, check=False).stdout.strip() == "inactive"
    assert m.run(["stat", "-c", "%a %U", "/etc/credstore.encrypted"]).stdout.split() == ["700", "root"]
    # The catalog was compiled by systemd's dpkg trigger.
    listed = m.run(["journalctl", "--list-catalog"]).stdout
    for name, mid in ID.items():
        assert mid in listed, f"catalog entry for {name} not compiled"
    for path in ("/usr/bin/vaultkeeper", "/lib/systemd/system/vaultkeeper.service", "/usr/lib/sysusers.d/vaultkeeper.conf",
                 "/usr/lib/tmpfiles.d/vaultkeeper.conf", "/usr/share/polkit-1/rules.d/50-vaultkeeper.rules",
                 "/usr/share/man/man8/vaultkeeper.8.gz", "/usr/share/man/man5/vaultkeeper.toml.5.gz",
                 "/usr/share/bash-completion/completions/vaultkeeper", "/usr/share/zsh/vendor-completions/_vaultkeeper",
                 "/usr/share/fish/vendor_completions.d/vaultkeeper.fish", "/usr/share/doc/vaultkeeper/copyright",
                 "/usr/share/doc/vaultkeeper/examples/vaultkeeper-failure@.service"):
        m.run(["test", "-s", path])
    # The binary needs nothing but Debian libraries (Swift runtime linked statically).
    ldd = m.run(["ldd", "/usr/bin/vaultkeeper"]).stdout
    assert "not found" not in ldd and "swift" not in ldd.lower(), ldd
    # verify is clean under the container's systemd 252.
    verify = m.run(["systemd-analyze", "verify", "--man=no", UNIT], check=False)
    assert verify.returncode == 0 and not (verify.stdout + verify.stderr).strip(), verify.stdout + verify.stderr
    security = m.run(["systemd-analyze", "security", "--no-pager", UNIT], check=False)
    assert overall_exposure(security.stdout) <= 1.0, security.stdout


def test_openbao_runs_as_a_notify_unit_and_is_initialised(machine: Machine):
    """OpenBao set up as its packages do it: its own system user, /etc/openbao/openbao.hcl,
    Raft data in /var/lib/openbao, the listener's key readable by the openbao group only."""
    m = machine
    m.run(["useradd", "--system", "--user-group", "--home-dir", "/var/lib/openbao", "--no-create-home",
           "--shell", "/usr/sbin/nologin", "openbao"])
    m.run(["install", "-d", "-o", "openbao", "-g", "openbao", "-m", "0700", "/var/lib/openbao"])
    # The test PKI (CA key stays in /root/pki); OpenBao's listener certificate for vault.test
    # and 127.0.0.1, and the CA that vaultkeeper trusts for it.
    m.run(["python3", "/opt/e2e/testca.py", "/root/pki"])
    m.run(["install", "-d", "-m", "0755", BAO_TLS])
    m.run(["install", "-m", "0644", "/root/pki/ca.pem", "/root/pki/server.pem", BAO_TLS])
    m.run(["install", "-o", "root", "-g", "openbao", "-m", "0640", "/root/pki/server-key.pem", BAO_TLS])
    write_bao_hcl(m, openbao_hcl())
    m.write("/etc/openbao/openbao.env", "# EnvironmentFile= of openbao.service\n")
    verify = m.run(["systemd-analyze", "verify", "--man=no", BAO_UNIT], check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr

    cursor = m.cursor()
    m.systemctl("start", BAO_UNIT)  # Type=notify: returns once bao has sent READY=1
    props = m.show(BAO_UNIT, "Type", "ActiveState", "SubState", "MainPID", "NotifyAccess", "User", "KillSignal", "ExecReload")
    assert props["Type"] == "notify" and props["ActiveState"] == "active" and props["User"] == "openbao", props
    assert props["KillSignal"] == "2" and "/bin/kill --signal HUP $MAINPID" in props["ExecReload"].replace(" ; ", " "), props
    uid = re.search(r"^Uid:\s+(\d+)", m.read(f"/proc/{props['MainPID']}/status"), re.M).group(1)
    assert m.run(["id", "-u", "openbao"]).stdout.strip() == uid
    # READY=1 came from bao itself once it served: the listener answers as soon as
    # `systemctl start` has returned (bao_status fails on a refused connection).
    wait_bao_line(m, cursor, "OpenBao server started!")
    status = m.bao_status()
    assert status["initialized"] is False and status["sealed"] is True, status

    # What the operator keeps: `bao operator init -format=json`, 5 shares, threshold 3.
    init = m.bao("operator", "init", "-key-shares=5", "-key-threshold=3", "-format=json").stdout
    m.write(INIT_JSON, init, mode=0o600)
    init = json.loads(init)
    assert len(init["unseal_keys_b64"]) == 5 and init["unseal_threshold"] == 3
    status = m.bao_status()
    assert status["initialized"] is True and status["sealed"] is True and status["t"] == 3, status


def test_start_becomes_active_only_after_ready(machine: Machine):
    m = machine
    # The unseal shares as an encrypted credential (host key; no TPM in a container).
    m.run(["systemd-creds", "encrypt", "--name=unseal-keys", INIT_JSON, "/etc/credstore.encrypted/unseal-keys"])
    m.run(["install", "-d", "-o", "vaultkeeper", "-g", "vaultkeeper", "-m", "0755", TEXTFILE_DIR])
    # A connect timeout above the hang below, so that the first result is OpenBao's late answer.
    m.write(CONFIG, config(vault_extra='connect_timeout = "5s"\n'))
    m.run(["vaultkeeper", "config", "check", "--config", CONFIG])

    # A hung OpenBao (SIGSTOP: the kernel still accepts the TCP connection, bao answers nothing)
    # delays the first health result, so READY=1 comes late: the unit must stay "activating"
    # for as long as OpenBao hangs.
    m.systemctl("kill", "--signal=SIGSTOP", BAO_UNIT)
    try:
        cursor = m.cursor()
        m.systemctl("start", "--no-block", UNIT)
        wait_until(lambda: m.show(UNIT, "ActiveState")["ActiveState"] == "activating", 20, what="vaultkeeper activating")
        hang = time.monotonic()
        # The fault's duration (not a precondition): OpenBao stays frozen for 1.5 s.
        time.sleep(1.5)
        assert m.show(UNIT, "ActiveState", "SubState") == {"ActiveState": "activating", "SubState": "start"}
    finally:
        m.systemctl("kill", "--signal=SIGCONT", BAO_UNIT)
    wait_until(lambda: m.show(UNIT, "ActiveState")["ActiveState"] == "active", 30, interval=0.05, what="vaultkeeper active")
    assert time.monotonic() - hang >= 1.5
    times = m.show(UNIT, "ExecMainStartTimestampMonotonic", "ActiveEnterTimestampMonotonic")
    activating = int(times["ActiveEnterTimestampMonotonic"]) - int(times["ExecMainStartTimestampMonotonic"])
    assert activating >= 1_400_000, times
    # The first result is OpenBao's real answer (sealed), and systemd's "Started" comes after it.
    first_result = wait_vk(m, "sealed", cursor)
    assert first_result["VAULT_STATE"] == "sealed", first_result
    assert not vk_entries(m, "unreachable", after=cursor), "the first result must be the late answer, not a timeout"
    started = m.wait_journal(f"MESSAGE_ID={SYSTEMD_UNIT_STARTED}", f"UNIT={UNIT}", after=cursor, what="systemd's Started")
    assert int(started["__MONOTONIC_TIMESTAMP"]) > int(first_result["__MONOTONIC_TIMESTAMP"])
    wait_vk(m, "started", cursor)
    unsealed = wait_vk(m, "unsealed", cursor)
    assert "sealed at start-up" in unsealed["MESSAGE"]
    props = m.show(UNIT, "ActiveState", "SubState", "StatusText", "Type", "NotifyAccess", "WatchdogUSec", "User")
    assert props["SubState"] == "running" and props["Type"] == "notify" and props["NotifyAccess"] == "main", props
    assert props["WatchdogUSec"] == "30s" and props["User"] == "vaultkeeper", props
    version = re.escape(bao_version(m))
    status = wait_until(lambda: (s := m.show(UNIT, "StatusText")["StatusText"]).startswith("vault active") and s, 20,
                        what="STATUS= vault active")
    assert re.fullmatch(rf"vault active \({version}\) · unsealed \d+s ago · 1/1 nodes ok", status), status
    # systemctl status shows the STATUS line too.
    assert f"Status: \"vault active ({bao_version(m)})" in m.systemctl("status", "--no-pager", "-n0", UNIT).stdout
    assert bao_sealed(m) is False
    # The usual configuration from here on (default connect timeout).
    m.write(CONFIG, config())
    cursor = m.cursor()
    m.systemctl("reload", UNIT)
    wait_vk(m, "configReloaded", cursor)


def test_journal_entries_and_catalog(machine: Machine):
    m = machine
    sealed = vk_entries(m, "sealed")[-1]
    assert sealed["PRIORITY"] == "4" and sealed["VAULT_ADDR"] == VAULT and sealed["VAULT_STATE"] == "sealed"
    assert sealed["VAULT_VERSION"] == bao_version(m)
    unsealed = vk_entries(m, "unsealed")[-1]
    assert unsealed["PRIORITY"] == "5" and unsealed["SYSLOG_IDENTIFIER"] == "vaultkeeper"
    assert unsealed["VAULT_ADDR"] == VAULT and unsealed["VAULT_UNSEAL_SHARES"] == "3" and "VAULT_UNSEAL_MS" in unsealed
    assert unsealed["CODE_FILE"].endswith(".swift") and unsealed["CODE_LINE"].isdigit()
    assert vk_entries(m, "started")[-1]["PRIORITY"] == "6"
    # journalctl -x explains the entry with the catalog text, fields substituted.
    text = m.run(["journalctl", "-x", "--no-pager", "-u", UNIT, f"MESSAGE_ID={ID['unsealed']}"]).stdout
    assert f"Subject: vaultkeeper unsealed Vault at {VAULT}" in text, text
    assert "Defined-By: vaultkeeper" in text and "What to do: nothing." in text and "@VAULT_" not in text, text
    entries = m.journal("_SYSTEMD_UNIT=" + UNIT)
    # The key buffers are mlocked (LimitMEMLOCK= gives the headroom).
    assert not [e for e in entries if "mlock" in e.get("MESSAGE", "")]
    # The D-Bus watch of openbao.service works under the sandbox (AF_UNIX, PrivateUsers=).
    assert not [e for e in entries if "D-Bus" in e.get("MESSAGE", "")], [e["MESSAGE"] for e in entries if "D-Bus" in e.get("MESSAGE", "")]
    # Every entry of ours is native (sd_journal_sendv, with CODE_FILE); the only other lines are
    # libdispatch's renice attempts refused by the syscall filter (docs/install.md).
    stray = [e.get("MESSAGE") for e in entries if "CODE_FILE" not in e and "Failed to set thread priority" not in e.get("MESSAGE", "")]
    assert not stray, stray


def test_credential_state_file_and_metrics(machine: Machine):
    m = machine
    pid = m.show(UNIT, "MainPID")["MainPID"]
    creds = m.run(["stat", "-c", "%a %U", f"/run/credentials/{UNIT}/unseal-keys"]).stdout.split()
    assert creds == ["400", "vaultkeeper"], creds
    # The process runs unprivileged, with no capabilities, not dumpable, no core dumps.
    status = m.read(f"/proc/{pid}/status")
    assert re.search(r"^CapEff:\s+0+$", status, re.M) and re.search(r"^NoNewPrivs:\s+1$", status, re.M), status
    limits = m.read(f"/proc/{pid}/limits")
    assert re.search(r"^Max core file size\s+0\s+0", limits, re.M), limits
    # `vaultkeeper status` reads the state file in the RuntimeDirectory.
    out = m.run(["vaultkeeper", "status"]).stdout
    assert out.startswith(f"vault active ({bao_version(m)})"), out
    assert json.loads(m.run(["vaultkeeper", "status", "--json"]).stdout)["nodes"][0]["state"] == "active"
    # Textfile metrics in node_exporter's directory (ReadWritePaths=), readable by others.
    prom = m.read(f"{TEXTFILE_DIR}/vaultkeeper.prom")
    assert f'vaultkeeper_vault_sealed{{node="{VAULT}"}} 0' in prom, prom
    assert f'vaultkeeper_unseal_attempts_total{{node="{VAULT}",result="success"}} 3' in prom, prom
    assert m.run(["stat", "-c", "%a", f"{TEXTFILE_DIR}/vaultkeeper.prom"]).stdout.strip() == "644"
    # The Monitoring Plugins check, as any user.
    check = m.run(["vaultkeeper", "check"], user="nobody:nogroup")
    assert check.stdout.startswith("VAULT OK"), check.stdout


def test_openbao_restart_is_unsealed_quickly(machine: Machine):
    m = machine
    result = restart_vault(m)
    assert result["unsealed"] < 2.0, f"{result['unsealed']:.3f}s from READY to unsealed"
    assert bao_sealed(m) is False and m.bao_status()["ha_enabled"] is True


PLACEHOLDER_VAULT_UNIT = """# e2e: a unit named vault.service, so the polkit rule's other name can be checked. No Vault:
# a process that logs each SIGHUP (OpenBao plays Vault in every other test).
[Service]
ExecStart=/usr/bin/python3 -u -c "import signal; signal.signal(signal.SIGHUP, lambda *a: print('SIGHUP received')); print('waiting for SIGHUP'); [signal.pause() for _ in iter(int, 1)]"
ExecReload=/bin/kill --signal HUP $MAINPID
"""


def test_polkit_lets_vaultkeeper_reload_openbao_and_vault_only(machine: Machine):
    m = machine
    call = ["busctl", "call", "--system", "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager"]
    pid = bao_pid(m)
    cursor = m.cursor()
    ok = m.run(call + ["ReloadUnit", "ss", BAO_UNIT, "replace"], user="vaultkeeper", check=False)
    assert ok.returncode == 0, ok.stderr
    wait_bao_line(m, cursor, "OpenBao reload triggered")  # ExecReload= sent bao SIGHUP
    assert bao_pid(m) == pid and bao_sealed(m) is False, "a reload, not a restart"
    # The rule's other unit name (HashiCorp's packages): a placeholder vault.service.
    m.write("/etc/systemd/system/vault.service", PLACEHOLDER_VAULT_UNIT)
    m.systemctl("daemon-reload")
    cursor = m.cursor()
    m.systemctl("start", "vault.service")
    m.wait_journal("_SYSTEMD_UNIT=vault.service", after=cursor, where=lambda e: "waiting for SIGHUP" in e.get("MESSAGE", ""),
                   what="placeholder vault.service up")
    ok = m.run(call + ["ReloadUnit", "ss", "vault.service", "replace"], user="vaultkeeper", check=False)
    assert ok.returncode == 0, ok.stderr
    m.wait_journal("_SYSTEMD_UNIT=vault.service", after=cursor, where=lambda e: "SIGHUP received" in e.get("MESSAGE", ""),
                   what="vault.service reloaded by SIGHUP")
    for method, unit in (("RestartUnit", BAO_UNIT), ("StopUnit", BAO_UNIT), ("ReloadOrRestartUnit", BAO_UNIT),
                         ("RestartUnit", "vault.service"), ("StopUnit", "vault.service"), ("ReloadUnit", "dbus.service")):
        denied = m.run(call + [method, "ss", unit, "replace"], user="vaultkeeper", check=False)
        assert denied.returncode != 0 and ("Access denied" in denied.stderr or "authentication" in denied.stderr.lower()), \
            (method, unit, denied.stderr)
    assert m.systemctl("is-active", BAO_UNIT).stdout.strip() == "active" and bao_pid(m) == pid
    assert m.systemctl("is-active", "vault.service").stdout.strip() == "active"
    m.systemctl("stop", "vault.service")
    m.run(["rm", "/etc/systemd/system/vault.service"])
    m.systemctl("daemon-reload")


def test_reload_with_good_config(machine: Machine):
    m = machine
    pid = m.show(UNIT, "MainPID")["MainPID"]
    m.write(CONFIG, config(interval="3s"))
    cursor = m.cursor()
    m.systemctl("reload", UNIT)
    entry = wait_vk(m, "configReloaded", cursor)
    assert "configuration reloaded" in entry["MESSAGE"]
    props = m.show(UNIT, "MainPID", "ActiveState", "SubState")
    assert props == {"MainPID": pid, "ActiveState": "active", "SubState": "running"}, props


def test_reload_with_bad_config_keeps_the_running_one(machine: Machine):
    m = machine
    pid = m.show(UNIT, "MainPID")["MainPID"]
    m.write(CONFIG, config(interval="3 seconds"))
    cursor = m.cursor()
    m.systemctl("reload", UNIT)
    entry = wait_vk(m, "configRejected", cursor)
    assert "keeping the running one" in entry["MESSAGE"] and "health.interval" in entry["MESSAGE"], entry["MESSAGE"]
    assert entry["PRIORITY"] == "3"
    assert not vk_entries(m, "configReloaded", after=cursor)
    props = m.show(UNIT, "MainPID", "ActiveState", "SubState")
    assert props == {"MainPID": pid, "ActiveState": "active", "SubState": "running"}, props
    # The old configuration still works.
    assert restart_vault(m)["unsealed"] < 2.0
    m.write(CONFIG, config())
    cursor = m.cursor()
    m.systemctl("reload", UNIT)
    wait_vk(m, "configReloaded", cursor)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, int(round(q * len(ordered))) - 1)]


def test_restart_to_unsealed_benchmark(machine: Machine):
    """Issue #9 under real systemd: `systemctl restart openbao` again and again, and OpenBao
    crashes (SIGKILL) restarted by systemd's Restart=on-failure: every one unsealed, none missed;
    READY=1 → unsealed and READY=1 → active (journal timestamps)."""
    m = machine
    restarts = [restart_vault(m) for _ in range(BENCH_RUNS)]
    # Crashes: Restart=on-failure brings bao back (RestartSec= shortened from the packaged 5 s
    # so that the runs do not wait; what is measured starts at READY=1 anyway).
    set_dropin(m, "e2e-crash", "[Service]\nRestartSec=200ms\n", directory=BAO_DROPIN_DIR)
    before = int(m.show(BAO_UNIT, "NRestarts")["NRestarts"])
    crashes = [restart_vault(m, crash=True) for _ in range(CRASH_RUNS)]
    assert int(m.show(BAO_UNIT, "NRestarts")["NRestarts"]) == before + CRASH_RUNS
    set_dropin(m, "e2e-crash", None, directory=BAO_DROPIN_DIR)
    assert bao_sealed(m) is False
    rows = []
    for label, runs in (("`systemctl restart openbao`", restarts), ("SIGKILL, restarted by systemd", crashes)):
        u = [r["unsealed"] for r in runs]
        a = [r["active"] for r in runs]
        rows.append((label, len(runs), u, a))
        print(f"\n{label}: READY → unsealed p50 {statistics.median(u) * 1000:.0f} ms, p95 {percentile(u, 0.95) * 1000:.0f} ms; "
              f"→ active p50 {statistics.median(a) * 1000:.0f} ms, p95 {percentile(a, 0.95) * 1000:.0f} ms over {len(runs)} runs")
    write_benchmark(m, rows)
    record_memory(m)
    everything = [r["unsealed"] for r in restarts + crashes]
    assert percentile(everything, 0.95) < 2.0, everything  # a regression guard; the goal (≤ 100 ms) is reported


# Where the suite leaves its measurements: only `make bench` writes docs/benchmarks.md (a test
# run must not change a tracked document); scripts/bench.py may take these sections from here.
MEASUREMENTS = os.path.join(ROOT, "out", "e2e-measurements")


def record_measurement(section: str, text: str) -> None:
    """Prints one Markdown section and writes it to out/e2e-measurements/SECTION.md."""
    print(f"\n{text}")
    os.makedirs(MEASUREMENTS, exist_ok=True)
    path = os.path.join(MEASUREMENTS, f"{section}.md")
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def write_benchmark(m: Machine, rows) -> None:
    systemd = m.run(["systemctl", "--version"]).stdout.splitlines()[0]
    ms = lambda s: f"{s * 1000:.0f} ms"  # noqa: E731
    table = []
    for label, n, u, a in rows:
        goal = "met" if percentile(u, 0.95) <= 0.1 else "NOT met"
        table.append(f"| {label} | {n} | {ms(statistics.median(u))} | {ms(percentile(u, 0.95))} | {ms(max(u))} | "
                     f"{ms(statistics.median(a))} | {ms(percentile(a, 0.95))} | {ms(max(a))} | 0 | {goal} |")
    samples = "\n".join(f"- {label}, READY → unsealed (ms): {', '.join(str(round(x * 1000)) for x in sorted(u))}"
                        for label, _, u, _ in rows)
    text = f"""## Under real systemd

Measured by `make e2e` (Tests/e2e/test_systemd.py::test_restart_to_unsealed_benchmark) on
{datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}: Debian 12 in `systemd-nspawn`, {systemd},
kernel {platform.release()}, {os.cpu_count()} CPUs. vaultkeeper is the packaged release build running
as `vaultkeeper.service` (the shipped hardened unit). Vault is a real OpenBao {bao_version(m)} (the official
`bao` binary) as `openbao.service`, a `Type=notify` unit modelled on OpenBao's own package: one
Raft node, TLS listener on 127.0.0.1. Each run is `systemctl restart openbao.service` (SIGINT,
then a new process), or a crash: SIGKILL, and systemd's `Restart=on-failure` starts a new one.
The times start at systemd's "Started openbao.service" entry, i.e. the new bao's READY=1 (its
listener is up, sealed), and end at vaultkeeper's "unsealed" entry
(`MESSAGE_ID={ID['unsealed']}`) and at OpenBao's own "post-unseal setup complete" after it took
the Raft leadership (from then on `sys/health` answers 200: active). All are
`__REALTIME_TIMESTAMP`s of the same journal. A missed restart fails the suite.

| restart | runs | READY → unsealed p50 | p95 | max | READY → active p50 | p95 | max | missed | goal: unsealed p95 ≤ 100 ms |
|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(table)}

{samples}
"""
    record_measurement("e2e", text)


def record_memory(m: Machine) -> None:
    """Issue #11's MemoryCurrent goal, a measurement and not a test bound: the unit's cgroup at
    steady state (the daemon has run the whole scenario so far and unsealed every restart above),
    with the main process's RSS beside it, to out/e2e-measurements/memory.json for `make bench`."""
    props = m.show(UNIT, "MemoryCurrent", "MainPID")
    raw = props.get("MemoryCurrent", "")
    status = m.read(f"/proc/{props['MainPID']}/status")

    def kib(field: str) -> int | None:
        match = re.search(rf"^{field}:\s+(\d+) kB", status, re.M)
        return int(match.group(1)) if match else None
    data = {"memory_current": int(raw) if raw.isdigit() else None, "memory_current_raw": raw,
            "vm_rss_kib": kib("VmRSS"), "rss_anon_kib": kib("RssAnon"), "rss_file_kib": kib("RssFile"),
            "measured": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "systemd": m.run(["systemctl", "--version"]).stdout.splitlines()[0]}
    print(f"\nvaultkeeper.service MemoryCurrent={raw}, VmRSS {data['vm_rss_kib']} kB")
    os.makedirs(MEASUREMENTS, exist_ok=True)
    path = os.path.join(MEASUREMENTS, "memory.json")
    with open(path + ".tmp", "w") as f:
        json.dump(data, f, indent=2)
    os.replace(path + ".tmp", path)


def client_ports(m: Machine) -> list[int]:
    """Local ports of the established TCP connections to OpenBao's listener (127.0.0.1:8200)."""
    ports = []
    for line in m.read("/proc/net/tcp").splitlines()[1:]:
        fields = line.split()
        local, remote, state = fields[1], fields[2], fields[3]
        if remote == "0100007F:2008" and state == "01":
            ports.append(int(local.split(":")[1], 16))
    return ports


def wait_new_connections(m: Machine, count: int, timeout: float = 30) -> None:
    """Waits until `count` connections to OpenBao that were not there before have been seen."""
    seen = set(client_ports(m))
    fresh: set[int] = set()

    def more():
        for port in client_ports(m):
            if port not in seen:
                fresh.add(port)
        return len(fresh) >= count
    wait_until(more, timeout, interval=0.2, what=f"{count} new connections to OpenBao")


def test_deliberate_seal_is_judged_by_the_main_pid_over_dbus(machine: Machine):
    """A seal while bao keeps running is deliberate, a restart is not, and the judge is the
    unit's main PID from systemd over D-Bus: with OpenBao's listener closing idle connections
    after 1 s (health.interval is 2 s), every check comes over a new connection, so the
    connection alone would call this seal a restart (docs/operations.md#deliberate-seals)."""
    m = machine
    write_bao_hcl(m, openbao_hcl(listener_extra='http_idle_timeout = "1s"'))
    restart_vault(m)
    wait_new_connections(m, 3)  # the premise: checks do come over new connections
    token = root_token(m)

    cursor = m.cursor()
    m.bao("operator", "seal", token=token)
    entry = wait_vk(m, "deliberateSeal", cursor)
    assert entry["PRIORITY"] == "2" and "vaultkeeper unseal" in entry["MESSAGE"]
    # Kept sealed over two further checks, each on a new connection ("does not happen": bounded
    # by those checks, not by a fixed sleep).
    wait_new_connections(m, 2)
    assert bao_sealed(m) is True
    assert not vk_entries(m, "unsealed", after=cursor)
    status = wait_until(lambda: "deliberately sealed" in (s := m.show(UNIT, "StatusText")["StatusText"]) and s, 10,
                        what="STATUS= deliberately sealed")
    assert status.startswith("vault sealed"), status
    # The documented override: a one-shot with the unit's credential, as the unit's user.
    out = m.run(["systemd-run", "--quiet", "--wait", "--pipe", "-p", "LoadCredentialEncrypted=unseal-keys",
                 "-p", "User=vaultkeeper", "vaultkeeper", "unseal"], timeout=60)
    # Right after the unseal a Raft node is standby until it has elected itself.
    assert re.search(r"sealed → (active|standby)", out.stdout), out.stdout + out.stderr
    assert bao_sealed(m) is False

    # Sealed on purpose again, then OpenBao restarted: a new main PID, so it is unsealed, and
    # the hold is gone. (The listener's idle timeout goes back to its default with it.) First
    # the daemon must have seen the override's result, or to it the node simply stayed sealed.
    wait_until(lambda: m.show(UNIT, "StatusText")["StatusText"].startswith("vault active"), 20,
               what="vaultkeeper seeing the node active after the override")
    cursor = m.cursor()
    m.bao("operator", "seal", token=token)
    wait_vk(m, "deliberateSeal", cursor)
    write_bao_hcl(m, openbao_hcl())
    restart_vault(m)
    wait_until(lambda: "deliberately" not in m.show(UNIT, "StatusText")["StatusText"], 10, what="hold cleared")
    assert bao_sealed(m) is False


def test_frozen_daemon_is_killed_by_the_watchdog_and_restarted(machine: Machine):
    m = machine
    set_dropin(m, "e2e-watchdog", "[Service]\nWatchdogSec=2s\nRestartSec=1s\n")
    m.systemctl("restart", UNIT)
    before = m.show(UNIT, "MainPID", "NRestarts")
    cursor = m.cursor()
    m.run(["kill", "-STOP", before["MainPID"]])
    result = m.wait_journal(f"MESSAGE_ID={SYSTEMD_UNIT_FAILED}", f"UNIT={UNIT}", after=cursor, timeout=20,
                            what="systemd's 'Failed with result' entry")
    assert result["UNIT_RESULT"] == "watchdog", result
    # Killed with WatchdogSignal= (SIGABRT); not dumpable and LimitCORE=0, so no core dump.
    exited = m.wait_journal(f"MESSAGE_ID={SYSTEMD_PROCESS_EXIT}", f"UNIT={UNIT}", after=cursor, what="process exit")
    assert exited["EXIT_CODE"] == "killed" and exited["EXIT_STATUS"] == "6", exited
    m.wait_journal(f"UNIT={UNIT}", after=cursor, where=lambda e: "Watchdog timeout" in e.get("MESSAGE", ""),
                   what="Watchdog timeout")
    after = wait_until(lambda: (p := m.show(UNIT, "MainPID", "NRestarts", "ActiveState"))["ActiveState"] == "active"
                       and p["MainPID"] not in ("0", before["MainPID"]) and p, 30, what="restarted vaultkeeper")
    assert int(after["NRestarts"]) == int(before["NRestarts"]) + 1, (before, after)
    wait_vk(m, "started", cursor)
    set_dropin(m, "e2e-watchdog", None)
    m.systemctl("restart", UNIT)


def test_config_error_exits_78_and_is_not_restarted(machine: Machine):
    m = machine
    # The shipped OnFailure= example, wired up as install.md describes.
    m.run(["cp", "/usr/share/doc/vaultkeeper/examples/vaultkeeper-failure@.service", "/etc/systemd/system/"])
    set_dropin(m, "e2e-onfailure", "[Unit]\nOnFailure=vaultkeeper-failure@%n.service\n[Service]\nRestartSec=1s\n")
    cursor = m.cursor()
    m.systemctl("stop", UNIT)
    stopping = wait_vk(m, "stopping", cursor)
    assert m.show(UNIT, "Result")["Result"] == "success", stopping
    m.write(CONFIG, config(extra='\n[bogus]\nkey = 1\n'))
    cursor = m.cursor()
    start = m.systemctl("start", UNIT, check=False)
    assert start.returncode != 0
    entry = wait_vk(m, "configRejected", cursor)
    assert entry["PRIORITY"] == "2" and CONFIG in entry["MESSAGE"], entry["MESSAGE"]
    time.sleep(3)  # three times RestartSec: a restart loop would have begun
    props = m.show(UNIT, "ActiveState", "Result", "ExecMainStatus", "NRestarts")
    assert props == {"ActiveState": "failed", "Result": "exit-code", "ExecMainStatus": "78", "NRestarts": "0"}, props
    failure = m.wait_journal("SYSLOG_IDENTIFIER=vaultkeeper-failure", after=cursor, what="OnFailure= handler entry")
    assert "result=exit-code exited=78" in failure["MESSAGE"], failure["MESSAGE"]


def test_insecure_key_file_exits_77(machine: Machine):
    m = machine
    m.run(["install", "-o", "vaultkeeper", "-g", "vaultkeeper", "-m", "0644", INIT_JSON,
           "/etc/vaultkeeper/unseal-keys.json"])
    m.write(CONFIG, config(unseal='key_file = "/etc/vaultkeeper/unseal-keys.json"'))
    m.systemctl("reset-failed", UNIT)
    cursor = m.cursor()
    assert m.systemctl("start", UNIT, check=False).returncode != 0
    time.sleep(3)
    props = m.show(UNIT, "ActiveState", "Result", "ExecMainStatus", "NRestarts")
    assert props == {"ActiveState": "failed", "Result": "exit-code", "ExecMainStatus": "77", "NRestarts": "0"}, props
    why = [e["MESSAGE"] for e in m.journal("_SYSTEMD_UNIT=" + UNIT, after=cursor) if "unseal-keys.json" in e.get("MESSAGE", "")]
    assert why and any("chmod" in w or "0600" in w or "group" in w for w in why), why
    # Fixed permissions: the same file works (key_file instead of the credential), and the unit
    # starts without the credential in /etc/credstore.encrypted (LoadCredentialEncrypted= by name
    # tolerates a missing one).
    m.run(["chmod", "0600", "/etc/vaultkeeper/unseal-keys.json"])
    m.run(["mv", "/etc/credstore.encrypted/unseal-keys", "/root/unseal-keys.cred"])
    m.systemctl("reset-failed", UNIT)
    m.systemctl("start", UNIT)
    assert m.show(UNIT, "ActiveState")["ActiveState"] == "active"
    assert restart_vault(m)["unsealed"] < 2.0
    m.run(["rm", "-f", "/etc/vaultkeeper/unseal-keys.json"])
    m.run(["mv", "/root/unseal-keys.cred", "/etc/credstore.encrypted/unseal-keys"])
    m.write(CONFIG, config())
    set_dropin(m, "e2e-onfailure", None)
    m.systemctl("restart", UNIT)


SNAPSHOT_TABLE = """
[snapshot]
directory = "/var/lib/vaultkeeper/snapshots"
role_id_credential = "approle-role-id"
secret_id_credential = "approle-secret-id"
"""


def test_scheduled_snapshot_with_an_encrypted_approle_credential(machine: Machine):
    m = machine
    token = root_token(m)
    # The operator's AppRole set-up, as the shipped policy's comment shows it.
    policy = "/usr/share/doc/vaultkeeper/examples/vault-policy-snapshot.hcl"
    comment = m.read(policy)
    assert "vault write auth/approle/role/vaultkeeper token_policies=vaultkeeper-snapshot" in comment, comment
    m.bao("policy", "write", "vaultkeeper-snapshot", policy, token=token)
    m.bao("auth", "enable", "approle", token=token)
    m.bao("write", "auth/approle/role/vaultkeeper", "token_policies=vaultkeeper-snapshot", "token_ttl=10m",
          "token_max_ttl=30m", "secret_id_ttl=0", "token_no_default_policy=true", token=token)
    role_id = json.loads(m.bao("read", "-format=json", "auth/approle/role/vaultkeeper/role-id", token=token).stdout)["data"]["role_id"]
    secret_id = json.loads(m.bao("write", "-format=json", "-f", "auth/approle/role/vaultkeeper/secret-id",
                                 token=token).stdout)["data"]["secret_id"]
    # Both AppRole IDs as encrypted credentials (host key), picked up by the shipped unit's
    # LoadCredentialEncrypted= lines; the plaintext never stays on disk.
    for name, value in (("approle-role-id", role_id), ("approle-secret-id", secret_id)):
        m.write(f"/root/{name}", value + "\n", mode=0o600)
        m.run(["systemd-creds", "encrypt", f"--name={name}", f"/root/{name}", f"/etc/credstore.encrypted/{name}"])
        m.run(["rm", f"/root/{name}"])
    m.write(CONFIG, config(extra=SNAPSHOT_TABLE + 'interval = "1h"\n'))
    cursor = m.cursor()
    m.systemctl("restart", UNIT)
    m.run(["vaultkeeper", "config", "check", "--config", CONFIG])
    # No snapshot yet: the first one is due at once.
    taken = wait_vk(m, "snapshotTaken", cursor, timeout=60)
    path = taken["SNAPSHOT_FILE"]
    assert re.fullmatch(r"/var/lib/vaultkeeper/snapshots/vaultkeeper-[a-z0-9-]+-\d{8}T\d{6}Z-\d+\.snap", path), path
    assert taken["PRIORITY"] == "5" and int(taken["SNAPSHOT_BYTES"]) > 0, taken
    assert m.run(["stat", "-c", "%a %U %G", path]).stdout.split() == ["600", "vaultkeeper", "vaultkeeper"]
    assert m.run(["stat", "-c", "%a %U", "/var/lib/vaultkeeper/snapshots"]).stdout.split() == ["700", "vaultkeeper"]
    # OpenBao's real archive passes vaultkeeper's verification, and Python's tarfile reads it too.
    assert "OK (index" in m.run(["vaultkeeper", "snapshot", "verify", path]).stdout
    listing = m.run(["python3", "-c", SNAPSHOT_HAS_STATE, path]).stdout
    assert "state.bin" in listing and "meta.json" in listing, listing
    ledger = json.loads(m.read("/var/lib/vaultkeeper/snapshot-state.json"))
    assert ledger["last_success"]["file"] == os.path.basename(path), ledger
    status = wait_until(lambda: s if "· snapshot " in (s := m.show(UNIT, "StatusText")["StatusText"]) else None, 10,
                        what="STATUS with the snapshot age")
    assert re.search(r"· snapshot \d+s ago$", status), status
    prom = wait_until(lambda: p if "snapshot_last_success" in (p := m.read(f"{TEXTFILE_DIR}/vaultkeeper.prom")) else None, 10,
                      what="snapshot metrics")
    assert "vaultkeeper_snapshot_stale 0" in prom
    check = m.run(["vaultkeeper", "check"], user="nobody:nogroup")
    assert check.stdout.startswith("VAULT OK") and "OK: snapshots: last good snapshot" in check.stdout, check.stdout
    # OpenBao saw an AppRole login: a token with the snapshot policy exists.
    accessors = json.loads(m.bao("list", "-format=json", "auth/token/accessors", token=token).stdout)
    policies = [json.loads(m.bao("write", "-format=json", "auth/token/lookup-accessor", f"accessor={a}", token=token).stdout)
                ["data"]["policies"] for a in accessors]
    assert ["vaultkeeper-snapshot"] in policies, policies

    # OpenBao's secret ID is rotated but ours is not: snapshots fail, and backups go stale.
    m.bao("write", "auth/approle/role/vaultkeeper/secret-id/destroy", f"secret_id={secret_id}", token=token)
    m.bao("write", "-f", "auth/approle/role/vaultkeeper/secret-id", token=token)
    m.write(CONFIG, config(extra=SNAPSHOT_TABLE + 'interval = "2s"\nstale_after = "4s"\n'))
    cursor = m.cursor()
    m.systemctl("reload", UNIT)
    failed = wait_vk(m, "snapshotFailed", cursor, timeout=30)
    assert failed["SNAPSHOT_REASON"] == "auth" and failed["PRIORITY"] == "3", failed
    stale = wait_vk(m, "snapshotsStale", cursor, timeout=30)
    assert stale["PRIORITY"] == "3" and stale["SNAPSHOT_STALE_AFTER"] == "4s", stale
    text = m.run(["journalctl", "-x", "--no-pager", "-u", UNIT, f"MESSAGE_ID={ID['snapshotsStale']}"]).stdout
    assert "Subject: Vault backups are stale: no good snapshot for 4s" in text, text
    assert "What to do:" in text and "@SNAPSHOT_" not in text, text
    wait_until(lambda: "backups STALE" in m.show(UNIT, "StatusText")["StatusText"], 10, what="STATUS backups STALE")
    check = m.run(["vaultkeeper", "check"], user="nobody:nogroup", check=False)
    assert check.returncode in (1, 2) and "backups stale" in check.stdout, check.stdout
    # The AppRole secret never reached the journal, the state file or the metrics.
    exported = m.run(["journalctl", "-o", "export", "--no-pager"], timeout=120).stdout
    for text in (exported, m.read("/run/vaultkeeper/state.json"), m.read(f"{TEXTFILE_DIR}/vaultkeeper.prom")):
        assert secret_id not in text and role_id not in text
    m.write(CONFIG, config())
    m.systemctl("restart", UNIT)


# Lists the members of a Raft snapshot (gzip'ed tar) with Python's own tarfile.
SNAPSHOT_HAS_STATE = "import sys, tarfile; print(tarfile.open(sys.argv[1], 'r:gz').getnames())"


PEBBLE_CONFIG = """{"pebble": {"listenAddress": "127.0.0.1:14000", "managementListenAddress": "127.0.0.1:15000",
  "certificate": "/root/pki/server.pem", "privateKey": "/root/pki/server-key.pem",
  "httpPort": 5002, "tlsPort": 5001, "ocspResponderURL": "", "externalAccountBindingRequired": false}}
"""

# pebble, the Let's Encrypt ACME test server (Debian's package), on loopback: no challenge
# validation (the container has no DNS for vault.test), no random sleeps, no rejected nonces.
PEBBLE_UNIT = """[Unit]
Description=pebble ACME test server (e2e)
[Service]
Environment=PEBBLE_VA_ALWAYS_VALID=1 PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0
ExecStart=/usr/bin/pebble -config /etc/pebble/pebble.json
"""

# Fetches pebble's issuing root (a new one on every pebble start) over its management API.
FETCH_ACME_ROOT = """
import ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile="/root/pki/ca.pem")
sys.stdout.write(urllib.request.urlopen("https://127.0.0.1:15000/roots/0", context=ctx, timeout=10).read().decode())
"""

# The leaf OpenBao serves on a fresh handshake (SNI vault.test), as SHA-256 of its DER, and the
# leaf in certbot's live/cert.pem, the same way.
SERVED_AND_LIVE = """
import hashlib, socket, ssl
ctx = ssl.create_default_context(cafile="/etc/vaultkeeper/vault-ca.pem")
with socket.create_connection(("127.0.0.1", 8200), timeout=10) as raw:
    with ctx.wrap_socket(raw, server_hostname="vault.test") as tls:
        served = hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()
live = hashlib.sha256(ssl.PEM_cert_to_DER_cert(open("/etc/letsencrypt/live/vault.test/cert.pem").read())).hexdigest()
print(served, live)
"""

LIVE = "/etc/letsencrypt/live/vault.test"
CERTBOT = ["env", "REQUESTS_CA_BUNDLE=/root/pki/ca.pem", "certbot"]

CERTIFICATE_TABLE = f"""
[certificate]
cert_file = "{LIVE}/fullchain.pem"
key_file = "{LIVE}/privkey.pem"
ca_file = "/etc/vaultkeeper/acme-root.pem"
names = ["vault.test"]
"""


def served_and_live(m: Machine) -> tuple[str, str]:
    served, live = m.run(["python3", "-c", SERVED_AND_LIVE]).stdout.split()
    return served, live


def links_swapped_at(m: Machine) -> float:
    """When certbot swapped the last live/ symlink (the symlinks' own mtimes, lstat)."""
    out = m.run(["stat", "-c", "%.9Y", f"{LIVE}/cert.pem", f"{LIVE}/chain.pem", f"{LIVE}/fullchain.pem", f"{LIVE}/privkey.pem"]).stdout
    return max(float(x) for x in out.split())


def write_certificate_benchmark(m: Machine, latency: float, verify_ms: int) -> None:
    goal = "met" if latency <= 3.0 else "NOT met"
    text = f"""## Certificate renewal under real systemd

Measured by `make e2e` (Tests/e2e/test_systemd.py::test_certbot_renewal_reloads_openbao_over_dbus_and_is_verified)
on {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}: real certbot renews from pebble (Debian's packages, inside the container),
and real OpenBao serves certbot's `live/` files. The time runs from certbot's swap of the last
`live/` symlink to vaultkeeper's *certificate-reloaded* entry, i.e. the files seen (inotify, 500 ms
quiet period), validated, `openbao.service` reloaded through D-Bus and the shipped polkit rule
(bao re-reads its certificate on SIGHUP), and the new certificate seen on a fresh TLS handshake.

| renewal on disk → new certificate verified served | of which reload + verification | goal ≤ 3 s |
|---|---|---|
| {latency:.2f} s | {verify_ms} ms | {goal} |
"""
    record_measurement("e2e-certificate", text)


def normalized(sha: str | None) -> str:
    return (sha or "").replace(":", "").lower()


def test_certbot_renewal_reloads_openbao_over_dbus_and_is_verified(machine: Machine):
    m = machine
    # pebble, then a certificate for vault.test from it with certbot's standalone authenticator.
    m.run(["mkdir", "-p", "/etc/pebble"])
    m.write("/etc/pebble/pebble.json", PEBBLE_CONFIG)
    m.write("/etc/systemd/system/pebble.service", PEBBLE_UNIT)
    m.systemctl("daemon-reload")
    cursor = m.cursor()
    m.systemctl("start", "pebble.service")
    m.wait_journal("_SYSTEMD_UNIT=pebble.service", after=cursor, where=lambda e: "ACME directory available" in e.get("MESSAGE", ""),
                   what="pebble listening")
    try:
        _certbot_renewal(m)
    finally:
        m.systemctl("stop", "pebble.service", check=False)


def _certbot_renewal(m: Machine) -> None:
    m.write("/etc/vaultkeeper/acme-root.pem", m.run(["python3", "-c", FETCH_ACME_ROOT]).stdout)
    m.run(CERTBOT + ["certonly", "--standalone", "--http-01-address", "127.0.0.1", "--http-01-port", "5002",
                     "--server", "https://127.0.0.1:14000/dir", "-d", "vault.test", "--register-unsafely-without-email",
                     "--agree-tos", "--non-interactive"], timeout=120)
    # docs/operations.md's one-time set-up: a group both OpenBao's and vaultkeeper's users are in.
    m.run(["usermod", "-aG", "openbao", "vaultkeeper"])
    m.run(["chgrp", "openbao", "/etc/letsencrypt/live", "/etc/letsencrypt/archive"])
    m.run(["chmod", "0750", "/etc/letsencrypt/live", "/etc/letsencrypt/archive"])
    m.sh("chgrp openbao /etc/letsencrypt/archive/vault.test/privkey*.pem && chmod 0640 /etc/letsencrypt/archive/vault.test/privkey*.pem")

    # 1. vaultkeeper trusts both CAs for the switch-over; 2. OpenBao serves certbot's files
    #    (a restart, unsealed as any other); 3. the [certificate] duty, with vaultkeeper
    #    restarted to pick up its new group, as the docs say.
    m.sh("cat /root/pki/ca.pem /etc/vaultkeeper/acme-root.pem > /etc/vaultkeeper/vault-ca.pem && chmod 0644 /etc/vaultkeeper/vault-ca.pem")
    m.write(CONFIG, config(ca_file="/etc/vaultkeeper/vault-ca.pem"))
    cursor = m.cursor()
    m.systemctl("reload", UNIT)
    wait_vk(m, "configReloaded", cursor)
    write_bao_hcl(m, openbao_hcl(cert=f"{LIVE}/fullchain.pem", key=f"{LIVE}/privkey.pem"))
    restart_vault(m)
    served, first = served_and_live(m)
    assert served == first, "OpenBao serves certbot's certificate"
    m.write(CONFIG, config(ca_file="/etc/vaultkeeper/vault-ca.pem", extra=CERTIFICATE_TABLE))
    m.systemctl("restart", UNIT)
    check = m.run(["vaultkeeper", "cert", "check"], user="vaultkeeper")
    assert "key: matches" in check.stdout and "same as file: yes" in check.stdout, check.stdout
    state = wait_until(lambda: (st := json.loads(m.run(["vaultkeeper", "status", "--json"], check=False).stdout or "{}")).get("certificate", {}).get("state") == "ok" and st, 30,
                       what="certificate state ok")
    assert normalized(state["certificate"]["served_sha256"]) == first, state["certificate"]

    # certbot renews: vaultkeeper (unprivileged) validates, reloads openbao.service through
    # D-Bus and the shipped polkit rule, and sees the new certificate served.
    pid = bao_pid(m)
    cursor = m.cursor()
    m.run(CERTBOT + ["renew", "--force-renewal", "--no-random-sleep-on-renew", "--non-interactive"], timeout=120)
    swapped = links_swapped_at(m)
    _, second = served_and_live(m)
    assert second != first
    # certbot gave the new key the group and mode of the previous one (docs/operations.md).
    assert m.run(["stat", "-c", "%a %G", "/etc/letsencrypt/archive/vault.test/privkey2.pem"]).stdout.split() == ["640", "openbao"]
    reloaded = wait_vk(m, "certificateReloaded", cursor, timeout=60)
    assert reloaded["PRIORITY"] == "5" and normalized(reloaded["CERTIFICATE_SHA256"]) == second, reloaded
    assert "openbao.service" in reloaded["MESSAGE"], reloaded["MESSAGE"]
    write_certificate_benchmark(m, ts(reloaded) - swapped, int(reloaded["CERTIFICATE_VERIFY_MS"]))
    wait_bao_line(m, cursor, "OpenBao reload triggered")
    jobs = [e for e in m.journal("_PID=1", after=cursor) if e.get("UNIT") == BAO_UNIT]
    assert any("Reloading" in e.get("MESSAGE", "") for e in jobs), [e.get("MESSAGE") for e in jobs]
    assert not any("Stopping" in e.get("MESSAGE", "") for e in jobs), "a reload, not a restart"
    assert bao_pid(m) == pid
    served, live = served_and_live(m)
    assert served == live == second, "OpenBao serves the renewed certificate"
    assert not vk_entries(m, "certificateInvalid", after=cursor) and not vk_entries(m, "certificateReloadFailed", after=cursor)
    assert not vk_entries(m, "unsealed", after=cursor), "a reload does not seal OpenBao"
    status = m.show(UNIT, "StatusText")["StatusText"]
    assert "certificate" not in status, status  # nothing to report once the renewal is served

    # Back to the usual set-up for the tests after this one (the same steps in reverse).
    m.write(CONFIG, config(ca_file="/etc/vaultkeeper/vault-ca.pem"))
    cursor = m.cursor()
    m.systemctl("reload", UNIT)
    wait_vk(m, "configReloaded", cursor)
    write_bao_hcl(m, openbao_hcl())
    restart_vault(m)
    m.write(CONFIG, config())
    cursor = m.cursor()
    m.systemctl("reload", UNIT)
    wait_vk(m, "configReloaded", cursor)


def test_package_upgrade_remove_purge_and_configured_install(machine: Machine):
    m = machine
    apt = ["apt-get", "-y", "--no-install-recommends"]
    # Upgrade (same version reinstalled): postinst try-restarts a running service.
    pid = m.show(UNIT, "MainPID")["MainPID"]
    m.run(apt + ["install", "--reinstall", "/root/vaultkeeper.deb"], timeout=180)
    props = wait_until(lambda: (p := m.show(UNIT, "MainPID", "ActiveState"))["ActiveState"] == "active" and p, 30,
                       what="vaultkeeper active after upgrade")
    assert props["MainPID"] != pid, "the upgrade did not restart the running service"
    # Remove: stopped, unit gone, configuration and credential kept (they are the admin's).
    m.run(apt + ["remove", "vaultkeeper"], timeout=180)
    assert m.systemctl("is-active", UNIT, check=False).stdout.strip() in ("inactive", "unknown")
    m.run(["test", "!", "-e", "/lib/systemd/system/vaultkeeper.service"])
    m.run(["test", "-e", CONFIG])
    m.run(["test", "-e", "/etc/credstore.encrypted/unseal-keys"])
    # Purge: the state goes, the backups stay (the default [snapshot] directory is inside the
    # state directory) and the purge says where they are.
    snapshots = "/var/lib/vaultkeeper/snapshots"
    kept = m.run(["sh", "-c", f'ls -A "{snapshots}" 2>/dev/null || true']).stdout.split()
    purge = m.run(apt + ["purge", "vaultkeeper"], timeout=180)
    if kept:  # the scheduled-snapshot test above wrote some
        assert f"{snapshots} are kept" in purge.stdout + purge.stderr, purge.stdout + purge.stderr
        assert m.run(["ls", "-A", snapshots]).stdout.split() == kept
        assert m.run(["ls", "-A", "/var/lib/vaultkeeper"]).stdout.split() == ["snapshots"]
    else:
        m.run(["test", "!", "-e", "/var/lib/vaultkeeper"])
    # Installing onto a configured machine enables and starts the service right away.
    m.run(apt + ["install", "/root/vaultkeeper.deb"], timeout=180)
    assert m.systemctl("is-enabled", UNIT).stdout.strip() == "enabled"
    wait_until(lambda: m.show(UNIT, "ActiveState")["ActiveState"] == "active", 30, what="vaultkeeper started by postinst")
    assert bao_sealed(m) is False


def test_no_key_material_anywhere_in_the_journal(machine: Machine):
    m = machine
    init = json.loads(m.read(INIT_JSON))
    secrets = list(init["unseal_keys_b64"]) + list(init["unseal_keys_hex"]) + [init["root_token"]]
    assert len(secrets) == 11 and all(len(s) >= 20 for s in secrets)
    exported = m.run(["journalctl", "-o", "export", "--no-pager"], timeout=120).stdout
    assert "vaultkeeper" in exported and len(exported) > 10000
    # Also what systemd and vaultkeeper expose besides the journal.
    pid = m.show(UNIT, "MainPID")["MainPID"]
    elsewhere = {
        "systemctl show": m.systemctl("show", UNIT).stdout,
        "state.json": m.read("/run/vaultkeeper/state.json"),
        "metrics": m.read(f"{TEXTFILE_DIR}/vaultkeeper.prom"),
        "cmdline": m.read(f"/proc/{pid}/cmdline"),
        "environ": m.read(f"/proc/{pid}/environ"),
        "credential file": m.read("/etc/credstore.encrypted/unseal-keys"),
    }
    for secret in secrets:
        assert secret not in exported, "key material in the journal"
        for what, text in elsewhere.items():
            assert secret not in text, f"key material in {what}"
