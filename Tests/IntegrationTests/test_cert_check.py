# SPDX-License-Identifier: Apache-2.0
"""`vaultkeeper cert check` against the simulator, with certificates in certbot's layout:
live/NAME/{cert,chain,fullchain,privkey}.pem are relative symlinks into archive/NAME/*N.pem, and
a renewal adds version N+1 and re-points the links. The simulator serves live/NAME/fullchain.pem.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import ssl
import tempfile
from pathlib import Path
from typing import Optional

import pytest

import vk_harness as h
from vk_fixtures import needs

NOBODY = 65534
NAMES = ["vault.test"]
EX_OK, EX_WARNING, EX_CRITICAL, EX_UNKNOWN = 0, 1, 2, 3


class Lineage:
    """One certbot lineage (archive/NAME + live/NAME)."""

    def __init__(self, root: Path, ca_pem: bytes, name: str = "vault"):
        self.name = name
        self.ca_pem = ca_pem
        self.archive = root / "archive" / name
        self.live = root / "live" / name
        self.archive.mkdir(parents=True)
        self.live.mkdir(parents=True)
        self.version = 0

    def renew(self, cert_pem: bytes, key_pem: bytes, *, key_mode: int = 0o600) -> None:
        register_key(key_pem, f"{self.name} privkey{self.version + 1}")
        self.version += 1
        n = self.version
        files = {"cert": cert_pem, "chain": self.ca_pem, "fullchain": cert_pem + self.ca_pem, "privkey": key_pem}
        for kind, data in files.items():
            path = self.archive / f"{kind}{n}.pem"
            path.write_bytes(data)
            os.chmod(path, key_mode if kind == "privkey" else 0o644)
            self.link(kind, f"{kind}{n}.pem")

    def link(self, kind: str, target: str) -> None:
        link = self.live / f"{kind}.pem"
        tmp = self.live / f".{kind}.tmp"
        os.symlink(f"../../archive/{self.name}/{target}", tmp)
        os.replace(tmp, link)

    def write_archive(self, name: str, data: bytes, mode: int = 0o644) -> None:
        (self.archive / name).write_bytes(data)
        os.chmod(self.archive / name, mode)

    @property
    def fullchain(self) -> str:
        return str(self.live / "fullchain.pem")

    @property
    def privkey(self) -> str:
        return str(self.live / "privkey.pem")


def register_key(key_pem: bytes, label: str) -> None:
    """Every base64 line of a TLS private key is a secret for test_zz_no_secrets.py: none may
    appear in anything vaultkeeper prints."""
    for i, line in enumerate(key_pem.decode().splitlines()):
        if line and not line.startswith("-----"):
            h.LEDGER.secret(line, f"TLS key {label} line {i}")


def fingerprint(cert_pem: bytes) -> str:
    der = ssl.PEM_cert_to_DER_cert(cert_pem.decode())
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def write_config(path: Path, sim: h.Sim, ca: str, lineage: Lineage, *, names=NAMES, key_file: Optional[str] = None) -> Path:
    text = h.render_config({"address": sim.address, "ca_file": ca})
    text += "\n[certificate]\n" + "\n".join(
        f"{k} = {json.dumps(v)}" for k, v in {
            "cert_file": lineage.fullchain, "key_file": key_file or lineage.privkey, "ca_file": ca, "names": names,
        }.items()) + "\n"
    path.write_text(text)
    os.chmod(path, 0o644)
    return path


@pytest.fixture
def served(tmp_path):
    """served(lineage) -> a simulator serving the lineage's live/ fullchain and key."""
    started: list[h.Sim] = []

    def start(lineage: Lineage) -> h.Sim:
        s = h.Sim(tmp_path / f"sim{len(started)}", {"live": lineage.fullchain, "live-key": lineage.privkey}, cert="live",
                  name=f"cert-sim{len(started)}")
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


@pytest.fixture
def setup(tmp_path, pki, served):
    """A lineage with a good first certificate for vault.test (and the usual SANs), a simulator
    serving it, and a configuration for both: (lineage, sim, config path, first cert PEM)."""
    ca_pem = Path(pki["ca"]).read_bytes()
    lineage = Lineage(tmp_path / "letsencrypt", ca_pem)
    cert, key = h.testca.issue_leaf(pki, "vault.test", h.testca.SERVER_SANS)
    lineage.renew(cert, key)
    sim = served(lineage)
    cfg = write_config(tmp_path / "vk.toml", sim, pki["ca"], lineage)
    return lineage, sim, cfg, cert


def cert_check(cfg, **kw) -> h.CliResult:
    return h.run_cli(["cert", "check", "--config", str(cfg)], **kw)


def perfdata(first_line: str) -> dict[str, str]:
    _, _, perf = first_line.partition(" | ")
    return dict(re.findall(r"'(\w+)'=(\S+)", perf))


def test_ok(setup):
    lineage, sim, cfg, cert = setup
    r = cert_check(cfg)
    assert r.returncode == EX_OK, r
    first = r.stdout.splitlines()[0]
    assert first.startswith("CERT OK: "), r
    perf = perfdata(first)
    assert perf["file_days"] in ("823;21;7", "824;21;7") and perf["served_days"] == perf["file_days"], first
    fp = fingerprint(cert)
    assert r.stdout.count(f"sha256: {fp}") == 2, r  # the file's and the served one
    assert f"key: matches {lineage.privkey}" in r.stdout
    assert "chain: validates to" in r.stdout
    assert "same as file: yes" in r.stdout
    assert "verification: ok" in r.stdout
    assert "SANs: localhost, vault.test, 127.0.0.1, ::1" in r.stdout
    # A TLS handshake only: the simulator saw a connection and no HTTP request.
    st = sim.state()
    assert st["requests_total"] == 0 and st["connections_total"] >= 1, st


def test_mismatched_key(setup, pki):
    lineage, sim, cfg, cert = setup
    _, other_key = h.testca.issue_leaf(pki, "vault.test", NAMES)
    register_key(other_key, "mismatched")
    lineage.write_archive("privkey2.pem", other_key, 0o600)
    lineage.link("privkey", "privkey2.pem")
    r = cert_check(cfg)
    assert r.returncode == EX_CRITICAL, r
    assert r.stdout.startswith("CERT CRITICAL: file: the private key in key_file does not match the certificate's public key"), r
    assert f"key: DOES NOT MATCH {lineage.privkey}" in r.stdout
    key_body = other_key.decode().splitlines()[1]
    assert key_body not in r.stdout + r.stderr


def test_expired(setup, pki):
    lineage, sim, cfg, _ = setup
    cert, key = h.testca.issue_leaf(pki, "vault.test", NAMES, not_before_days=-30, not_after_days=-1)
    lineage.renew(cert, key)
    r = cert_check(cfg)
    assert r.returncode == EX_CRITICAL, r
    assert r.stdout.startswith("CERT CRITICAL: file: the certificate expired on "), r
    assert "'file_days'=-" in r.stdout.splitlines()[0]


def test_not_yet_valid(setup, pki):
    lineage, sim, cfg, _ = setup
    cert, key = h.testca.issue_leaf(pki, "vault.test", NAMES, not_before_days=1, not_after_days=90)
    lineage.renew(cert, key)
    r = cert_check(cfg)
    assert r.returncode == EX_CRITICAL, r
    assert r.stdout.startswith("CERT CRITICAL: file: the certificate is not valid yet (not before "), r


def test_wrong_san(setup, pki):
    lineage, sim, cfg, _ = setup
    lineage.renew(Path(pki["other-name"]).read_bytes(), Path(pki["other-name-key"]).read_bytes())
    r = cert_check(cfg)
    assert r.returncode == EX_CRITICAL, r
    assert r.stdout.startswith(
        "CERT CRITICAL: file: the certificate does not cover vault.test (its subject alternative names: other.test)"), r


def test_garbage_pem(setup):
    lineage, sim, cfg, _ = setup
    lineage.write_archive("fullchain2.pem", b"this is not a certificate\n")
    lineage.link("fullchain", "fullchain2.pem")
    r = cert_check(cfg)
    assert r.returncode == EX_CRITICAL, r
    assert r.stdout.startswith(f"CERT CRITICAL: file: no certificate in cert_file {lineage.fullchain}"), r
    assert "(no certificate)" in r.stdout


def test_world_readable_key_is_not_read(setup):
    lineage, sim, cfg, _ = setup
    os.chmod(lineage.archive / "privkey1.pem", 0o644)
    r = cert_check(cfg)
    assert r.returncode == EX_CRITICAL, r
    assert f"key_file {lineage.privkey} is accessible to every user (mode 644)" in r.stdout, r


def test_unreadable_key(pki, served):
    """Tests run as root, who reads any file: the check runs as nobody against a root-owned 0600
    key (certbot's default) in a directory nobody can traverse otherwise."""
    needs(os.geteuid() == 0, "root (to switch users)")
    d = Path(tempfile.mkdtemp(prefix="vk-cert-nobody-", dir="/tmp"))
    try:
        os.chmod(d, 0o755)
        ca = d / "ca.pem"
        shutil.copy(pki["ca"], ca)
        os.chmod(ca, 0o644)
        lineage = Lineage(d / "letsencrypt", ca.read_bytes())
        for p in (d / "letsencrypt", d / "letsencrypt" / "archive", d / "letsencrypt" / "live", lineage.archive, lineage.live):
            os.chmod(p, 0o755)
        cert, key = h.testca.issue_leaf(pki, "vault.test", h.testca.SERVER_SANS)
        lineage.renew(cert, key, key_mode=0o600)
        sim = served(lineage)
        cfg = write_config(d / "vk.toml", sim, str(ca), lineage)
        r = cert_check(cfg, preexec=["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"])
        assert r.returncode == EX_CRITICAL, r
        assert r.stdout.startswith(f"CERT CRITICAL: file: cannot read key_file {lineage.privkey}: Permission denied"), r
        assert "key: not checked" in r.stdout
        # The rest is still inspected and the served certificate still read.
        assert "same as file: yes" in r.stdout
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_served_differs_from_file_until_vault_reloads(setup, pki):
    lineage, sim, cfg, old = setup
    new, key = h.testca.issue_leaf(pki, "vault.test", h.testca.SERVER_SANS, not_after_days=90)
    lineage.renew(new, key)
    r = cert_check(cfg)
    assert r.returncode == EX_WARNING, r
    first = r.stdout.splitlines()[0]
    assert first.startswith(f"CERT WARNING: Vault still serves the old certificate: served sha256 {fingerprint(old)} (not after "), r
    assert f"file sha256 {fingerprint(new)} (not after " in first
    assert "same as file: no" in r.stdout
    perf = perfdata(first)
    assert perf["file_days"] in ("89;21;7", "90;21;7") and perf["served_days"] in ("823;21;7", "824;21;7"), first

    assert sim.control("POST", "/reload-tls")["ok"]
    r = cert_check(cfg)
    assert r.returncode == EX_OK, r
    assert r.stdout.count(f"sha256: {fingerprint(new)}") == 2, r


def test_served_certificate_that_fails_verification_is_still_shown(tmp_path, pki):
    """Vault serves an expired certificate: verification fails, and a second handshake without
    verification (on which nothing is sent) shows what is served."""
    ca_pem = Path(pki["ca"]).read_bytes()
    lineage = Lineage(tmp_path / "le", ca_pem)
    lineage.renew(Path(pki["expired"]).read_bytes(), Path(pki["expired-key"]).read_bytes())
    sim = h.Sim(tmp_path / "sim", {"live": lineage.fullchain, "live-key": lineage.privkey}, cert="live", name="expired-sim")
    try:
        cert, key = h.testca.issue_leaf(pki, "vault.test", h.testca.SERVER_SANS)
        lineage.renew(cert, key)  # the file is renewed; Vault still serves the expired one
        cfg = write_config(tmp_path / "vk.toml", sim, pki["ca"], lineage)
        r = cert_check(cfg)
        assert r.returncode == EX_CRITICAL, r
        assert r.stdout.startswith("CERT CRITICAL: served: the certificate Vault serves does not verify: "), r
        assert "Vault serves an expired certificate" in r.stdout
        assert "Vault still serves the old certificate" in r.stdout
        assert f"sha256: {fingerprint(Path(pki['expired']).read_bytes())}" in r.stdout
        assert "verification: FAILED" in r.stdout
        st = sim.state()
        assert st["requests_total"] == 0, st
    finally:
        sim.stop()


def test_unreachable_vault_is_unknown(setup):
    lineage, sim, cfg, _ = setup
    sim.stop()
    r = cert_check(cfg)
    assert r.returncode == EX_UNKNOWN, r
    assert r.stdout.startswith("CERT UNKNOWN: served: cannot connect to "), r
    assert "key: matches" in r.stdout  # the files are still checked


def test_without_certificate_table_is_unknown(tmp_path, sim, pki):
    cfg = tmp_path / "vk.toml"
    cfg.write_text(h.render_config({"address": sim.address, "ca_file": pki["ca"]}))
    r = cert_check(cfg)
    assert r.returncode == EX_UNKNOWN, r
    assert "no [certificate] table" in r.stdout


def test_config_check_renders_the_table(setup):
    lineage, sim, cfg, _ = setup
    r = h.run_cli(["config", "check", "--config", str(cfg)])
    assert r.returncode == 0, r
    assert "[certificate]" in r.stdout
    assert f'cert_file = "{lineage.fullchain}"' in r.stdout
    assert 'names = ["vault.test"]' in r.stdout
    assert 'reload = "systemd"' in r.stdout and 'unit = "vault.service"' in r.stdout
