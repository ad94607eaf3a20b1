# SPDX-License-Identifier: Apache-2.0
"""age encryption at rest for snapshots, proven against the real `age` tool (Debian package):
`vaultkeeper snapshot now` with `age_recipients` writes a `.snap.age` that `age -d` decrypts to a
snapshot Vault would restore; a file `age -r` encrypted verifies with `snapshot verify --identity`;
wrong identities, flipped bytes and truncation fail with exit 1 and a clear reason; two
recipients can each decrypt. Identity key material is registered with the session ledger, so
test_zz_no_secrets proves no output ever shows it."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import vk_harness as h
from vk_fixtures import needs
import test_snapshot as snap

@pytest.fixture(autouse=True)
def _preconditions():
    needs(shutil.which("age") is not None and shutil.which("age-keygen") is not None,
          "the age tool (age, age-keygen; scripts/install-deps.sh installs it)")

AGE_NAME_RE = re.compile(r"^vaultkeeper-[a-z0-9-]+-\d{8}T\d{6}Z-\d+\.snap\.age$")
AGE_MAGIC = b"age-encryption.org/v1\n"
CHUNK = 64 * 1024 + 16  # one sealed STREAM chunk

BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def _bech32_data(text: str) -> bytes:
    """The 8-bit payload of a Bech32 string (checksum not checked: age-keygen made it)."""
    values = [BECH32.index(c) for c in text.lower()[text.lower().rindex("1") + 1:-6]]
    acc = bits = 0
    out = bytearray()
    for v in values:
        acc, bits = (acc << 5) | v, bits + 5
        if bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
    return bytes(out)


class Key:
    """An identity made by age-keygen: the file (0600) and its recipient."""

    def __init__(self, directory: Path, name: str) -> None:
        self.path = directory / f"{name}.txt"
        subprocess.run(["age-keygen", "-o", str(self.path)], check=True, capture_output=True)
        os.chmod(self.path, 0o600)
        self.identity = next(l for l in self.path.read_text().splitlines() if l.startswith("AGE-SECRET-KEY-1"))
        self.recipient = subprocess.run(["age-keygen", "-y", str(self.path)], check=True, capture_output=True,
                                        text=True).stdout.strip()
        assert self.recipient.startswith("age1"), self.recipient
        # Every textual form the private key could leak in.
        raw = _bech32_data(self.identity)
        assert len(raw) == 32
        for form, value in (("identity", self.identity), ("identity lower case", self.identity.lower()),
                            ("identity data part", self.identity[len("AGE-SECRET-KEY-1"):]),
                            ("raw key hex", raw.hex()), ("raw key", raw)):
            h.LEDGER.secret(value, f"age test {name} {form}")


def _age_decrypt(key: Key, encrypted: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["age", "-d", "-i", str(key.path), "-o", str(out), str(encrypted)], capture_output=True,
                          text=True)


def _verify(*args: object) -> h.CliResult:
    return h.run_cli(["snapshot", "verify", *[str(a) for a in args]])


def _assert_bad(r: h.CliResult, path: Path, needle: str, *keys: Key) -> None:
    assert r.returncode == 1, str(r)
    assert r.stdout.startswith(f"{path}: BAD: "), str(r)
    assert needle in r.stdout, f"{needle!r} not in {r}"
    for key in keys:
        snap._assert_no_secrets(r, key.identity, key.identity.lower())


def _encrypted_config(config, s: h.Sim, tmp_path: Path, snaps: Path, recipients: list[str],
                      recipients_file: Path | None = None) -> Path:
    cfg = snap._token_config(config, s, tmp_path, snap._make_token(s), snaps)
    lines = []
    if recipients:
        lines.append("age_recipients = [" + ", ".join(f'"{r}"' for r in recipients) + "]")
    if recipients_file:
        lines.append(f'age_recipients_file = "{recipients_file}"')
    cfg.write_text(cfg.read_text() + "\n".join(lines) + "\n")  # [snapshot] is the last table
    return cfg


@pytest.fixture
def keys(tmp_path) -> dict[str, Key]:
    d = tmp_path / "keys"
    d.mkdir(mode=0o700)
    return {name: Key(d, name) for name in ("ops", "dr", "stranger")}


# ---------------------------------------------------------------------------
# 1. vaultkeeper encrypts, age decrypts
# ---------------------------------------------------------------------------

def test_encrypted_snapshot_is_decrypted_by_age_and_verifies(sims, config, tmp_path, keys):
    s = snap._start(sims)
    snaps = snap._snap_dir(tmp_path)
    key = keys["ops"]
    cfg = _encrypted_config(config, s, tmp_path, snaps, [key.recipient])

    r = snap._now(cfg)
    path, size, index = snap._assert_saved(r, snaps)
    snap._assert_no_secrets(r, key.identity)
    assert AGE_NAME_RE.match(path.name), path.name
    assert sorted(os.listdir(snaps)) == [path.name]  # no plaintext or temporary file beside it
    assert (path.stat().st_mode & 0o777) == 0o600
    data = path.read_bytes()
    assert data.startswith(AGE_MAGIC + b"-> X25519 "), data[:80]
    last = s.state()["last_snapshot"]
    assert size > last["bytes"]  # ciphertext = plaintext + header + 16 bytes a chunk

    plain = tmp_path / "decrypted.snap"
    d = _age_decrypt(key, path, plain)
    assert d.returncode == 0, d.stderr
    assert plain.stat().st_size == last["bytes"]
    assert hashlib.sha256(snap._archive(plain)["state.bin"]).hexdigest() == last["state_sha256"]
    v = _verify(plain)
    assert v.returncode == 0 and v.stdout.startswith(f"{plain}: OK (index {index}, "), str(v)

    # vaultkeeper reads its own file with the identity, streaming, to the same facts.
    v2 = _verify("--identity", key.path, path)
    assert v2.returncode == 0, str(v2)
    assert v2.stdout.split(": ", 1)[1] == v.stdout.split(": ", 1)[1], (v.stdout, v2.stdout)
    snap._assert_no_secrets(v2, key.identity)

    _assert_bad(_verify(path), path, "encrypted: pass --identity")

    # `snapshot list` shows the .age file; --verify needs the identity for it.
    lst = h.run_cli(["snapshot", "list", "--config", str(cfg)])
    assert lst.returncode == 0 and path.name in lst.stdout, str(lst)
    lst = h.run_cli(["snapshot", "list", "--config", str(cfg), "--verify"])
    assert lst.returncode == 1 and "BAD: encrypted: pass --identity" in lst.stdout, str(lst)
    lst = h.run_cli(["snapshot", "list", "--config", str(cfg), "--verify", "--identity", str(key.path)])
    assert lst.returncode == 0 and f"index {index}  verified" in lst.stdout, str(lst)
    snap._assert_no_secrets(lst, key.identity)


def test_two_recipients_from_the_list_and_the_file_can_each_decrypt(sims, config, tmp_path, keys):
    s = snap._start(sims)
    snaps = snap._snap_dir(tmp_path)
    rfile = tmp_path / "recipients.txt"
    rfile.write_text(f"# disaster recovery\n\n{keys['dr'].recipient}\n")
    cfg = _encrypted_config(config, s, tmp_path, snaps, [keys["ops"].recipient], rfile)

    path, _, _ = snap._assert_saved(snap._now(cfg), snaps)
    assert path.read_bytes().count(b"\n-> X25519 ") == 2
    outputs = []
    for name in ("ops", "dr"):
        out = tmp_path / f"{name}.snap"
        d = _age_decrypt(keys[name], path, out)
        assert d.returncode == 0, f"{name}: {d.stderr}"
        outputs.append(out.read_bytes())
        v = _verify("--identity", keys[name].path, path)
        assert v.returncode == 0, f"{name}: {v}"
    assert outputs[0] == outputs[1]
    assert _age_decrypt(keys["stranger"], path, tmp_path / "x.snap").returncode != 0
    _assert_bad(_verify("--identity", keys["stranger"].path, path), path,
                "no identity matches any recipient stanza", keys["stranger"])


# ---------------------------------------------------------------------------
# 2. age encrypts, vaultkeeper decrypts and verifies
# ---------------------------------------------------------------------------

@pytest.fixture
def plain_snapshot(sims, tmp_path, pki) -> Path:
    s = snap._start(sims)
    return snap._fetch_snapshot(s, snap._make_token(s), tmp_path / "plain.snap", pki["ca"])


def _age_encrypt(plain: Path, out: Path, *recipients: str) -> Path:
    args = ["age", "-o", str(out)]
    for r in recipients:
        args += ["-r", r]
    subprocess.run(args + [str(plain)], check=True, capture_output=True)
    return out


def test_file_encrypted_by_age_verifies_with_the_identity(plain_snapshot, tmp_path, keys):
    expected = _verify(plain_snapshot)
    assert expected.returncode == 0, str(expected)
    facts = expected.stdout.split(": ", 1)[1]
    enc = _age_encrypt(plain_snapshot, tmp_path / "by-age.snap.age", keys["ops"].recipient, keys["dr"].recipient)
    for name in ("ops", "dr"):
        v = _verify("--identity", keys[name].path, enc)
        assert v.returncode == 0 and v.stdout == f"{enc}: {facts}", f"{name}: {v}"
    # Recognised by its header even without the .age suffix.
    renamed = tmp_path / "looks-plain.snap"
    shutil.copy(enc, renamed)
    _assert_bad(_verify(renamed), renamed, "encrypted: pass --identity")
    v = _verify("--identity", keys["ops"].path, renamed, plain_snapshot)
    assert v.returncode == 0 and v.stdout.count(": OK (index ") == 2, str(v)


def test_wrong_identity_and_damaged_files_fail_with_a_reason(plain_snapshot, tmp_path, keys):
    key = keys["ops"]
    enc = _age_encrypt(plain_snapshot, tmp_path / "good.snap.age", key.recipient)
    data = enc.read_bytes()
    header_end = data.index(b"\n--- ") + len(b"\n--- ") + 43 + 1
    payload = header_end + 16
    assert len(data) - payload > 2 * CHUNK, "the snapshot should span several age chunks"

    _assert_bad(_verify("--identity", keys["stranger"].path, enc), enc,
                "no identity matches any recipient stanza", key, keys["stranger"])

    def damaged(name: str, content: bytes) -> Path:
        p = tmp_path / f"{name}.snap.age"
        p.write_bytes(content)
        return p

    flipped = bytearray(data)
    flipped[payload + CHUNK + 1000] ^= 0x01
    cases = {
        "flipped-payload-byte": (bytes(flipped), "payload chunk 2 failed authentication"),
        "cut-at-chunk-boundary": (data[:payload + 2 * CHUNK], "truncated: missing final chunk"),
        "trailing-garbage": (data + b"\0" * (CHUNK + 1), "payload chunk"),
        "stanza-added": (data[:header_end - 48] + b"-> grease x\n\n" + data[header_end - 48:], "header MAC mismatch"),
        "header-only": (data[:header_end], "truncated: missing payload nonce"),
    }
    assert data[header_end - 48:header_end - 44] == b"--- "
    for name, (content, needle) in cases.items():
        p = damaged(name, content)
        _assert_bad(_verify("--identity", key.path, p), p, needle, key)
        # age agrees that the file is bad.
        assert _age_decrypt(key, p, tmp_path / "out.snap").returncode != 0, name
    # A file of the right shape whose plaintext is not a snapshot: the verifier's reason shows.
    junk = tmp_path / "junk.bin"
    junk.write_bytes(os.urandom(100_000))
    enc_junk = _age_encrypt(junk, tmp_path / "junk.snap.age", key.recipient)
    _assert_bad(_verify("--identity", key.path, enc_junk), enc_junk, "gzip", key)


def test_unusable_identity_files_are_refused_before_any_file_is_read(plain_snapshot, tmp_path, keys):
    key = keys["ops"]
    enc = _age_encrypt(plain_snapshot, tmp_path / "good.snap.age", key.recipient)
    loose = tmp_path / "loose.txt"
    shutil.copy(key.path, loose)
    os.chmod(loose, 0o644)
    r = _verify("--identity", loose, enc)
    assert r.returncode == 77 and r.stdout == "" and "readable or writable by group/other" in r.stderr, str(r)
    snap._assert_no_secrets(r, key.identity)

    broken = tmp_path / "broken.txt"
    broken.write_text("# created by hand\n" + key.identity[:-1] + ("Q" if key.identity[-1] != "Q" else "P") + "\n")
    os.chmod(broken, 0o600)
    h.LEDGER.secret(broken.read_text().splitlines()[1], "age test broken identity")
    r = _verify("--identity", broken, enc)
    assert r.returncode == 65 and "line 2" in r.stderr and "checksum" in r.stderr, str(r)
    snap._assert_no_secrets(r, key.identity, key.identity[:-1])

    r = _verify("--identity", keys["dr"].recipient, enc)  # a recipient is not an identity file
    assert r.returncode == 77 and "cannot open" in r.stderr, str(r)


# ---------------------------------------------------------------------------
# 3. Configuration errors are located
# ---------------------------------------------------------------------------

def test_bad_recipients_are_located_config_errors(config, tmp_path, keys):
    d = snap._snap_dir(tmp_path)
    tok = snap._secret_file(tmp_path / "tok", "s.placeholder000000000000")
    typo = keys["ops"].recipient[:-1] + ("q" if keys["ops"].recipient[-1] != "q" else "p")
    rfile = tmp_path / "recipients.txt"
    rfile.write_text(f"# ok\n{keys['dr'].recipient}\n{keys['dr'].identity}\n")
    cases = [
        (f'age_recipients = ["{keys["dr"].recipient}", "{typo}"]', "age_recipients", "entry 2"),
        (f'age_recipients_file = "{rfile}"', "age_recipients_file", f"{rfile}:3: "),
        (f'age_recipients_file = "{tmp_path}/none.txt"', "age_recipients_file", "does not exist"),
        (f'age_recipients = ["{keys["dr"].identity}"]', "age_recipients", "expected \"age1"),  # a pasted identity
    ]
    for line_text, key, needle in cases:
        cfg = config({"address": f"https://127.0.0.1:{h.free_port()}"})
        text = cfg.read_text() + f'\n[snapshot]\ndirectory = "{d}"\ntoken_file = "{tok}"\n{line_text}\n'
        cfg.write_text(text)
        line = text.splitlines().index(line_text) + 1
        r = h.run_cli(["config", "check", "--config", str(cfg)])
        assert r.returncode == h.EX_CONFIG, str(r)
        assert f"{cfg}:{line}: snapshot.{key}: " in r.stderr and needle in r.stderr, str(r)
        snap._assert_no_secrets(r, keys["dr"].identity)
