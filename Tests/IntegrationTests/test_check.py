# SPDX-License-Identifier: Apache-2.0
"""`vaultkeeper check`: Monitoring Plugins output, perfdata and exit codes for every role."""

from __future__ import annotations

import re

import pytest

import vk_harness as h

PERF = re.compile(r" \| 'latency'=(\d+(?:\.\d+)?)s;1;3;0 'nodes_ok'=(\d+);;;0;(\d+)$")


@pytest.fixture(scope="module")
def role_sim(tmp_path_factory, pki):
    """One unsealed simulator whose role the tests switch."""
    s = h.Sim(tmp_path_factory.mktemp("roles"), pki, name="roles")
    s.unseal_now()
    yield s
    s.stop()


@pytest.fixture
def role_config(role_sim, pki, tmp_path):
    role_sim.clear_faults()
    role_sim.unseal_now()
    role_sim.control("POST", "/role", {"role": "active"})
    path = tmp_path / "check.toml"
    path.write_text(h.render_config({"address": role_sim.address, "ca_file": pki["ca"]}))
    return path


def check(cfg, *extra: str) -> h.CliResult:
    return h.run_cli(["check", "--config", str(cfg), *extra])


@pytest.mark.parametrize("role, state, code", [
    ("active", "active", 0),
    ("standby", "standby", 0),
    ("perfstandby", "perf-standby", 0),
    ("drsecondary", "dr-secondary", 0),
    ("haunhealthy", "standby-unhealthy", 1),
    ("removed", "removed", 2),
])
def test_roles(role_sim, role_config, role, state, code):
    role_sim.control("POST", "/role", {"role": role})
    r = check(role_config)
    assert r.returncode == code, r
    word = ["OK", "WARNING", "CRITICAL"][code]
    first = r.stdout.splitlines()[0]
    assert first.startswith(f"VAULT {word}: {state} (1.19.0), {1 if code == 0 else 0}/1 nodes ok"), r
    m = PERF.search(first)
    assert m, f"no perfdata in {first!r}"
    assert m.group(2) == ("1" if code == 0 else "0") and m.group(3) == "1"
    assert f"{word}: {role_sim.address} {state}" in r.stdout


def test_sealed_is_critical(role_sim, role_config):
    role_sim.seal()
    r = check(role_config)
    assert r.returncode == 2, r
    assert r.stdout.startswith("VAULT CRITICAL: sealed (1.19.0), 0/1 nodes ok | 'latency'=")
    assert role_sim.state()["unseal_requests"] == 0  # check never unseals


def test_uninitialized_is_a_warning(sims, tmp_path, pki):
    s = sims("uninit", init=None)
    cfg = tmp_path / "c.toml"
    cfg.write_text(h.render_config({"address": s.address, "ca_file": pki["ca"]}))
    r = check(cfg)
    assert r.returncode == 1, r
    assert r.stdout.startswith("VAULT WARNING: uninitialized")
    assert PERF.search(r.stdout.splitlines()[0])


def test_unreachable_is_critical(tmp_path, pki):
    cfg = tmp_path / "c.toml"
    cfg.write_text(h.render_config({"address": f"https://127.0.0.1:{h.free_port()}", "ca_file": pki["ca"]}))
    r = check(cfg)
    assert r.returncode == 2, r
    assert r.stdout.startswith("VAULT CRITICAL: unreachable, 0/1 nodes ok | 'latency'="), r
    assert "connect" in r.stdout


def test_ok_and_warning_options(role_sim, role_config):
    role_sim.control("POST", "/role", {"role": "standby"})
    r = check(role_config, "--ok", "active")
    assert r.returncode == 2 and r.stdout.startswith("VAULT CRITICAL: standby"), r
    r = check(role_config, "--ok", "active", "--warning", "standby")
    assert r.returncode == 1 and r.stdout.startswith("VAULT WARNING: standby"), r
    role_sim.seal()
    r = check(role_config, "--ok", "active,sealed")
    assert r.returncode == 0, r


def test_unknown_state_name_is_unknown(role_config):
    # Monitoring Plugins report bad arguments as UNKNOWN (3).
    r = check(role_config, "--ok", "actve")
    assert r.returncode == 3, r
    assert r.stdout.startswith('VAULT UNKNOWN: unknown state "actve"'), r


def test_latency_thresholds(role_sim, role_config):
    role_sim.fault(kind="latency", ms=300, paths=["/v1/sys/health"])
    r = check(role_config, "--warn-latency", "0.1")
    assert r.returncode == 1, r
    assert ";0.1;3;0" in r.stdout
    r = check(role_config, "--warn-latency", "0.1", "--crit-latency", "0.2")
    assert r.returncode == 2, r
    latency = float(re.search(r"'latency'=([\d.]+)s", r.stdout).group(1))
    assert 0.3 <= latency < 2


def test_config_error_is_unknown(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[vault]\naddress = \"ftp://x\"\n")
    r = check(cfg)
    assert r.returncode == 3, r
    assert r.stdout.startswith("VAULT UNKNOWN:") and f"{cfg}:2: vault.address" in r.stdout


def test_two_nodes_worst_decides(role_sim, sims, tmp_path, pki):
    role_sim.control("POST", "/role", {"role": "active"})
    role_sim.unseal_now()
    sealed = sims("sealed")
    cfg = tmp_path / "two.toml"
    cfg.write_text(h.render_config({"address": role_sim.address, "ca_file": pki["ca"]},
                                   peers=[{"address": sealed.address}]))
    r = check(cfg)
    assert r.returncode == 2, r
    first = r.stdout.splitlines()[0]
    assert first.startswith("VAULT CRITICAL: active (1.19.0), 1/2 nodes ok"), r
    assert "'latency_1'=" in first and "'nodes_ok'=1;;;0;2" in first
    assert f"OK: {role_sim.address} active" in r.stdout
    assert f"CRITICAL: {sealed.address} sealed" in r.stdout
