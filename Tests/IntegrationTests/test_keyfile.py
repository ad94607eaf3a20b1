# SPDX-License-Identifier: Apache-2.0
"""Key file checks at start-up: insecure (77), unreadable (77), bad content (65). The daemon must
refuse before it talks to Vault and before READY=1, and its messages must never echo key text."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

import vk_harness as h
from vk_fixtures import needs

NOBODY = 65534


def _config_for(tmp_path, key_file, config):
    # Nothing listens there: a daemon that got past the key check would report unreachable.
    return config({"address": f"https://127.0.0.1:{h.free_port()}"}, key_file=key_file)


def _assert_refused(daemons, cfg, code: int, *needles: str) -> h.Daemon:
    d = daemons(cfg)
    rc = d.wait_exit(timeout=5)
    assert rc == code, d.stderr()
    err = d.stderr()
    for n in needles:
        assert n in err, f"{n!r} not in:\n{err}"
    assert not [m for _, m in d.notes() if "READY=1" in m], "READY=1 sent despite a refused key file"
    return d


def test_key_file_readable_by_others_is_refused(sim, tmp_path, daemons, config, keyfile):
    keys = keyfile(sim)
    os.chmod(keys, 0o644)
    _assert_refused(daemons, _config_for(tmp_path, keys, config), h.EX_NOPERM, str(keys), "chmod 0600")
    r = h.run_cli(["config", "check", "--config", str(_config_for(tmp_path, keys, config))])
    assert r.returncode == h.EX_NOPERM, r
    assert "chmod 0600" in r.stderr


def test_key_file_writable_by_group_is_refused(sim, tmp_path, daemons, config, keyfile):
    keys = keyfile(sim)
    os.chmod(keys, 0o620)
    _assert_refused(daemons, _config_for(tmp_path, keys, config), h.EX_NOPERM, "chmod 0600")


def test_key_file_owned_by_another_user_is_refused(sim, tmp_path, daemons, config, keyfile):
    needs(os.geteuid() == 0, "root (to chown)")
    keys = keyfile(sim)
    os.chown(keys, NOBODY, NOBODY)
    _assert_refused(daemons, _config_for(tmp_path, keys, config), h.EX_NOPERM, str(keys), f"uid {NOBODY}", "chown")


def test_key_file_behind_a_symlink_is_unreadable(sim, tmp_path, daemons, config, keyfile):
    keys = keyfile(sim)
    link = tmp_path / "keys-link.json"
    link.symlink_to(keys)
    _assert_refused(daemons, _config_for(tmp_path, link, config), h.EX_NOPERM, f"cannot open key file {link}")


def test_key_file_the_daemon_user_cannot_open(sim):
    """Run as nobody against a root-owned 0600 key file: EACCES, exit 77, with the fix."""
    needs(os.geteuid() == 0, "root (to switch users)")
    d = tempfile.mkdtemp(prefix="vk-nobody-", dir="/tmp")
    try:
        os.chmod(d, 0o755)
        keys = h.write_key_json(Path(d) / "keys.json", sim.init_json())
        cfg = os.path.join(d, "vk.toml")
        with open(cfg, "w") as f:
            f.write(h.render_config({"address": f"https://127.0.0.1:{h.free_port()}"}, unseal={"key_file": str(keys)}))
        os.chmod(cfg, 0o644)
        r = h.run_cli(["run", "--config", cfg, "--state-file", os.path.join(d, "state.json")], timeout=10,
                      preexec=["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"])
        assert r.returncode == h.EX_NOPERM, r
        assert f"cannot open key file {keys}" in r.stderr, r
        assert "Permission denied" in r.stderr and "chown" in r.stderr, r
    finally:
        for name in os.listdir(d):
            os.unlink(os.path.join(d, name))
        os.rmdir(d)


@pytest.mark.parametrize("content, needle", [
    ("this is not an unseal key\n", "line 1 is not an unseal key"),
    ("{\"unseal_keys_b64\": [\"not-a-key\"]", "invalid JSON"),
    ("{\"unseal_keys_b64\": [\"bm90IGEga2V5\"]}", "key #1 is not a valid unseal key"),
    ("{\"hello\": \"world\"}", "no unseal keys found (expected unseal_keys_b64/unseal_keys_hex"),
    ("\n# only a comment\n\n", "no unseal keys found"),
], ids=["plain-garbage", "broken-json", "short-key-in-json", "json-without-keys", "empty"])
def test_garbage_key_file_is_bad_data(tmp_path, daemons, config, content, needle):
    keys = tmp_path / "keys"
    keys.write_text(content)
    os.chmod(keys, 0o600)
    _assert_refused(daemons, _config_for(tmp_path, keys, config), h.EX_DATAERR, needle)
    r = h.run_cli(["config", "check", "--config", str(_config_for(tmp_path, keys, config))])
    assert r.returncode == h.EX_DATAERR, r


def test_a_mistyped_key_is_not_echoed(sim, tmp_path, daemons, config):
    """A real share with one character cut off is still secret: the error names the line only."""
    init = sim.init_json()
    typo = init["unseal_keys_b64"][1][:-1]
    keys = h.write_key_lines(tmp_path / "keys.txt", [init["unseal_keys_b64"][0], typo, init["unseal_keys_b64"][2]])
    h.LEDGER.secret(typo, "mistyped share")
    d = _assert_refused(daemons, _config_for(tmp_path, keys, config), h.EX_DATAERR, "line 3 is not an unseal key")
    assert typo not in d.stderr()
    assert typo[:12] not in d.stderr()


def test_recovery_keys_are_refused(sims, tmp_path, daemons, config):
    auto = sims("auto", extra=["--seal-type", "awskms"])
    init = auto.init_json()
    assert init["recovery_keys_b64"] and not init["unseal_keys_b64"]
    keys = h.write_key_json(tmp_path / "recovery.json", init)
    _assert_refused(daemons, _config_for(tmp_path, keys, config), h.EX_DATAERR, "recovery keys", "auto-unseal")
    assert auto.state()["unseal_requests"] == 0


def test_config_check_reports_the_key_file(sim, tmp_path, config, keyfile):
    cfg = config(sim, key_file=keyfile(sim))
    r = h.run_cli(["config", "check", "--config", str(cfg)])
    assert r.returncode == 0, r
    assert "5 unseal key shares (vault operator init JSON), threshold 3" in r.stdout, r
    assert f"configuration {cfg} is valid" in r.stderr
