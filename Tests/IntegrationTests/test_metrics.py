# SPDX-License-Identifier: Apache-2.0
"""Prometheus textfile metrics (node_exporter textfile collector format)."""

from __future__ import annotations

import os
import re
import time

import vk_harness as h

SAMPLE = re.compile(r'^([a-z_]+)(?:\{([^}]*)\})? (\S+)$')


def parse(text: str) -> dict[tuple[str, frozenset], float]:
    out = {}
    types = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            types[name] = kind
            continue
        if line.startswith("#") or not line:
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        assert m.group(1) in types, f"{m.group(1)} has no # TYPE"
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def metric(samples, name: str, **labels) -> float:
    return samples[(name, frozenset(labels.items()))]


def test_metrics_after_unseal(sim, daemons, config, keyfile, tmp_path):
    mdir = tmp_path / "textfile"
    mdir.mkdir()
    d = daemons(config(sim, key_file=keyfile(sim), metrics={"textfile_dir": str(mdir)}), metrics_dir=mdir)
    sim.wait_unsealed()
    d.wait_status("vault active")

    def active():
        text = d.read_metrics()
        return text if text and f'vaultkeeper_vault_health_status{{node="{sim.address}",state="active"}} 1' in text else None
    text = h.wait_until(active, 5, what="metrics showing the node active")
    st = os.stat(mdir / "vaultkeeper.prom")
    assert st.st_mode & 0o777 == 0o644
    assert not [n for n in os.listdir(mdir) if n != "vaultkeeper.prom"], os.listdir(mdir)  # no temp files left

    s = parse(text)
    node = sim.address
    assert metric(s, "vaultkeeper_vault_up", node=node) == 1
    assert metric(s, "vaultkeeper_vault_sealed", node=node) == 0
    assert metric(s, "vaultkeeper_unseal_attempts_total", node=node, result="success") == 3
    assert metric(s, "vaultkeeper_unseal_attempts_total", node=node, result="wrong_key") == 0
    last = metric(s, "vaultkeeper_last_unseal_timestamp_seconds", node=node)
    assert abs(last - time.time()) < 30
    assert metric(s, "vaultkeeper_unseal_held", node=node) == 0
    assert metric(s, "vaultkeeper_health_check_duration_seconds", node=node) < 1
    states = {dict(k[1])["state"]: v for k, v in s.items() if k[0] == "vaultkeeper_vault_health_status"}
    assert states["active"] == 1 and sum(states.values()) == 1
    assert "# TYPE vaultkeeper_unseal_attempts_total counter" in text
    # Nothing was dropped on the way to systemd (the notify socket is read here).
    assert metric(s, "vaultkeeper_notify_datagrams_dropped_total") == 0
    assert "# TYPE vaultkeeper_notify_datagrams_dropped_total counter" in text

    # A restart shows up as more successful submissions.
    sim.restart(down_ms=200)
    sim.wait_unsealed(timeout=3)

    def six():
        t = d.read_metrics()
        return t if t and metric(parse(t), "vaultkeeper_unseal_attempts_total", node=node, result="success") == 6 else None
    h.wait_until(six, 5, what="6 successful submissions in the metrics")


def test_metrics_while_held_by_a_wrong_key(sim, daemons, config, tmp_path, foreign_init):
    mdir = tmp_path / "textfile"
    mdir.mkdir()
    keys = h.write_key_json(tmp_path / "other.json", foreign_init)
    d = daemons(config(sim, key_file=keys, metrics={"textfile_dir": str(mdir)}), metrics_dir=mdir)
    d.wait_entry("wrong_key")

    def held():
        t = d.read_metrics()
        return t if t and 'vaultkeeper_unseal_held{node="' in t and metric(parse(t), "vaultkeeper_unseal_held", node=sim.address) == 1 else None
    s = parse(h.wait_until(held, 5, what="unseal_held 1"))
    assert metric(s, "vaultkeeper_vault_sealed", node=sim.address) == 1
    assert metric(s, "vaultkeeper_unseal_attempts_total", node=sim.address, result="wrong_key") == 1
    assert metric(s, "vaultkeeper_last_unseal_timestamp_seconds", node=sim.address) == 0
