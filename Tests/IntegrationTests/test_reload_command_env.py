# SPDX-License-Identifier: Apache-2.0
"""The `command` reload mode runs with a clean environment (issue #10, item 8): the daemon's own
variables, CREDENTIALS_DIRECTORY (where systemd put the decrypted unseal keys) first of all,
never reach the reload command. A real daemon, started the way systemd starts it (a credentials
directory, a notify socket), reloads the simulator after a real renewal through a command that
records its environment."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import test_cert_check as tc
from test_cert_check import served, setup  # noqa: F401  (fixtures)
import test_certificate_duty as tcd
import vk_harness as h

CLEAN = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


def test_the_reload_command_does_not_inherit_the_daemons_environment(setup, pki, daemons, tmp_path):
    lineage, sim, _, _ = setup
    creds = tmp_path / "credentials"
    creds.mkdir(mode=0o700)
    (creds / "unseal-keys").write_text("not a real share\n")
    recorded = tmp_path / "reload-env"
    # /usr/bin/env, not the shell's `export`: exactly what the command was given.
    script = f"/usr/bin/env > {shlex.quote(str(recorded))}; kill -HUP {sim.proc.pid}"
    cfg = tcd._config(tmp_path / "duty.toml", sim, pki["ca"], lineage, reload_command=["/bin/sh", "-c", script])
    d = daemons(cfg, env={"CREDENTIALS_DIRECTORY": str(creds), "VK_TEST_DAEMON_ONLY": "inherited",
                          "HOME": "/root", "PATH": "/usr/local/bin:" + os.environ.get("PATH", "/usr/bin")})
    d.wait_ready()
    d.wait_state(lambda st: (st.get("certificate") or {}).get("state") not in (None, "unknown"), what="certificate report")

    tcd._renew(lineage, pki)
    d.wait_entry("certificate_reloaded", timeout=15)
    env = dict(line.split("=", 1) for line in recorded.read_text().splitlines() if "=" in line)
    names = sorted(env)  # names only in messages: this machine's values are none of the test's business
    for leaked in ("CREDENTIALS_DIRECTORY", "NOTIFY_SOCKET", "VK_TEST_DAEMON_ONLY", "HOME"):
        assert leaked not in names, f"the reload command inherited {leaked}"
    # What remains is the documented environment, plus what /bin/sh sets for itself (PWD).
    assert {k: v for k, v in env.items() if k != "PWD"} == CLEAN, names
    assert sim.state()["tls_reloads"] == 1
