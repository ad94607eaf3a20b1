# SPDX-License-Identifier: Apache-2.0
"""The certificate duty against a real OpenBao node serving real certbot files.

Debian's `pebble` (a real ACME server) issues `vault.test`; real `certbot` writes its own
`live/`/`archive/` layout; `bao server`'s listener is configured with live/vault.test/fullchain.pem
and privkey.pem; vaultkeeper connects to 127.0.0.1 with `server_name = "vault.test"` and trusts
only pebble's root (fetched from pebble's management interface, new on every pebble start), so
every handshake follows the real chain leaf → pebble intermediate → pebble root.

- `certbot renew` → validated, OpenBao reloaded by `reload = "command"` (SIGHUP to the bao
  process, which is what OpenBao's own unit does) and the renewed leaf proven served; the test
  compares the served leaf itself.
- `reload = "signal"` asks systemd over D-Bus for the unit's MainPID: outside systemd it cannot
  work, and must say so (reload failed), not pretend. (Its success path is tested only against a
  fake systemd on a private bus, Tests/SystemdTests/UnitReloaderTests.swift.)
- renewed while vaultkeeper was stopped → reloaded at its next start.
- a renewal whose key does not match (live/privkey.pem left on the previous key, or the new
  archive key replaced) is refused; OpenBao is not signalled and keeps serving the old leaf;
  once the key is put right the renewal goes through.
"""

from __future__ import annotations

import contextlib
import json
import signal

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import acme_support as acme
import bao_harness as bh
import vk_harness as h

NAME = "vault.test"
# certbot's key types, as `vaultkeeper cert check` names them.
KEY_TYPES = {"ecdsa": "P256", "ecdsa-secp384r1": "P384", "rsa": "RSA"}


class Setup:
    def __init__(self, pebble: acme.Pebble, certbot: acme.Certbot, lineage: acme.Lineage, node: bh.BaoNode, init: dict):
        self.pebble = pebble
        self.certbot = certbot
        self.lineage = lineage
        self.node = node
        self.init = init
        self.root = str(pebble.root_path)

    def served(self) -> str:
        return acme.served_sha256(self.node.api_port, self.root, NAME)

    def bao_reloads(self) -> int:
        """SIGHUPs OpenBao has acted on, from its own log."""
        return self.node.log_path.read_bytes().count(b"==> OpenBao reload triggered")

    def status(self) -> dict:
        return acme.seal_status(self.node, server_name=NAME, ca_file=self.root)


@pytest.fixture
def key_type() -> str:
    """certbot's key type (a test parametrizes it to change it)."""
    return "ecdsa"


@pytest.fixture
def acme_bao(tmp_path, pki, baos, key_type):
    """pebble running, certbot's first certificate for vault.test, and a real OpenBao node
    serving certbot's live/ files, initialised by `bao operator init` (sealed)."""
    pebble = acme.Pebble(tmp_path / "pebble", pki)
    try:
        pebble.start()
        certbot = acme.Certbot(tmp_path / "certbot", pebble)
        lineage = certbot.certonly(NAME, key_type)
        assert lineage.version() == 1
        # BaoNode takes paths for cert and key. Its own request helpers verify 127.0.0.1, which
        # this certificate does not name: the tests talk to it through acme_support instead.
        node = baos("node1", cert=lineage.fullchain, key=lineage.privkey)
        init = acme.operator_init(node, server_name=NAME, ca_file=str(pebble.root_path))
        s = Setup(pebble, certbot, lineage, node, init)
        assert s.served() == lineage.leaf_sha256(1)
        yield s
    finally:
        pebble.close()


def _norm(fp: str) -> str:
    return fp.replace(":", "").lower()


def _certificate_table(s: Setup, **table) -> str:
    values = {"cert_file": s.lineage.fullchain, "key_file": s.lineage.privkey, "ca_file": s.root,
              "reload_timeout": "10s", "verify_window": "10s"}
    values.update(table)
    return "\n[certificate]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())


@pytest.fixture
def watched(acme_bao, daemons, config, keyfile):
    """start(**certificate table) -> a daemon watching the lineage; it has unsealed OpenBao and
    found the served certificate equal to the files (nothing to reload at start)."""
    s = acme_bao

    def start(*, env=None, **table) -> h.Daemon:
        cfg = config(s.node, key_file=keyfile(s.init), vault_extra={"ca_file": s.root, "server_name": NAME},
                     extra=_certificate_table(s, **table))
        d = daemons(cfg, env=env)
        d.wait_ready(timeout=20)
        d.wait_entry("unsealed", contains="sealed at start-up", timeout=30)
        st = d.wait_state(lambda st: (st.get("certificate") or {}).get("served_sha256") is not None, timeout=30,
                          what="the served certificate in the state file")["certificate"]
        assert st["state"] == "ok", st
        assert _norm(st["file_sha256"]) == _norm(st["served_sha256"]) == s.lineage.leaf_sha256(1), st
        assert s.bao_reloads() == 0  # OpenBao already serves the files' certificate
        return d
    return s, start


@contextlib.contextmanager
def frozen(d: h.Daemon):
    """Holds the daemon still (SIGSTOP) while the files are changed in more than one step, so it
    reads them only as they are at the end: its inotify events wait in the kernel meanwhile."""
    d.proc.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        d.proc.send_signal(signal.SIGCONT)


def _cert_check(d: h.Daemon) -> h.CliResult:
    return h.run_cli(["cert", "check", "--config", str(d.config)])


@pytest.mark.parametrize("key_type", ["ecdsa", "ecdsa-secp384r1", "rsa"])
def test_certbot_renewal_is_validated_reloaded_by_command_and_proven_served(key_type, watched):
    s, start = watched
    d = start(reload="command", reload_command=["/bin/kill", "-HUP", str(s.node.pid)])
    old = s.served()
    # `cert check` on the same files and server: the chain in fullchain.pem (pebble's
    # intermediate) validates to pebble's root, and OpenBao serves the same certificate.
    r = _cert_check(d)
    assert r.returncode == 0 and r.stdout.startswith("CERT OK: CN=vault.test"), r
    assert f"key type: {KEY_TYPES[key_type]}" in r.stdout and f"key: matches {s.lineage.privkey}" in r.stdout, r
    assert f"chain: validates to {s.root}" in r.stdout and "same as file: yes" in r.stdout, r

    s.certbot.renew(s.lineage)
    new = s.lineage.leaf_sha256(2)
    assert new != old

    reloaded = d.wait_entry("certificate_reloaded", timeout=60)[0]
    assert reloaded.level == "notice" and "now serves the renewed certificate" in reloaded.text, reloaded.text
    assert f"certificate.sha256={new}" in _norm(reloaded.text), reloaded.text
    assert f"/bin/kill -HUP {s.node.pid}" in reloaded.text, reloaded.text
    # Our own handshake, verified against pebble's root for vault.test: the new leaf.
    assert s.served() == new
    assert s.bao_reloads() == 1
    st = d.wait_state(lambda st: st["certificate"]["last_reload_result"] == "succeeded", timeout=15)["certificate"]
    assert st["state"] == "ok" and st["reloads"] == {"succeeded": 1}, st
    assert _norm(st["served_sha256"]) == _norm(st["file_sha256"]) == new, st
    assert not d.entries("certificate_invalid") and not d.entries("certificate_not_served") \
        and not d.entries("certificate_reload_failed"), d.stderr()
    # The SIGHUP reloaded the listener only: OpenBao is still unsealed, the same process.
    assert s.status()["sealed"] is False
    assert s.node.running() and s.node.starts == 1
    r = _cert_check(d)
    assert r.returncode == 0 and "same as file: yes" in r.stdout and new in _norm(r.stdout), r


def test_a_renewal_while_vaultkeeper_was_down_is_reloaded_at_its_start(watched, daemons):
    """certbot's timer does not wait for vaultkeeper: renewed while it was stopped, OpenBao still
    serves the old leaf; the next start sees the difference, reloads once and proves it."""
    s, start = watched
    first = start(reload="command", reload_command=["/bin/kill", "-HUP", str(s.node.pid)])
    assert first.stop(timeout=15) == 0
    old = s.served()
    s.certbot.renew(s.lineage)
    new = s.lineage.leaf_sha256(2)
    assert s.served() == old != new  # OpenBao does not reload by itself

    d = daemons(first.config, name="vk-again")
    d.wait_ready(timeout=20)
    noticed = d.wait_entry(contains="reloading Vault", level="notice", timeout=60)[0]
    assert "serves " + old[:8] in _norm(noticed.text) and "holds " + new[:8] in _norm(noticed.text), noticed.text
    reloaded = d.wait_entry("certificate_reloaded", timeout=60)[0]
    assert f"certificate.sha256={new}" in _norm(reloaded.text), reloaded.text
    assert s.served() == new
    assert s.bao_reloads() == 1
    assert len(d.entries("certificate_reloaded")) == 1 and not d.entries("certificate_invalid"), d.stderr()


def test_signal_reload_needs_systemd_and_says_so_outside_it(watched, tmp_path):
    """`reload = "signal"` sends SIGHUP to the unit's MainPID, read from systemd over D-Bus.
    Outside systemd there is no such PID: the reload fails loudly and OpenBao keeps its
    certificate (not a silent success). DBUS_SYSTEM_BUS_ADDRESS points at nothing so that the
    same holds on a machine whose PID 1 is systemd."""
    s, start = watched
    no_bus = tmp_path / "no-system-bus"
    d = start(reload="signal", unit="openbao.service", env={"DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={no_bus}"})
    old = s.served()

    s.certbot.renew(s.lineage)
    failed = d.wait_entry("certificate_reload_failed", timeout=60)[0]
    assert failed.level == "critical", failed.text
    assert "SIGHUP to the main process of openbao.service failed" in failed.text, failed.text
    assert str(no_bus) in failed.text, failed.text  # the reason: no bus there
    d.wait_state(lambda st: st["certificate"]["state"] == "reload-failed", timeout=15)
    assert s.bao_reloads() == 0
    assert s.served() == old
    assert not d.entries("certificate_reloaded")


def _other_key() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    for i, line in enumerate(pem.decode().splitlines()):
        if not line.startswith("-----"):
            h.LEDGER.secret(line, f"stray TLS key line {i}")
    return pem


@pytest.mark.parametrize("bad", ["live-privkey-on-previous-key", "archive-key-replaced"])
def test_renewal_with_a_key_that_does_not_match_is_refused_and_openbao_keeps_its_certificate(bad, watched):
    s, start = watched
    d = start(reload="command", reload_command=["/bin/kill", "-HUP", str(s.node.pid)])
    old = s.served()
    assert old == s.lineage.leaf_sha256(1)

    new_key = s.lineage.archive / "privkey2.pem"
    with frozen(d):
        s.certbot.renew(s.lineage)
        right_key = new_key.read_bytes()
        if bad == "live-privkey-on-previous-key":
            # live/privkey.pem back on privkey1.pem: the renewed certificate with the old key.
            s.lineage.link("privkey", "privkey1.pem")
        else:
            # The new archive key replaced in place by an unrelated one.
            new_key.write_bytes(_other_key())
    new = s.lineage.leaf_sha256(2)

    refused = d.wait_entry("certificate_invalid", timeout=60)[0]
    assert refused.level == "critical", refused.text
    assert "renewed certificate" in refused.text and "Vault is not reloaded" in refused.text, refused.text
    assert "does not match the certificate's public key" in refused.text, refused.text
    assert "certificate.problem=key_mismatch" in refused.text, refused.text
    d.wait_status("certificate INVALID", timeout=15)
    # STATUS goes out just before the state file is rewritten: wait for the file as well.
    d.wait_state(lambda st: st["certificate"]["state"] == "invalid", timeout=15)
    # The claim is that nothing happens to OpenBao: watched for a bounded window. The served
    # leaf alone would not show it (OpenBao 2.7 itself refuses a mismatched pair on SIGHUP,
    # "tls: private key does not match public key", and keeps its certificate): its log must
    # show no reload at all.
    bh.wait_quiet(3, lambda: s.bao_reloads() != 0 or s.served() != old)
    assert not d.entries("certificate_reloaded") and not d.entries("certificate_reload_failed"), d.stderr()
    r = _cert_check(d)
    assert r.returncode == 2 and r.stdout.startswith("CERT CRITICAL"), r
    assert "does not match the certificate's public key" in r.stdout, r

    # Put right, the same renewal goes through.
    if bad == "live-privkey-on-previous-key":
        s.lineage.link("privkey", "privkey2.pem")
    else:
        new_key.write_bytes(right_key)
    reloaded = d.wait_entry("certificate_reloaded", timeout=60)[0]
    assert new in _norm(reloaded.text), reloaded.text
    assert s.served() == new
    assert s.bao_reloads() == 1
    assert s.status()["sealed"] is False
