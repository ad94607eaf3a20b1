# SPDX-License-Identifier: Apache-2.0
"""Configuration errors: exit 78 with FILE:LINE: KEY: message, for `run` and `config check`;
`config check` prints the effective configuration of a good file."""

from __future__ import annotations


import pytest
import tomllib

import vk_harness as h


def _write(tmp_path, text: str):
    path = tmp_path / "vk.toml"
    path.write_text(text)
    return path


def _expect_config_error(daemons, path, line: int, key: str, *needles: str) -> None:
    located = f"{path}:{line}: {key}: "
    r = h.run_cli(["config", "check", "--config", str(path)])
    assert r.returncode == h.EX_CONFIG, r
    assert located in r.stderr, r
    for n in needles:
        assert n in r.stderr, r
    assert r.stdout == "", r  # no effective config for a broken file

    d = daemons(path)
    assert d.wait_exit(timeout=5) == h.EX_CONFIG, d.stderr()
    err = d.stderr()
    assert located in err, err
    assert h.MID["config_rejected"] in err
    assert not [m for _, m in d.notes() if "READY=1" in m]


def test_unknown_key(tmp_path, daemons, pki):
    path = _write(tmp_path, f'[vault]\naddress = "https://127.0.0.1:8200"\nca_file = "{pki["ca"]}"\n\n'
                            '[health]\ninterval = "5s"\nfast_intervall = "100ms"\n')
    _expect_config_error(daemons, path, 7, "health.fast_intervall", "unknown key", "fast_interval")


def test_bad_duration(tmp_path, daemons):
    path = _write(tmp_path, '[vault]\naddress = "https://127.0.0.1:8200"\ntimeout = "5 parsecs"\n')
    _expect_config_error(daemons, path, 3, "vault.timeout", "\"5 parsecs\" is not a duration")


def test_duration_of_the_wrong_type(tmp_path, daemons):
    path = _write(tmp_path, '[vault]\naddress = "https://127.0.0.1:8200"\n[health]\ninterval = 5\n')
    _expect_config_error(daemons, path, 4, "health.interval", "must be a duration string")


def test_plain_http_to_a_remote_host(tmp_path, daemons):
    path = _write(tmp_path, '# cluster\n[vault]\naddress = "http://10.0.0.2:8200"\n')
    _expect_config_error(daemons, path, 3, "vault.address", "plain http is only allowed for loopback")


def test_plain_http_to_a_remote_peer(tmp_path, daemons):
    path = _write(tmp_path, '[vault]\naddress = "http://127.0.0.1:8200"\n\n[[peer]]\naddress = "http://127.0.0.2:8200"\n\n'
                            '[[peer]]\naddress = "http://vault-b.example:8200"\n')
    _expect_config_error(daemons, path, 8, "peer[1].address", "plain http")


def test_missing_ca_file(tmp_path, daemons):
    missing = tmp_path / "nope" / "ca.pem"
    path = _write(tmp_path, f'[vault]\naddress = "https://127.0.0.1:8200"\nca_file = "{missing}"\n')
    _expect_config_error(daemons, path, 3, "vault.ca_file", f"{missing} does not exist")


def test_missing_key_file(tmp_path, daemons):
    missing = tmp_path / "keys.json"
    path = _write(tmp_path, f'[vault]\naddress = "https://127.0.0.1:8200"\n\n[unseal]\nkey_file = "{missing}"\n')
    _expect_config_error(daemons, path, 5, "unseal.key_file", "does not exist")


def test_fast_interval_longer_than_interval(tmp_path, daemons):
    path = _write(tmp_path, '[vault]\naddress = "https://127.0.0.1:8200"\n[health]\ninterval = "1s"\nfast_interval = "2s"\n')
    _expect_config_error(daemons, path, 5, "health.fast_interval", "must not be longer than health.interval")


@pytest.mark.parametrize("body, line, key, needle", [
    ('[vault]\naddress = "https://127.0.0.1:8200"\ntimeout = "50ms"\n', 3, "vault.timeout", "at least 100ms"),
    ('[vault]\naddress = "https://127.0.0.1:8200"\n[unseal]\nafter = "sometimes"\n', 4, "unseal.after", "\"always\""),
    ('[vault]\naddress = "https://127.0.0.1:8200"\n[unseal]\nkey_file = "/etc/hostname"\ncredential = "k"\n', 5,
     "unseal.credential", "not both"),
    ('[vault]\naddress = "https://127.0.0.1:8200"\n[[peer]]\naddress = "https://127.0.0.1:8200"\n', 4,
     "peer[0].address", "listed twice"),
    ('[vault]\naddress = "https://127.0.0.1:8200"\nserver_name = "two words"\n', 3, "vault.server_name", "DNS name"),
    ('[vault]\naddress = "https://127.0.0.1:8200/v1"\n', 2, "vault.address", "no path"),
    ('[vault]\naddress = "https://127.0.0.1:8200"\n[unseal]\nenabled = true\n', 4, "unseal.enabled", "key_file"),
], ids=["timeout-too-short", "after", "key-file-and-credential", "peer-twice", "server-name", "address-path",
        "enabled-without-keys"])
def test_more_config_errors(tmp_path, daemons, body, line, key, needle):
    _expect_config_error(daemons, _write(tmp_path, body), line, key, needle)


def test_toml_syntax_error(tmp_path, daemons):
    path = _write(tmp_path, '[vault]\naddress = "https://127.0.0.1:8200\n')
    r = h.run_cli(["config", "check", "--config", str(path)])
    assert r.returncode == h.EX_CONFIG, r
    assert f"{path}:2: TOML syntax error" in r.stderr, r


def test_missing_config_file(tmp_path, daemons):
    path = tmp_path / "absent.toml"
    r = h.run_cli(["config", "check", "--config", str(path)])
    assert r.returncode == h.EX_CONFIG, r
    assert str(path) in r.stderr and "cannot read" in r.stderr


def test_config_check_prints_the_effective_config(tmp_path, pki, sim, keyfile):
    keys = keyfile(sim)
    path = _write(tmp_path, h.render_config(
        {"address": sim.address, "ca_file": pki["ca"]},
        health={"interval": "2s"},
        unseal={"key_file": str(keys), "foreign_progress_grace": "1m30s"},
        peers=[{"address": "https://127.0.0.1:8300", "server_name": "vault.test"}],
        metrics={"textfile_dir": str(tmp_path)}))
    r = h.run_cli(["config", "check", "--config", str(path)])
    assert r.returncode == 0, r
    out = r.stdout
    for line in [
        "[vault]", f'address = "{sim.address}"', f'ca_file = "{pki["ca"]}"', 'unit = "vault.service"',
        'timeout = "5s"', 'connect_timeout = "2s"',
        "[health]", 'interval = "2s"', 'fast_interval = "250ms"', 'max_backoff = "30s"',
        "[unseal]", "enabled = true", f'key_file = "{keys}"', 'after = "restart"',
        'foreign_progress_grace = "90s"', 'wrong_key_backoff = "10m"',
        "[[peer]]", 'address = "https://127.0.0.1:8300"', 'server_name = "vault.test"',
        "[metrics]", f'textfile_dir = "{tmp_path}"',
    ]:
        assert line in out.splitlines(), f"{line!r} missing from:\n{out}"
    # The peer inherits [vault]'s CA.
    peer = out.split("[[peer]]", 1)[1]
    assert f'ca_file = "{pki["ca"]}"' in peer
    # It is TOML 1.0 as Python's reference parser reads it, with the values printed.
    effective = tomllib.loads(out)
    assert effective["vault"]["address"] == sim.address
    assert effective["vault"]["ca_file"] == str(pki["ca"])
    assert effective["health"]["unreachable_error_after"] == 3
    assert effective["unseal"]["enabled"] is True
    assert [p["address"] for p in effective["peer"]] == ["https://127.0.0.1:8300"]
    assert effective["peer"][0]["ca_file"] == str(pki["ca"])
    # The printed configuration is itself a valid configuration.
    again = tmp_path / "effective.toml"
    again.write_text(out)
    r2 = h.run_cli(["config", "check", "--config", str(again)])
    assert r2.returncode == 0, r2


def test_config_check_minimal(tmp_path):
    path = _write(tmp_path, '[vault]\naddress = "unix:///run/vault/vault.sock"\n')
    r = h.run_cli(["config", "check", "--config", str(path)])
    assert r.returncode == 0, r
    assert "enabled = false" in r.stdout
    assert f"configuration {path} is valid" in r.stderr
