#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Test PKI for the Vault simulator and the vaultkeeper TLS tests.

    python3 testca.py OUTDIR

creates (keys mode 0600, certificates 0644), all ECDSA P-256 / SHA-256:

  ca.pem, ca-key.pem                  test root CA
  server.pem, server-key.pem          serverAuth, SANs localhost, vault.test, 127.0.0.1, ::1
  client.pem, client-key.pem          clientAuth (mTLS)
  impostor-ca.pem (+ -key)            a different root CA
  impostor.pem, impostor-key.pem      serverAuth, same SANs as server.pem, signed by impostor CA
  other-name.pem, other-name-key.pem  serverAuth, signed by the real CA, SAN only other.test
  expired.pem, expired-key.pem        like server.pem but expired (not_after in the past)

Importable: make_pki(outdir) -> dict of name -> absolute path.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVER_SANS = ["localhost", "vault.test", "127.0.0.1", "::1"]


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "vaultkeeper tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _san(names: list[str]) -> x509.SubjectAlternativeName:
    out: list[x509.GeneralName] = []
    for n in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            out.append(x509.DNSName(n))
    return x509.SubjectAlternativeName(out)


def _write(path: str, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(path, mode)


def _write_key(path: str, key: ec.EllipticCurvePrivateKey) -> None:
    _write(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()), 0o600)


def _write_cert(path: str, cert: x509.Certificate) -> None:
    _write(path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def make_ca(cn: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    now = datetime.datetime.now(datetime.timezone.utc)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (x509.CertificateBuilder()
            .subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def make_leaf(ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, cn: str, sans: list[str],
              usage: x509.ObjectIdentifier, expired: bool = False
              ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    now = datetime.datetime.now(datetime.timezone.utc)
    if expired:
        nb, na = now - datetime.timedelta(days=30), now - datetime.timedelta(days=1)
    else:
        nb, na = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=825)
    b = (x509.CertificateBuilder()
         .subject_name(_name(cn)).issuer_name(ca.subject)
         .public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(nb).not_valid_after(na)
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                      key_encipherment=False, data_encipherment=False,
                                      key_agreement=False, key_cert_sign=False, crl_sign=False,
                                      encipher_only=False, decipher_only=False), critical=True)
         .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                        critical=False))
    if sans:
        b = b.add_extension(_san(sans), critical=False)
    return b.sign(ca_key, hashes.SHA256()), key


def make_pki(outdir: str) -> dict[str, str]:
    """Create the whole test PKI in outdir; returns {name: absolute path}."""
    outdir = os.path.abspath(outdir)
    os.makedirs(outdir, exist_ok=True)
    paths: dict[str, str] = {}

    def save(stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        paths[stem] = os.path.join(outdir, f"{stem}.pem")
        paths[f"{stem}-key"] = os.path.join(outdir, f"{stem}-key.pem")
        _write_cert(paths[stem], cert)
        _write_key(paths[f"{stem}-key"], key)

    ca, ca_key = make_ca("vaultkeeper test CA")
    save("ca", ca, ca_key)
    save("server", *make_leaf(ca, ca_key, "vault.test", SERVER_SANS, ExtendedKeyUsageOID.SERVER_AUTH))
    save("client", *make_leaf(ca, ca_key, "vaultkeeper-test-client", [], ExtendedKeyUsageOID.CLIENT_AUTH))
    save("other-name", *make_leaf(ca, ca_key, "other.test", ["other.test"], ExtendedKeyUsageOID.SERVER_AUTH))
    save("expired", *make_leaf(ca, ca_key, "vault.test", SERVER_SANS, ExtendedKeyUsageOID.SERVER_AUTH,
                               expired=True))
    imp_ca, imp_key = make_ca("impostor CA")
    save("impostor-ca", imp_ca, imp_key)
    save("impostor", *make_leaf(imp_ca, imp_key, "vault.test", SERVER_SANS, ExtendedKeyUsageOID.SERVER_AUTH))
    return paths


def issue_leaf(pki: dict[str, str], cn: str, sans: list[str], *, not_before_days: float = -1 / 24,
               not_after_days: float = 825) -> tuple[bytes, bytes]:
    """A serverAuth leaf signed by make_pki's test CA (read back from pki["ca"], pki["ca-key"]),
    valid from now + not_before_days to now + not_after_days. Returns (certificate PEM, PKCS#8
    key PEM); nothing is written. For the certificate tests' renewals and bad validity windows."""
    with open(pki["ca"], "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    with open(pki["ca-key"], "rb") as f:
        ca_key = serialization.load_pem_private_key(f.read(), password=None)
    key = _key()
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(_name(cn)).issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + datetime.timedelta(days=not_before_days))
            .not_valid_after(now + datetime.timedelta(days=not_after_days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .add_extension(_san(sans), critical=False)
            .sign(ca_key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    for name, path in sorted(make_pki(argv[1]).items()):
        print(f"{name}\t{path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
