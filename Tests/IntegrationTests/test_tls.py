# SPDX-License-Identifier: Apache-2.0
"""Impostor servers: a certificate from another CA, a name mismatch, an expired certificate.
vaultkeeper must call the node unreachable with a TLS reason and never send it a key."""

from __future__ import annotations


import pytest

import vk_harness as h


@pytest.mark.parametrize("cert", ["impostor", "other-name", "expired"])
def test_impostor_server_gets_no_key(sims, daemons, config, keyfile, cert):
    real = sims("real")  # only for its key file: the impostor copies nothing but the address
    impostor = sims("impostor", cert=cert)
    d = daemons(config(impostor, key_file=keyfile(real)))
    d.wait_ready()
    assert "unreachable" in d.wait_status("vault unreachable")
    report = d.wait_state(lambda s: s["nodes"][0]["state"] == "unreachable")
    problem = report["nodes"][0]["problem"]
    assert problem.startswith("tls"), problem
    entry = d.wait_entry("unreachable")[0]
    assert "tls" in entry.text
    impostor.wait_connection_attempts(3)  # three more tries, each refused by our TLS check
    st = impostor.state()
    assert st["unseal_requests"] == 0 and st["requests_total"] == 0, st
    # It did try (with TLS 1.3 the server may finish its side before the client rejects it).
    assert st["tls_handshake_failures"] + st["connections_total"] >= 1, st
    assert st["sealed"]

    r = h.run_cli(["unseal", "--config", str(d.config)])
    assert r.returncode == h.EX_UNAVAILABLE, r
    assert "unreachable" in r.stdout
    assert impostor.state()["unseal_requests"] == 0


def test_server_name_selects_the_name_to_verify(sims, daemons, config, keyfile):
    """other-name.pem is signed by the right CA for other.test only: trusted with server_name."""
    s = sims("sim", cert="other-name")
    d = daemons(config(s, key_file=keyfile(s), vault_extra={"server_name": "other.test"}))
    s.wait_unsealed(timeout=5)
    d.wait_status("vault active")


def test_server_name_mismatch_is_refused(sims, daemons, config, keyfile):
    s = sims("sim")  # server.pem: localhost, vault.test, 127.0.0.1
    d = daemons(config(s, key_file=keyfile(s), vault_extra={"server_name": "other.test"}))
    d.wait_ready()
    report = d.wait_state(lambda st: st["nodes"][0]["state"] == "unreachable")
    assert report["nodes"][0]["problem"].startswith("tls")
    s.wait_connection_attempts(3)  # three more tries, each refused by our TLS check
    assert s.state()["unseal_requests"] == 0


def test_system_trust_store_does_not_trust_the_test_ca(sims, daemons, pki, tmp_path, keyfile):
    """Without ca_file the system CAs apply, and they do not know the test CA."""
    s = sims("sim")
    cfg = tmp_path / "vk.toml"
    cfg.write_text(h.render_config({"address": s.address}, health=h.FAST_HEALTH,
                                   unseal={"key_file": str(keyfile(s))}))
    d = daemons(cfg)
    d.wait_ready()
    report = d.wait_state(lambda st: st["nodes"][0]["state"] == "unreachable")
    assert report["nodes"][0]["problem"].startswith("tls")
    assert s.state()["unseal_requests"] == 0
