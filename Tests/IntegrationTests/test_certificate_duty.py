# SPDX-License-Identifier: Apache-2.0
"""The certificate duty of `vaultkeeper run` against the simulator, in certbot's live/archive
layout: a renewal is validated, Vault is reloaded (here by a command sending SIGHUP to the
simulator, which then serves the new pair on new connections) and the new certificate is proven
served; bad renewals are refused without a reload; a Vault that ignores the reload, a failing
or hanging reload command, and a rapid double renewal are each handled and reported."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

import test_cert_check as tc
from test_cert_check import served, setup  # noqa: F401  (fixtures)
import vk_harness as h


def _config(path: Path, sim: h.Sim, ca: str, lineage: tc.Lineage, *, reload_command: list[str] | None = None, **extra) -> Path:
    tc.write_config(path, sim, ca, lineage)
    table = {"reload": "command", "reload_command": reload_command or ["/bin/kill", "-HUP", str(sim.proc.pid)],
             "reload_timeout": "3s", "verify_window": "3s"}
    table.update(extra)
    path.write_text(path.read_text() + "\n".join(f"{k} = {json.dumps(v)}" for k, v in table.items()) + "\n")
    return path


@pytest.fixture
def duty(setup, pki, daemons, tmp_path):
    """(lineage, sim, daemon factory) with a daemon watching the lineage."""
    lineage, sim, _, _ = setup

    def start(**kw) -> h.Daemon:
        cfg = _config(tmp_path / "duty.toml", sim, pki["ca"], lineage, **kw)
        d = daemons(cfg)
        d.wait_ready()
        d.wait_state(lambda st: (st.get("certificate") or {}).get("state") not in (None, "unknown"), what="certificate report")
        return d
    return lineage, sim, start


def _renew(lineage: tc.Lineage, pki: dict, *, sans=tc.NAMES + h.testca.SERVER_SANS, **kw) -> bytes:
    cert, key = h.testca.issue_leaf(pki, "vault.test", sorted(set(sans)), **kw)
    lineage.renew(cert, key)
    return cert


def _served_sha(sim: h.Sim) -> str:
    return sim.state()["tls_cert_sha256"]


def test_renewal_is_validated_reloaded_and_proven_served(duty, pki):
    lineage, sim, start = duty
    d = start()
    st = d.read_state()["certificate"]
    assert st["state"] == "ok" and st["file_sha256"] == st["served_sha256"], st
    assert sim.state()["tls_reloads"] == 0  # nothing to do at start: Vault serves the files' certificate
    old = _served_sha(sim)

    new_cert = _renew(lineage, pki)
    reloaded = d.wait_entry("certificate_reloaded", timeout=10)
    assert reloaded[0].level == "notice" and "now serves the renewed certificate" in reloaded[0].text
    assert _served_sha(sim) != old and sim.state()["tls_reloads"] == 1
    assert tc.fingerprint(new_cert).replace(":", "").lower() == _served_sha(sim).replace(":", "").lower()
    st = d.wait_state(lambda st: st["certificate"]["served_sha256"] == st["certificate"]["file_sha256"]
                      and st["certificate"]["last_reload_result"] == "succeeded")
    assert st["certificate"]["reloads"] == {"succeeded": 1}
    m = d.read_metrics() if d.metrics_dir else None
    assert m is None or "vaultkeeper_certificate_served_matches_file 1" in m
    assert not d.entries("certificate_invalid") and not d.entries("certificate_not_served")


@pytest.mark.parametrize("bad,problem", [
    ("mismatched-key", "does not match"),
    ("expired", "expired"),
    ("not-yet-valid", "not valid yet"),
    ("wrong-san", "vault.test"),
    ("garbage", "no certificate"),
])
def test_a_bad_renewal_is_refused_and_vault_keeps_its_certificate(bad, problem, duty, pki):
    lineage, sim, start = duty
    d = start()
    before = _served_sha(sim)
    if bad == "mismatched-key":
        cert, _ = h.testca.issue_leaf(pki, "vault.test", tc.NAMES + h.testca.SERVER_SANS)
        _, other_key = h.testca.issue_leaf(pki, "vault.test", tc.NAMES)
        lineage.renew(cert, other_key)
    elif bad == "expired":
        _renew(lineage, pki, not_before_days=-30, not_after_days=-1)
    elif bad == "not-yet-valid":
        _renew(lineage, pki, not_before_days=2, not_after_days=90)
    elif bad == "wrong-san":
        _renew(lineage, pki, sans=["other.test"])
    else:
        # certbot's fullchain is cert + chain; here the whole new file is garbage.
        lineage.version += 1
        lineage.write_archive(f"fullchain{lineage.version}.pem", b"this is not a certificate\n")
        lineage.link("fullchain", f"fullchain{lineage.version}.pem")
    refused = d.wait_entry("certificate_invalid", timeout=10)
    assert refused[0].level == "critical" and "Vault is not reloaded" in refused[0].text, refused[0].text
    assert problem in refused[0].text.lower() or problem in refused[0].text, refused[0].text
    d.wait_status("certificate INVALID")
    time.sleep(0.5)
    assert sim.state()["tls_reloads"] == 0 and sim.state()["sighups"] == 0 and _served_sha(sim) == before
    assert d.read_state()["certificate"]["state"] == "invalid"


def test_vault_ignoring_the_reload_is_reported_with_both_fingerprints(duty, pki):
    lineage, sim, start = duty
    d = start()
    sim.control("POST", "/sighup", {"ignore": True})
    old = _served_sha(sim)
    new_cert = _renew(lineage, pki)
    alert = d.wait_entry("certificate_not_served", timeout=15)
    assert alert[0].level == "critical" and "still serves the old certificate" in alert[0].text
    new = tc.fingerprint(new_cert).replace(":", "").lower()
    text = alert[0].text.replace(":", "").lower()
    assert old.replace(":", "").lower() in text and new in text, alert[0].text
    d.wait_status("Vault serves the OLD certificate")


@pytest.mark.parametrize("command,detail", [
    (["/bin/sh", "-c", "echo reload broke >&2; exit 3"], "exit status 3"),
    (["/bin/sleep", "60"], "killed"),
])
def test_a_failing_or_hanging_reload_command_is_reported(command, detail, duty, pki):
    lineage, sim, start = duty
    d = start(reload_command=command, reload_timeout="1s")
    _renew(lineage, pki)
    failed = d.wait_entry("certificate_reload_failed", timeout=15)
    assert failed[0].level == "critical" and detail in failed[0].text, failed[0].text
    if "exit" in detail:
        assert d.entries(contains="reload broke"), "the command's output is in the journal"
    st = d.wait_state(lambda st: st["certificate"]["state"] == "reload-failed")
    assert sim.state()["tls_reloads"] == 0


def test_rapid_double_renewal_reloads_once(duty, pki):
    lineage, sim, start = duty
    d = start()
    _renew(lineage, pki)
    second = _renew(lineage, pki)  # within the quiet period
    d.wait_entry("certificate_reloaded", timeout=10)
    time.sleep(1.5)
    assert len(d.entries("certificate_reloaded")) == 1 and sim.state()["tls_reloads"] == 1
    assert tc.fingerprint(second).replace(":", "").lower() == _served_sha(sim).replace(":", "").lower()


def test_expiring_certificate_is_reported_once(duty, pki):
    lineage, sim, start = duty
    d = start()
    _renew(lineage, pki, not_after_days=10)  # inside warn_days (21), outside critical_days (7)
    d.wait_entry("certificate_reloaded", timeout=10)
    warnings = d.wait_entry("certificate_expiring", timeout=5, count=2)  # the file and the served one
    assert {e.level for e in warnings} == {"warning"}
    assert any("expires in 9 days" in e.text or "expires in 10 days" in e.text for e in warnings), [e.text for e in warnings]
    d.wait_status("certificate expires in")
    time.sleep(1)
    assert len(d.entries("certificate_expiring")) == 2  # not on every look
