# SPDX-License-Identifier: Apache-2.0
"""Helpers for the snapshot tests against real OpenBao (test_openbao_snapshots.py): the AppRole
set-up run exactly as deploy/vault-policy-snapshot.hcl's comment prints it, OpenBao's own file
audit log (what the server saw: logins, renewals, snapshot requests and their errors), and
config files with a [snapshot] table."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import bao_harness as bh
import vk_harness as h

POLICY = h.REPO / "deploy" / "vault-policy-snapshot.hcl"
INSTALLED_POLICY = "/usr/share/doc/vaultkeeper/examples/vault-policy-snapshot.hcl"
SNAPSHOT_API = "sys/storage/raft/snapshot"


# ---------------------------------------------------------------------------
# The operator's AppRole set-up, from the policy file's own comment
# ---------------------------------------------------------------------------

def policy_comment_commands(policy: Path = POLICY) -> list[str]:
    """The shell commands in the policy file's comment: the indented `#   ` lines, with `\\`
    continuations joined."""
    commands: list[str] = []
    pending = ""
    for line in policy.read_text().splitlines():
        if not line.startswith("#   "):
            continue
        text = line[4:].strip()
        pending = f"{pending} {text}".strip() if pending else text
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        commands.append(pending)
        pending = ""
    assert not pending, f"unterminated continuation in {policy}: {pending!r}"
    return commands


@dataclass
class AppRole:
    role: str
    role_id_file: Path
    secret_id_file: Path
    role_id: str
    secret_id: str
    commands: list[str]


def approle_from_policy_comment(node: bh.BaoNode, workdir: Path, *, token_ttl: Optional[str] = None,
                                token_max_ttl: Optional[str] = None) -> AppRole:
    """Runs the comment's commands with a real shell in `workdir`, as an operator with the root
    token would: `bao` for `vault` (as the comment says for OpenBao), the repository's policy file
    for the installed path. `token_ttl`/`token_max_ttl` replace the comment's values (and only
    those) for the renewal tests. Returns the role ID and secret ID files the commands wrote."""
    workdir.mkdir(parents=True, exist_ok=True)
    commands = policy_comment_commands()
    assert commands and all(c.split()[0] in ("vault", "umask") for c in commands), commands
    script = []
    for c in commands:
        if c.startswith("vault "):
            c = shlex.quote(bh.bao_binary()) + c[len("vault"):]
        c = c.replace(INSTALLED_POLICY, shlex.quote(str(POLICY)))
        if token_ttl is not None:
            c = re.sub(r"\btoken_ttl=\S+", f"token_ttl={token_ttl}", c)
        if token_max_ttl is not None:
            c = re.sub(r"\btoken_max_ttl=\S+", f"token_max_ttl={token_max_ttl}", c)
        script.append(c)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    env.update(BAO_ADDR=node.address, BAO_CACERT=node.ca_file, BAO_TOKEN=node.root_token or "")
    p = subprocess.run(["bash", "-euo", "pipefail", "-c", "\n".join(script)], cwd=workdir, env=env,
                       capture_output=True, timeout=60)
    assert p.returncode == 0, f"the policy comment's set-up failed ({p.returncode}):\n" + "\n".join(script) + \
        f"\n{p.stderr.decode(errors='replace')}"
    role_line = next(c for c in commands if " auth/approle/role/" in c and " token_policies=" in c)
    role = re.search(r"auth/approle/role/([^/\s]+)", role_line).group(1)
    # The files the comment's redirections wrote; the names are the comment's own.
    role_id_file = workdir / re.search(r"role-id > (\S+)", " ".join(commands)).group(1)
    secret_id_file = workdir / re.search(r"secret-id > (\S+)", " ".join(commands)).group(1)
    role_id = role_id_file.read_text().strip()
    secret_id = secret_id_file.read_text().strip()
    h.LEDGER.secret(role_id, "AppRole role ID (policy comment set-up)")
    h.LEDGER.secret(secret_id, "AppRole secret ID (policy comment set-up)")
    return AppRole(role, role_id_file, secret_id_file, role_id, secret_id, script)


# ---------------------------------------------------------------------------
# OpenBao's audit log: what the server itself saw
# ---------------------------------------------------------------------------

def audit_stanza(path: Path) -> str:
    """A declarative file audit device (OpenBao 2.x creates audit devices from its config file)."""
    return f'audit "file" "vk-test" {{\n  options {{\n    file_path = "{path}"\n  }}\n}}\n'


def audit_records(path: Path) -> list[dict]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass  # a line being written right now
    return out


def audit_responses(path: Path, api_path: str, *, operation: Optional[str] = None) -> list[dict]:
    return [r for r in audit_records(path) if r.get("type") == "response"
            and (r.get("request") or {}).get("path") == api_path
            and (operation is None or r["request"].get("operation") == operation)]


# ---------------------------------------------------------------------------
# Config files and small operator steps
# ---------------------------------------------------------------------------

def with_snapshot(path: Path, table: dict) -> Path:
    """Appends a [snapshot] table to a config file written by the conftest's `config` fixture."""
    lines = ["", "[snapshot]"] + [f"{k} = {h._toml_value(v)}" for k, v in table.items()]
    path.write_text(path.read_text() + "\n".join(lines) + "\n")
    return path


def secret_file(path: Path, value: str) -> Path:
    path.write_text(value + "\n")
    os.chmod(path, 0o600)
    return path


def create_token(node: bh.BaoNode, label: str, *policies: str, ttl: str = "1h") -> str:
    """`bao token create` with the root token; the new token is registered as a secret."""
    args = ["token", "create", "-format=json", f"-ttl={ttl}"] + [f"-policy={p}" for p in policies]
    token = json.loads(node.cli(*args, token=node.root_token).stdout)["auth"]["client_token"]
    h.LEDGER.secret(token, label)
    return token


def kv_get(node: bh.BaoNode, path: str, token: str) -> Optional[dict]:
    """`bao kv get` of a KV v2 secret: its data, or None when it is not there."""
    p = node.cli("kv", "get", "-format=json", path, token=token, check=False)
    if p.returncode != 0:
        return None
    return json.loads(p.stdout)["data"]["data"]


def token_works(node: bh.BaoNode, token: str) -> bool:
    status, _ = node.request("GET", "auth/token/lookup-self", token=token)
    return status == 200


def cluster_name(node: bh.BaoNode) -> str:
    status, body = node.request("GET", "sys/health")
    assert status == 200, (status, body)
    return body["cluster_name"]


def unseal_key_file(path: Path, init: dict) -> Path:
    """The operator's key file: `bao operator init -format=json` without the root token."""
    return h.write_key_json(path, init, drop_root_token=True)


def describe(x: Any) -> str:
    return json.dumps(x, indent=1, default=str)[:4000]
