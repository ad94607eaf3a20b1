# SPDX-License-Identifier: Apache-2.0
"""`ca_file` is the only trust anchor (issue #10, item 1). The attack: a second, real CA placed in
the system store (as `update-ca-certificates` would), and a server whose certificate that CA
signed for the same names. vaultkeeper runs in a private mount namespace where that store is
/etc/ssl/certs (the host's own store is never changed). With `ca_file` set the server must get
nothing: no share, no request, a TLS failure reported. Without `ca_file` the system store
decides, as documented (the control: it proves the namespace's store is the one in use).

Debian's libcurl is built with a default CA *path* (/etc/ssl/certs) that stays active when only
CURLOPT_CAINFO is set: before the fix every case here but the control sent the shares."""

from __future__ import annotations

import types
from pathlib import Path


import test_cert_check as tc
import test_certificate_duty as tcd
import test_snapshot as tsn
import test_snapshot_s3 as s3t
from test_snapshot_s3 import moto  # noqa: F401  (fixture: its keys, for the impostor endpoint)
import trust_support as ts
from trust_support import impostor_store  # noqa: F401  (fixture)
import vk_harness as h


def _no_share_reaches(impostor: h.Sim) -> None:
    """The claim is that nothing happens: watched over the daemon's next three connection
    attempts (each a chance to send something), not over a stretch of time."""
    impostor.wait_connection_attempts(
        3, invariant=lambda st: st["unseal_requests"] == 0 and st["requests_total"] == 0 and st["sealed"])


def test_impostor_ca_in_the_system_store_gets_no_share(sims, daemons, config, keyfile, impostor_store):
    real = sims("real")
    # The impostor holds a copy of the real cluster's seal state: a share sent to it would unseal it.
    impostor = sims("impostor", cert="impostor", same_cluster_as=real)
    cfg = config(impostor, key_file=keyfile(real))  # ca_file = the real test CA
    d = daemons(cfg, preexec=impostor_store.wrap)
    d.wait_ready(timeout=10)
    report = d.wait_state(lambda s: s["nodes"][0]["state"] == "unreachable", timeout=10)
    assert report["nodes"][0]["problem"].startswith("tls"), report
    assert "tls" in d.wait_entry("unreachable", timeout=10)[0].text
    _no_share_reaches(impostor)
    # It did try: a handshake, refused by vaultkeeper.
    st = impostor.state()
    assert st["tls_handshake_failures"] + st["connections_total"] >= 1, st

    # The override in the same namespace refuses too.
    r = h.run_cli(["unseal", "--config", str(cfg)], preexec=impostor_store.wrap, timeout=30)
    assert r.returncode == h.EX_UNAVAILABLE and "unreachable" in r.stdout, r
    st = impostor.state()
    assert st["unseal_requests"] == 0 and st["requests_total"] == 0 and st["sealed"], st


def test_a_peer_is_held_to_the_ca_file_too(sims, daemons, config, keyfile, impostor_store):
    real = sims("real")
    impostor = sims("impostor", cert="impostor", same_cluster_as=real)
    d = daemons(config(real, key_file=keyfile(real), peers=[impostor]), preexec=impostor_store.wrap)
    real.wait_unsealed(timeout=10)
    report = d.wait_state(lambda s: s["nodes"][1]["state"] == "unreachable", timeout=10)
    assert report["nodes"][1]["problem"].startswith("tls"), report
    _no_share_reaches(impostor)


def test_cert_check_probe_does_not_verify_the_impostor(tmp_path, sims, pki, impostor_store):
    """The served-certificate probe of `cert check` uses [vault] ca_file alone: the impostor's
    certificate fails verification (and is still shown, from the unverified handshake)."""
    lineage = tc.Lineage(tmp_path / "letsencrypt", Path(pki["ca"]).read_bytes())
    cert, key = h.testca.issue_leaf(pki, "vault.test", h.testca.SERVER_SANS)
    lineage.renew(cert, key)
    impostor = sims("impostor", cert="impostor")
    cfg = tc.write_config(tmp_path / "vk.toml", impostor, pki["ca"], lineage)
    r = tc.cert_check(cfg, preexec=impostor_store.wrap, timeout=30)
    assert r.returncode == tc.EX_CRITICAL, r
    assert r.stdout.startswith("CERT CRITICAL: served: the certificate Vault serves does not verify: "), r
    assert "verification: FAILED" in r.stdout and "verification: ok" not in r.stdout, r
    assert f"sha256: {tc.fingerprint(Path(pki['impostor']).read_bytes())}" in r.stdout, r
    assert impostor.state()["requests_total"] == 0


def test_certificate_duty_probe_does_not_verify_the_impostor(tmp_path, sims, daemons, pki, impostor_store):
    lineage = tc.Lineage(tmp_path / "letsencrypt", Path(pki["ca"]).read_bytes())
    cert, key = h.testca.issue_leaf(pki, "vault.test", h.testca.SERVER_SANS)
    lineage.renew(cert, key)
    impostor = sims("impostor", cert="impostor")
    cfg = tcd._config(tmp_path / "duty.toml", impostor, pki["ca"], lineage, reload_command=["/bin/true"])
    d = daemons(cfg, preexec=impostor_store.wrap)
    d.wait_ready(timeout=10)
    st = d.wait_state(lambda s: (s.get("certificate") or {}).get("served_error"), timeout=15,
                      what="the served certificate's verification failure")
    assert "certificate" in st["certificate"]["served_error"].lower(), st["certificate"]
    assert impostor.state()["requests_total"] == 0


def test_s3_endpoint_is_held_to_its_ca_file(sims, config, tmp_path, pki, moto, impostor_store):
    """`[snapshot.s3] ca_file` likewise: an endpoint with the impostor's certificate gets no
    request, so neither a signed request nor a byte of the snapshot."""
    impostor = ts.CountingTLSServer(pki["impostor"], pki["impostor-key"])
    try:
        target = types.SimpleNamespace(endpoint=impostor.endpoint, tls=True, verify=pki["ca"], prefix=moto.prefix,
                                       access_key_id=moto.access_key_id, secret_key=moto.secret_key)
        cfg, snaps = s3t._setup(sims, config, tmp_path, target)
        r = tsn._now(cfg, preexec=impostor_store.wrap)
        assert impostor.seen() == [], r
        assert r.returncode == 1 and "upload failed: " in r.stdout and "is kept" in r.stdout, r
        assert "certificate" in r.stdout.lower() or "tls" in r.stdout.lower(), r
        s3t._saved(r, snaps)
    finally:
        impostor.close()


def test_without_ca_file_the_system_store_decides(sims, daemons, keyfile, tmp_path, impostor_store):
    """The control, and the documented behaviour: no ca_file, so the system store (here with the
    impostor CA in it) is trusted."""
    impostor = sims("impostor", cert="impostor")
    cfg = tmp_path / "vk.toml"
    cfg.write_text(h.render_config({"address": impostor.address}, health=h.FAST_HEALTH,
                                   unseal={"key_file": str(keyfile(impostor))}))
    d = daemons(cfg, preexec=impostor_store.wrap)
    impostor.wait_unsealed(timeout=10)
    d.wait_status("vault active", timeout=10)
