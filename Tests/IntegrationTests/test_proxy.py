# SPDX-License-Identifier: Apache-2.0
"""No proxy for Vault, and for S3 only the one `[snapshot.s3] proxy` names (issue #10, item 2).

The attack: proxy variables in vaultkeeper's environment (a `DefaultEnvironment=`, a drop-in,
`/etc/environment` through sudo's PAM) pointing at a listener that stands in for a proxy. libcurl
obeys `https_proxy`, `http_proxy`, `all_proxy` and their upper-case forms unless told otherwise:
before the fix every Vault request went to the listener and Vault stayed sealed. Now Vault is
reached directly, and the listener sees no connection at all. S3 goes through a real forward
proxy only when the configuration names it (and then whatever `no_proxy` says)."""

from __future__ import annotations

import hashlib

import pytest

import test_cert_check as tc
from test_cert_check import served, setup  # noqa: F401  (fixtures)
import test_snapshot as tsn
import test_snapshot_s3 as s3t
from test_snapshot_s3 import each_peer, moto, rclone  # noqa: F401  (fixtures)
import trust_support as ts
import vk_harness as h


@pytest.fixture
def stand_in():
    listener = ts.ListenerStandIn()
    yield listener
    listener.close()


@pytest.fixture
def forward_proxy():
    proxy = ts.ForwardProxy()
    yield proxy
    proxy.close()


@pytest.mark.parametrize("variable,tls", [
    ("https_proxy", True), ("HTTPS_PROXY", True), ("all_proxy", True), ("ALL_PROXY", True),
    ("http_proxy", False), ("all_proxy", False),
])
def test_vault_requests_ignore_proxy_variables(variable, tls, sims, daemons, config, keyfile, stand_in):
    s = sims("sim", tls=tls)
    cfg = config(s, key_file=keyfile(s))
    env = {variable: stand_in.url, "no_proxy": "", "NO_PROXY": ""}
    d = daemons(cfg, env=env)
    s.wait_unsealed(timeout=10)
    d.wait_status("vault active", timeout=10)
    # The override, a one-shot process with the same environment, goes direct too.
    s.seal()
    d.wait_entry("deliberate_seal", timeout=10)
    r = h.run_cli(["unseal", "--config", str(cfg)], env=env, timeout=30)
    assert r.returncode == 0, r
    s.wait_unsealed(timeout=10)
    assert stand_in.connections == 0, stand_in.first_bytes


def test_certificate_probe_ignores_proxy_variables(setup, stand_in):
    lineage, sim, cfg, cert = setup
    r = tc.cert_check(cfg, env=stand_in.environment(), timeout=30)
    assert r.returncode == tc.EX_OK and "verification: ok" in r.stdout, r
    assert r.stdout.count(f"sha256: {tc.fingerprint(cert)}") == 2, r
    assert sim.state()["connections_total"] >= 1
    assert stand_in.connections == 0, stand_in.first_bytes


def test_s3_goes_through_the_configured_proxy_and_vault_does_not(sims, config, tmp_path, each_peer, forward_proxy, stand_in):
    """`proxy` set: every S3 request goes through it, even with the S3 host in no_proxy. The
    proxy variables (pointing elsewhere) are not used for anything, and Vault is not proxied."""
    m = each_peer
    cfg, snaps = s3t._setup(sims, config, tmp_path, m, proxy=forward_proxy.url)
    env = {**stand_in.environment(), "no_proxy": "127.0.0.1,localhost", "NO_PROXY": "127.0.0.1,localhost"}
    r = tsn._now(cfg, env=env)
    path, key, size, _, _ = s3t._assert_uploaded(r, m, snaps)
    assert s3t._object_bytes(m, key) == path.read_bytes()
    seen = forward_proxy.seen()
    assert ts.hosts(seen) == {f"127.0.0.1:{m.port}"}, seen  # S3 only: the Vault snapshot came direct
    assert ("PUT", f"127.0.0.1:{m.port}") in seen and ("HEAD", f"127.0.0.1:{m.port}") in seen, seen
    assert stand_in.connections == 0, stand_in.first_bytes


def test_s3_ignores_proxy_variables_without_the_proxy_key(sims, config, tmp_path, each_peer, forward_proxy):
    """The variables name a working proxy this time: nothing may go through it all the same."""
    m = each_peer
    cfg, snaps = s3t._setup(sims, config, tmp_path, m)
    env = {name: forward_proxy.url for name in ts.PROXY_VARIABLES}
    env.update(no_proxy="", NO_PROXY="")
    r = tsn._now(cfg, env=env)
    path, key, _, _, _ = s3t._assert_uploaded(r, m, snaps)
    assert s3t._object_bytes(m, key) == path.read_bytes()
    assert forward_proxy.seen() == []


def test_https_endpoint_through_the_proxy_keeps_tls_end_to_end(sims, config, tmp_path, pki, forward_proxy):
    """An https:// endpoint is reached with CONNECT: the tunnel carries TLS verified against
    [snapshot.s3] ca_file, and the proxy sees only the host and port."""
    m = s3t.Moto(tmp_path, pki, tls=True)
    try:
        cfg, snaps = s3t._setup(sims, config, tmp_path, m, proxy=forward_proxy.url)
        r = tsn._now(cfg)
        path, key, size, _, _ = s3t._assert_uploaded(r, m, snaps)
        assert m.keys() == {key: size}
        assert hashlib.md5(s3t._object_bytes(m, key)).hexdigest() == hashlib.md5(path.read_bytes()).hexdigest()
        seen = forward_proxy.seen()
        assert seen and set(seen) == {("CONNECT", f"127.0.0.1:{m.port}")}, seen
    finally:
        m.stop()


def test_config_check_shows_the_proxy(sims, config, tmp_path, moto, forward_proxy):
    cfg, _ = s3t._setup(sims, config, tmp_path, moto, proxy=forward_proxy.url)
    r = h.run_cli(["config", "check", "--config", str(cfg)])
    assert r.returncode == 0 and f'proxy = "{forward_proxy.url}"' in r.stdout, r


@pytest.mark.parametrize("proxy,needle", [
    ("socks5://127.0.0.1:1080", "unsupported scheme"),
    ("http://127.0.0.1", "needs a port"),
    ("http://user:Pr0xyPassw0rd@127.0.0.1:3128", "proxy authentication is not supported"),
])
def test_a_bad_proxy_is_a_located_config_error(proxy, needle, sims, config, tmp_path, moto):
    cfg, snaps = s3t._setup(sims, config, tmp_path, moto, proxy=proxy)
    r = h.run_cli(["config", "check", "--config", str(cfg)])
    assert r.returncode == h.EX_CONFIG, r
    line = next(i for i, text in enumerate(cfg.read_text().splitlines(), 1) if text.startswith("proxy ="))
    assert f"{cfg}:{line}: snapshot.s3.proxy: " in r.output and needle in r.output, r
    assert "Pr0xyPassw0rd" not in r.output, r  # a password in the URL is never repeated
