# SPDX-License-Identifier: Apache-2.0
"""Trust against real OpenBao (issue #10, items 1 and 2), with the attacks run for real:

- a real `bao server` whose TLS certificate comes from a second CA that sits in the system store
  (a copy of the host's store plus that CA, bind-mounted over /etc/ssl/certs in a private mount
  namespace for vaultkeeper alone) but not in `ca_file`: it must get no share and stay sealed.
  Without `ca_file` the system store decides (the control);
- proxy variables in vaultkeeper's environment naming a listener that stands in for a proxy:
  OpenBao is unsealed directly and the listener sees no connection."""

from __future__ import annotations

import pytest

import bao_harness as bh
import trust_support as ts
from trust_support import impostor_store  # noqa: F401  (fixture)
import vk_harness as h


@pytest.fixture
def impostor_bao(baos, pki) -> tuple[bh.BaoNode, dict]:
    """A real, initialised, sealed OpenBao node serving a certificate from the impostor CA (the
    same names as the real one). The test's own client trusts the impostor CA to set it up."""
    node = baos("impostor", cert="impostor", run=False)
    node.ca_file = pki["impostor-ca"]
    node.start()
    return node, node.operator_init(5, 3)


def _still_sealed_without_progress(node: bh.BaoNode) -> bool:
    status = node.seal_status()
    return status["sealed"] is True and status["progress"] == 0


def test_ca_file_pins_the_trust_against_an_impostor_ca_in_the_system_store(impostor_bao, daemons, config, keyfile,
                                                                          impostor_store):
    node, init = impostor_bao
    cfg = config(node, key_file=keyfile(init))  # ca_file = the real test CA, which did not sign it
    d = daemons(cfg, preexec=impostor_store.wrap)
    d.wait_ready(timeout=30)
    report = d.wait_state(lambda s: s["nodes"][0]["state"] == "unreachable", timeout=30)
    assert report["nodes"][0]["problem"].startswith("tls"), report
    assert "tls" in d.wait_entry("unreachable", timeout=15)[0].text
    # The claim is that no share arrives: OpenBao's own unseal progress is watched for a while.
    bh.wait_quiet(3.0, lambda: not _still_sealed_without_progress(node))

    r = h.run_cli(["unseal", "--config", str(cfg)], preexec=impostor_store.wrap, timeout=60)
    assert r.returncode == h.EX_UNAVAILABLE and "unreachable" in r.stdout, r
    assert _still_sealed_without_progress(node), node.seal_status()


def test_without_ca_file_the_system_store_is_trusted(impostor_bao, daemons, keyfile, tmp_path, impostor_store):
    """The control and the documented behaviour: no ca_file, so the system store decides, and in
    this namespace it holds the impostor CA."""
    node, init = impostor_bao
    cfg = tmp_path / "vk.toml"
    cfg.write_text(h.render_config({"address": node.address}, health=h.FAST_HEALTH,
                                   unseal={"key_file": str(keyfile(init))}))
    d = daemons(cfg, preexec=impostor_store.wrap)
    node.wait_unsealed(timeout=30)
    d.wait_entry("unsealed", contains="sealed at start-up", timeout=15)


def test_proxy_variables_never_carry_vault_traffic(bao, daemons, config, keyfile):
    node, init = bao
    stand_in = ts.ListenerStandIn()
    try:
        env = {**stand_in.environment(), "no_proxy": "", "NO_PROXY": ""}
        cfg = config(node, key_file=keyfile(init))
        d = daemons(cfg, env=env)
        node.wait_unsealed(timeout=30)
        d.wait_entry("unsealed", contains="sealed at start-up", timeout=15)
        node.wait_active()
        d.wait_status("vault active", timeout=30)
        # The operator's brake and the override, from a shell with the same environment.
        node.seal()
        d.wait_entry("deliberate_seal", timeout=15)
        r = h.run_cli(["unseal", "--config", str(cfg)], env=env, timeout=60)
        assert r.returncode == 0, r
        node.wait_unsealed(timeout=30)
        r = h.run_cli(["check", "--config", str(cfg)], env=env, timeout=60)
        assert r.returncode == 0, r
        assert stand_in.connections == 0, stand_in.first_bytes
    finally:
        stand_in.close()
