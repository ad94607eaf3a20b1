#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes a Raft snapshot archive the way hashicorp/raft-snapshot does (gzip of a tar holding
meta.json, state.bin, SHA256SUMS, SHA256SUMS.sealed, mode 0600), optionally damaged, for the
verifier tests: make_snapshot.py OUT [--state-bytes N] [--fault KIND]."""
import argparse, gzip, hashlib, io, json, os, tarfile, time

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--state-bytes", type=int, default=100_000)
ap.add_argument("--fault", default="none")
args = ap.parse_args()

state = os.urandom(args.state_bytes)
meta = json.dumps({"Version": 1, "ID": "2-1234-1763800000000", "Index": 1234, "Term": 2, "Peers": "ka5ub2RlMQ==",
                   "Configuration": {"Servers": [{"Suffrage": 0, "ID": "node1", "Address": "10.0.0.1:8201"}]},
                   "ConfigurationIndex": 1, "Size": len(state) + (1 if args.fault == "size-mismatch" else 0)}).encode() + b"\n"
sums = {"meta.json": hashlib.sha256(meta).hexdigest(), "state.bin": hashlib.sha256(state).hexdigest()}
if args.fault == "bad-hash":
    sums["state.bin"] = "0" * 64
if args.fault == "unlisted":
    del sums["state.bin"]
sums_text = "".join(f"{h}  {n}\n" for n, h in sums.items()).encode()
entries = [("meta.json", meta), ("state.bin", state), ("SHA256SUMS", sums_text), ("SHA256SUMS.sealed", b"\x0a\x20sealed-blob")]
if args.fault == "extra-entry":
    entries.append(("evil.sh", b"#!/bin/sh\n"))
if args.fault == "missing-sealed":
    entries = entries[:3]

buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
    for name, data in entries:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o600, int(time.time())
        tar.addfile(info, io.BytesIO(data))
raw = buf.getvalue()
if args.fault == "no-end-marker":
    raw = raw[: raw.rfind(b"sealed-blob") + 512 - (raw.rfind(b"sealed-blob") % 512)]
blob = gzip.compress(raw)
if args.fault == "truncated":
    blob = blob[: len(blob) // 2]
if args.fault == "corrupt-byte":
    b = bytearray(blob)
    b[len(b) // 2] ^= 0x40
    blob = bytes(b)
if args.fault == "empty":
    blob = b""
if args.fault == "not-gzip":
    blob = b"<html>Service Unavailable</html>"
with open(args.out, "wb") as f:
    f.write(blob)
