# SPDX-License-Identifier: Apache-2.0
"""Issue #13 against a real OpenBao 2.7 node: the shares of another real cluster get OpenBao's
own wrong-key answer, and a `[[notify]]` command target hears exactly one "sealed" problem about
it; once the right shares are in the key file and the daemon is reloaded (SIGHUP), it hears
exactly one "resolved", and OpenBao is unsealed. No share ever reaches the target."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import bao_harness as bh
import vk_harness as h



def notify_command(tmp_path: Path) -> tuple[Path, Path]:
    """A real command target: appends each message (the JSON on its stdin, one line) to a file."""
    out = tmp_path / "messages.jsonl"
    script = tmp_path / "page-me"
    script.write_text(f"#!/bin/sh\ncat >> '{out}'\n")
    script.chmod(0o755)
    return script, out


def messages(out: Path) -> list[dict]:
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]


def test_wrong_shares_notify_once_then_resolved_after_the_right_ones_and_a_reload(bao, daemons, config, tmp_path,
                                                                                   foreign_bao_init):
    node, init = bao
    keys = h.write_key_json(tmp_path / "keys.json", foreign_bao_init)
    script, out = notify_command(tmp_path)
    extra = f"""
[[notify]]
name = "pager"
command = ["{script}"]
min_failures = 2
min_duration = "0s"
"""
    d = daemons(config(node, key_file=keys, extra=extra))
    d.wait_entry("wrong_key", timeout=30)
    got = h.wait_until(lambda: messages(out) or None, 60, what="the sealed message at the command target")
    assert len(got) == 1, got
    problem = got[0]
    assert problem["event"] == "sealed" and problem["status"] == "problem" and problem["severity"] == "critical", problem
    assert problem["node"] == node.address and problem["key"] == f"sealed {node.address}", problem
    assert "Vault refuses the unseal key shares vaultkeeper holds" in problem["summary"], problem
    d.wait_entry(contains="notify pager: delivered problem sealed", timeout=30)
    # Still held: many more health checks, and no second message.
    checks = d.read_state()["nodes"][0]["last_check"]
    d.wait_state(lambda s: s["nodes"][0]["last_check"] > checks + 1, what="two more health checks")
    assert len(messages(out)) == 1, messages(out)

    # The operator installs the right shares and reloads.
    h.write_key_json(keys, init)
    d.signal(signal.SIGHUP)
    node.wait_unsealed(timeout=30)
    d.wait_entry(contains="notify pager: delivered resolved sealed", timeout=60)
    got = messages(out)
    assert [m["status"] for m in got] == ["problem", "resolved"], got
    assert got[1]["key"] == problem["key"] and got[1]["since"] == problem["since"], got

    # Neither cluster's shares reached the target.
    text = out.read_text()
    hexes = list(init.get("unseal_keys_hex") or init.get("keys") or []) + list(foreign_bao_init.get("unseal_keys_hex") or foreign_bao_init.get("keys") or [])
    for share in bh.shares_b64(init) + bh.shares_b64(foreign_bao_init) + hexes:
        assert share not in text
