# SPDX-License-Identifier: Apache-2.0
"""Ways to reach Vault and to get the keys: unix socket, plain http on loopback, mTLS, systemd
credentials; and the `<N>` priority prefix when stderr is a (non-native) journal stream."""

from __future__ import annotations

import os
import re
import shutil

import pytest

import vk_harness as h


@pytest.fixture
def socket_dir():
    path = h.short_tmpdir("vks-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_unix_socket(sims, daemons, config, keyfile, socket_dir):
    sock = os.path.join(socket_dir, "vault.sock")
    s = sims("sim", extra=["--unix-socket", sock])
    d = daemons(config({"address": f"unix://{sock}"}, key_file=keyfile(s)))
    s.wait_unsealed(timeout=5)
    d.wait_status("vault active")
    assert s.state()["unseal_key_submissions"] == 3
    assert [r for r in s.requests() if r["path"] == "/v1/sys/unseal"]


def test_plain_http_on_loopback(sims, daemons, config, keyfile):
    s = sims("sim", tls=False)
    assert s.address.startswith("http://127.0.0.1:")
    d = daemons(config(s, key_file=keyfile(s)))
    s.wait_unsealed(timeout=5)
    d.wait_status("vault active")


def test_mtls_client_certificate(sims, daemons, config, keyfile, pki):
    s = sims("sim", extra=["--client-ca", pki["ca"]])
    keys = keyfile(s)
    # Without a client certificate the handshake fails: unreachable, no key sent.
    d = daemons(config(s, key_file=keys, name="nocert.toml"), name="nocert")
    d.wait_ready()
    report = d.wait_state(lambda st: st["nodes"][0]["state"] == "unreachable")
    # TLS 1.3 delivers the "certificate required" alert on the first read, after the handshake,
    # so the reason varies (alert text, or the server already gone); the state must not.
    assert report["nodes"][0]["problem"], report
    assert s.state()["unseal_requests"] == 0
    d.close()
    d2 = daemons(config(s, key_file=keys, vault_extra={"client_cert_file": pki["client"],
                                                        "client_key_file": pki["client-key"]}), name="cert")
    s.wait_unsealed(timeout=5)
    d2.wait_status("vault active")


def test_keys_from_a_systemd_credential(sim, daemons, config, tmp_path):
    creds = tmp_path / "credentials"
    creds.mkdir()
    h.write_key_json(creds / "unseal-keys", sim.init_json(), drop_root_token=True)
    os.chmod(creds / "unseal-keys", 0o400)
    cfg = config(sim, unseal={"credential": "unseal-keys"})

    r = h.run_cli(["config", "check", "--config", str(cfg)])
    assert r.returncode == 0, r
    assert "read from $CREDENTIALS_DIRECTORY when the unit runs" in r.stdout

    missing = daemons(cfg, name="nocreds")
    assert missing.wait_exit(timeout=5) == h.EX_NOPERM
    assert "CREDENTIALS_DIRECTORY" in missing.stderr()

    d = daemons(cfg, env={"CREDENTIALS_DIRECTORY": str(creds)})
    sim.wait_unsealed(timeout=5)
    d.wait_entry("unsealed")
    assert not d.entries(contains="root token")


def test_priority_prefixes_on_a_journal_stream(sim, daemons, config, keyfile):
    d = daemons(config(sim, key_file=keyfile(sim), health={"interval": "500ms", "fast_interval": "100ms"}),
                journal_stream=True)
    sim.wait_unsealed()
    d.wait_ready()
    d.wait_status("vault active")
    sim.seal()

    def deliberate():
        return [l for l in d.stderr().splitlines() if h.MID["deliberate_seal"] in l]
    h.wait_until(deliberate, 3, what="deliberate seal entry")
    lines = d.stderr().splitlines()
    assert lines and all(re.match(r"^<[0-7]>", l) for l in lines), lines
    assert not any(h.LINE_RE.match(l[3:]) for l in lines)  # no timestamps: journald adds them

    def prio(mid: str) -> str:
        return next(l[:3] for l in lines if h.MID[mid] in l)
    assert prio("sealed") == "<4>"
    assert prio("unsealed") == "<5>"
    assert prio("started") == "<6>"
    assert deliberate()[0][:3] == "<2>"
