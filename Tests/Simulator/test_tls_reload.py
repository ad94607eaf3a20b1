# SPDX-License-Identifier: Apache-2.0
"""Certificate reload in the simulator (issue #5): SIGHUP applies a renewed certificate to new
connections only, keeps the old pair when the new files are broken, and can be told to ignore
SIGHUP so that vaultkeeper's 'still serving the old certificate' alert can be tested."""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import signal
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

import testca


@pytest.fixture
def tls_files(tmp_path, pki):
    """A certificate/key pair at paths of their own (copies of the test PKI's server pair), and a
    function that 'renews' them the way certbot does: new files, then a rename over the old."""
    live = tmp_path / "live"
    live.mkdir()
    cert, key = str(live / "cert.pem"), str(live / "key.pem")
    shutil.copy(pki["server"], cert)
    shutil.copy(pki["server-key"], key)
    with open(pki["ca"], "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    with open(pki["ca-key"], "rb") as f:
        ca_key = serialization.load_pem_private_key(f.read(), password=None)

    def put(path: str, data: bytes) -> None:
        tmp = path + ".new"
        with open(tmp, "wb") as f:
            f.write(data)
        os.rename(tmp, path)

    def renew(cert_pem: bytes | None = None, key_pem: bytes | None = None) -> str:
        """Writes a fresh pair (or the given bytes) and returns the new leaf's SHA-256."""
        if cert_pem is None:
            leaf, leaf_key = testca.make_leaf(ca, ca_key, "vault.test", testca.SERVER_SANS, ExtendedKeyUsageOID.SERVER_AUTH)
            cert_pem = leaf.public_bytes(serialization.Encoding.PEM)
            key_pem = leaf_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption())
        if key_pem is not None:
            put(key, key_pem)
        put(cert, cert_pem)
        return sha256_of_pem(cert_pem)

    return {"cert": cert, "key": key, "renew": renew, "args": ["--tls-cert", cert, "--tls-key", key]}


def sha256_of_pem(pem: bytes) -> str:
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem.decode())).hexdigest()


def connect(sim, pki) -> http.client.HTTPSConnection:
    ctx = ssl.create_default_context(cafile=pki["ca"])
    conn = http.client.HTTPSConnection("127.0.0.1", sim.port, context=ctx, timeout=5)
    conn.connect()
    return conn


def served(conn: http.client.HTTPSConnection) -> str:
    """SHA-256 of the certificate this connection was handshaken with."""
    return hashlib.sha256(conn.sock.getpeercert(binary_form=True)).hexdigest()


def health(conn: http.client.HTTPSConnection) -> int:
    conn.request("GET", "/v1/sys/health")
    r = conn.getresponse()
    r.read()
    return r.status


def new_connection_serves(sim, pki) -> str:
    conn = connect(sim, pki)
    try:
        return served(conn)
    finally:
        conn.close()


def test_sighup_serves_the_new_certificate_to_new_connections_only(sim_factory, pki, tls_files):
    with open(tls_files["cert"], "rb") as f:
        old = sha256_of_pem(f.read())
    sim = sim_factory(tls_files["args"], init=(1, 1))
    st = sim.state()
    assert st["tls_cert_sha256"] == old and st["tls_reloads"] == 0

    kept = connect(sim, pki)
    assert health(kept) == 503 and served(kept) == old
    connections_before = sim.state()["connections_total"]

    new = tls_files["renew"]()
    assert new != old
    sim.proc.send_signal(signal.SIGHUP)
    st = sim.wait_state(lambda s: s["tls_reloads"] == 1)
    assert st["tls_cert_sha256"] == new and st["tls_reload_failures"] == 0 and st["sighups"] == 1

    assert new_connection_serves(sim, pki) == new
    # The kept-alive connection goes on, on its own handshake: a second request over it opens
    # no connection (one new connection above, none for this request).
    assert health(kept) == 503 and served(kept) == old
    assert sim.state()["connections_total"] == connections_before + 1
    kept.close()
    _, log = sim.stop()
    assert f"TLS certificate reloaded (new handshakes only), sha256 {new}" in log


@pytest.mark.parametrize("broken", ["mismatched key", "garbage certificate", "missing key"])
def test_a_broken_new_pair_keeps_the_old_one(sim_factory, pki, tls_files, broken):
    with open(tls_files["cert"], "rb") as f:
        old = sha256_of_pem(f.read())
    sim = sim_factory(tls_files["args"], init=(1, 1))
    if broken == "mismatched key":
        with open(pki["other-name"], "rb") as f:
            tls_files["renew"](cert_pem=f.read())  # the server key stays: it does not match
        reason = "KEY_VALUES_MISMATCH"
    elif broken == "garbage certificate":
        tls_files["renew"](cert_pem=b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n")
        reason = "Error(s) were encountered during reload"
    else:
        os.unlink(tls_files["key"])
        reason = "No such file or directory"

    sim.proc.send_signal(signal.SIGHUP)
    st = sim.wait_state(lambda s: s["tls_reload_failures"] == 1)
    assert st["tls_reloads"] == 0 and st["tls_cert_sha256"] == old
    assert st["tls_reload_last_error"]
    assert new_connection_serves(sim, pki) == old

    # A good pair afterwards is taken, and clears the error.
    new = tls_files["renew"]()
    assert sim.control("POST", "/reload-tls") == {"ok": True}
    st = sim.state()
    assert st["tls_reloads"] == 1 and st["tls_cert_sha256"] == new and st["tls_reload_last_error"] is None
    assert new_connection_serves(sim, pki) == new
    _, log = sim.stop()
    assert reason in log and "keeping the old certificate" in log


def test_ignore_mode_keeps_serving_the_old_certificate(sim_factory, pki, tls_files):
    with open(tls_files["cert"], "rb") as f:
        old = sha256_of_pem(f.read())
    sim = sim_factory(tls_files["args"] + ["--ignore-sighup"], init=(1, 1))
    assert sim.state()["ignore_sighup"] is True

    new = tls_files["renew"]()
    sim.proc.send_signal(signal.SIGHUP)
    st = sim.wait_state(lambda s: s["sighups_ignored"] == 1)
    assert st["tls_reloads"] == 0 and st["tls_reload_failures"] == 0 and st["tls_cert_sha256"] == old
    assert new_connection_serves(sim, pki) == old

    assert sim.control("POST", "/sighup", {"ignore": False}) == {"ignore_sighup": False}
    sim.proc.send_signal(signal.SIGHUP)
    st = sim.wait_state(lambda s: s["tls_reloads"] == 1)
    assert st["sighups"] == 2 and st["sighups_ignored"] == 1 and st["tls_cert_sha256"] == new
    assert new_connection_serves(sim, pki) == new

    # And back on at run time.
    assert sim.control("POST", "/sighup", {"ignore": True}) == {"ignore_sighup": True}
    tls_files["renew"]()
    sim.proc.send_signal(signal.SIGHUP)
    st = sim.wait_state(lambda s: s["sighups_ignored"] == 2)
    assert st["tls_reloads"] == 1 and new_connection_serves(sim, pki) == new
    assert sim.control("POST", "/sighup") == {"ignore_sighup": True}
    _, log = sim.stop()
    assert "SIGHUP ignored" in log


def test_sighup_toggle_rejects_non_booleans(sim_factory, tls_files):
    sim = sim_factory(tls_files["args"])
    with pytest.raises(Exception, match="400"):
        sim.control("POST", "/sighup", {"ignore": "yes"})
    assert sim.state()["ignore_sighup"] is False
