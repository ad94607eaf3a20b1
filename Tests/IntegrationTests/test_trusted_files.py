# SPDX-License-Identifier: Apache-2.0
"""Files that decide where the unseal keys and the backups go (issue #10, item 8): the
configuration file, every `ca_file`, `age_recipients_file`. When users other than the owner may
write one, it is refused like an insecure key file: exit 77, naming the file and its mode.

The attacks are real: an unprivileged user (`nobody`, through setpriv) rewrites a world-writable
configuration or CA file so that the daemon would send the real unseal shares to an impostor
(a simulator with a certificate of another CA, standing where the configuration now points)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

import vk_harness as h
from vk_fixtures import needs

NOBODY = 65534
SETPRIV = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]

@pytest.fixture(autouse=True)
def _preconditions():
    needs(os.geteuid() == 0 and shutil.which("setpriv") is not None, "root and setpriv (to act as another user)")


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory other users can enter (pytest's tmp_path is private to root)."""
    d = Path(tempfile.mkdtemp(prefix="vk-trusted-", dir="/tmp"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _as_nobody(code: str, *args: str) -> None:
    """Runs a little Python program as the unprivileged user `nobody`: the attacker."""
    subprocess.run(SETPRIV + ["python3", "-c", code, *args], check=True, capture_output=True, timeout=30)


def _loose(path: Path, text: str, mode: int = 0o666) -> Path:
    path.write_text(text)
    os.chmod(path, mode)  # whatever the umask
    return path


def _wait_exit_or_shares_sent(d: h.Daemon, impostor: h.Sim) -> None:
    h.wait_until(lambda: not d.running() or impostor.state()["unseal_requests"] > 0, timeout=20,
                 what="the daemon to exit (or to send shares to the impostor)")


def test_a_world_writable_configuration_is_refused_before_an_attacker_uses_it(sim, sims, keyfile, shared_dir, pki, daemons):
    impostor = sims("impostor", cert="impostor")  # initialised, sealed: it takes unseal shares
    cfg = _loose(shared_dir / "vk.toml", h.render_config({"address": sim.address, "ca_file": pki["ca"]},
                                                         health=dict(h.FAST_HEALTH), unseal={"key_file": str(keyfile(sim))}))
    # The attack: another user points [vault] at the impostor and trusts its CA.
    _as_nobody("import sys; p, a, b, c, d = sys.argv[1:]; t = open(p).read(); open(p, 'w').write(t.replace(a, b).replace(c, d))",
               str(cfg), sim.address, impostor.address, pki["ca"], pki["impostor-ca"])
    assert impostor.address in cfg.read_text() and pki["impostor-ca"] in cfg.read_text()

    d = daemons(cfg)
    _wait_exit_or_shares_sent(d, impostor)
    assert impostor.state()["unseal_requests"] == 0, "the unseal shares went to the impostor"
    assert d.wait_exit(timeout=10) == h.EX_NOPERM, d.stderr()
    err = d.stderr()
    assert f"{cfg} is writable by any user (mode 0666)" in err and f"chmod o-w {cfg}" in err, err
    assert h.MID["config_rejected"] in err
    assert not [m for _, m in d.notes() if "READY=1" in m]
    r = h.run_cli(["config", "check", "--config", str(cfg)])
    assert r.returncode == h.EX_NOPERM and f"{cfg} is writable by any user (mode 0666)" in r.stderr, str(r)
    assert r.stdout == "", str(r)
    assert sim.state()["unseal_requests"] == 0 and impostor.state()["unseal_requests"] == 0


def test_a_world_writable_ca_file_is_refused_before_an_attacker_uses_it(sim, sims, keyfile, shared_dir, pki, daemons):
    # Vault is down and the impostor has its address; only the CA file stands in its way.
    address = sim.address
    sim.stop()
    port = int(address.rsplit(":", 1)[1])
    impostor = sims("impostor", cert="impostor", port=port)
    ca = _loose(shared_dir / "ca.pem", Path(pki["ca"]).read_text())
    cfg = shared_dir / "vk.toml"
    cfg.write_text(h.render_config({"address": address, "ca_file": str(ca)}, health=dict(h.FAST_HEALTH),
                                   unseal={"key_file": str(keyfile(sim))}))
    os.chmod(cfg, 0o644)
    # The attack: another user adds the impostor's CA to the trusted ones.
    impostor_ca = _loose(shared_dir / "impostor-ca.pem", Path(pki["impostor-ca"]).read_text(), 0o644)
    _as_nobody("import sys; open(sys.argv[1], 'a').write(open(sys.argv[2]).read())", str(ca), str(impostor_ca))
    assert Path(pki["impostor-ca"]).read_text() in ca.read_text()

    d = daemons(cfg)
    _wait_exit_or_shares_sent(d, impostor)
    assert impostor.state()["unseal_requests"] == 0, "the unseal shares went to the impostor"
    assert d.wait_exit(timeout=10) == h.EX_NOPERM, d.stderr()
    err = d.stderr()
    assert f"{cfg}:3: vault.ca_file: {ca} is writable by any user (mode 0666)" in err, err


def _recipient(directory: Path) -> str:
    key = directory / "age-identity.txt"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    return subprocess.run(["age-keygen", "-y", str(key)], check=True, capture_output=True, text=True).stdout.strip()


def _trusted_file_configs(d: Path, pki: dict) -> list[tuple[str, str, Path]]:
    """(key, configuration text, the file under test) for every file the rule covers."""
    secret = _loose(d / "token", "not-a-real-token\n", 0o600)
    snaps = d / "snaps"
    snaps.mkdir(mode=0o700, exist_ok=True)
    base = f'[vault]\naddress = "https://127.0.0.1:8200"\nca_file = "{pki["ca"]}"\n'
    snapshot = f'\n[snapshot]\ndirectory = "{snaps}"\ntoken_file = "{secret}"\n'
    ca_text = Path(pki["ca"]).read_text()
    cases = [
        ("peer[0].ca_file", base + '\n[[peer]]\naddress = "https://127.0.0.2:8200"\nca_file = "{f}"\n', ca_text),
        ("snapshot.s3.ca_file", base + snapshot + '\n[snapshot.s3]\nendpoint = "https://127.0.0.1:9000"\nregion = "us-east-1"\npath_style = true\n'
         f'bucket = "backups"\naccess_key_id_file = "{secret}"\nsecret_access_key_file = "{secret}"\nca_file = "{{f}}"\n', ca_text),
        ("certificate.ca_file", base + f'\n[certificate]\ncert_file = "{pki["server"]}"\nkey_file = "{pki["server-key"]}"\nnames = ["vault.test"]\n'
         'ca_file = "{f}"\n', ca_text),
    ]
    if shutil.which("age-keygen"):
        cases.append(("snapshot.age_recipients_file", base + snapshot + 'age_recipients_file = "{f}"\n', _recipient(d) + "\n"))
    out = []
    for i, (key, template, content) in enumerate(cases):
        f = _loose(d / f"trusted-{i}", content)
        cfg = d / f"vk-{i}.toml"
        cfg.write_text(template.replace("{f}", str(f)))
        os.chmod(cfg, 0o644)
        out.append((key, str(cfg), f))
    return out


def test_every_file_that_decides_where_things_go_is_checked(shared_dir, pki):
    for key, cfg, f in _trusted_file_configs(shared_dir, pki):
        r = h.run_cli(["config", "check", "--config", cfg])
        assert r.returncode == h.EX_NOPERM, str(r)
        assert f"{key}: {f} is writable by any user (mode 0666)" in r.stderr, str(r)
        # Group-writable: refused for any group but root's.
        os.chmod(f, 0o664)
        os.chown(f, 0, NOBODY)
        r = h.run_cli(["config", "check", "--config", cfg])
        assert r.returncode == h.EX_NOPERM, str(r)
        assert f"{key}: {f} is writable by group nogroup (gid {NOBODY}) (mode 0664)" in r.stderr, str(r)
        os.chown(f, 0, 0)
        r = h.run_cli(["config", "check", "--config", cfg])
        assert r.returncode == 0, str(r)


def test_the_configuration_file_itself_group_writable(shared_dir, pki):
    cfg = shared_dir / "vk.toml"
    cfg.write_text(f'[vault]\naddress = "https://127.0.0.1:8200"\nca_file = "{pki["ca"]}"\n')
    os.chmod(cfg, 0o664)
    os.chown(cfg, 0, NOBODY)
    r = h.run_cli(["config", "check", "--config", str(cfg)])
    assert r.returncode == h.EX_NOPERM, str(r)
    assert f"{cfg} is writable by group nogroup (gid {NOBODY}) (mode 0664)" in r.stderr, str(r)
    os.chown(cfg, 0, 0)  # root's group may write it (root-owned files in /etc often are 0664 root:root)
    r = h.run_cli(["config", "check", "--config", str(cfg)])
    assert r.returncode == 0, str(r)
    os.chmod(cfg, 0o644)
    r = h.run_cli(["config", "check", "--config", str(cfg)])
    assert r.returncode == 0, str(r)
