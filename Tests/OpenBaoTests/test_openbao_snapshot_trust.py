# SPDX-License-Identifier: Apache-2.0
"""Issue #10, item 4, against two real OpenBao 2.7 clusters: each with a vaultkeeper taking
scheduled snapshots and uploading them to one S3 bucket prefix (moto, SigV4 checked). Neither
prunes the other's snapshots: in the bucket an object counts as a cluster's only when it is named
for it and carries its `cluster_id`, which OpenBao reports in `sys/health` and vaultkeeper records
as `x-amz-meta-vaultkeeper-cluster-id` at upload."""

from __future__ import annotations

from pathlib import Path

import bao_harness as bh
import snapshot_support as ss
import test_snapshot as ts
import test_snapshot_s3 as t3
import vk_harness as h
from test_snapshot_s3 import BUCKET, moto  # noqa: F401  (module fixture)


def _config(config, node: bh.BaoNode, tmp_path: Path, name: str, m: t3.S3Peer) -> Path:
    work = tmp_path / name
    work.mkdir()
    snaps = ts._snap_dir(tmp_path, f"snaps-{name}")
    path = ss.with_snapshot(config(node, name=f"{name}.toml"), {
        "directory": str(snaps), "token_file": str(ss.secret_file(work / "token", node.root_token)), "min_free_space": "1MiB",
        "interval": "2s", "keep_last": 2, "state_file": str(work / "snapshot-state.json")})
    table = t3._s3_table(work, m)
    path.write_text(path.read_text() + "\n[snapshot.s3]\n" + "\n".join(f"{k} = {h._toml_value(v)}" for k, v in table.items()) + "\n")
    return path


def test_two_real_clusters_sharing_a_prefix_do_not_prune_each_other(baos, daemons, config, tmp_path, moto):
    m = t3._emptied(moto)
    clusters = []
    for name in ("east", "west"):
        node = baos(name)
        node.unseal_with(node.operator_init(1, 1))
        node.wait_active()
        status, health = node.request("GET", "sys/health")
        assert status == 200, (status, health)
        clusters.append((name, node, health["cluster_name"], health["cluster_id"]))
    assert clusters[0][3] != clusters[1][3]
    ds = [daemons(_config(config, node, tmp_path, name, m), name=name) for name, node, _, _ in clusters]
    for d in ds:
        d.wait_entry("snapshot_uploaded", count=4, timeout=60)
    for d in ds:
        assert d.stop(timeout=20) == 0
    keys = m.keys()
    for name, _, cluster_name, _ in clusters:
        named = [k for k in keys if k.startswith(f"{m.prefix}vaultkeeper-{cluster_name}-")]
        # keep_last = 2 for each cluster (3 when the stop came between an upload and its retention).
        assert 2 <= len(named) <= 3, (name, sorted(keys))
    owners: dict[str, list[str]] = {}
    for key in keys:
        metadata = {k.lower(): v for k, v in m.admin.head_object(Bucket=BUCKET, Key=key)["Metadata"].items()}
        owners.setdefault(metadata.get("vaultkeeper-cluster-id", "none"), []).append(key)
    for (name, _, cluster_name, cluster_id), d in zip(clusters, ds):
        mine = owners.get(cluster_id, [])
        assert 2 <= len(mine) <= 3, (name, owners)
        assert all(k.startswith(f"{m.prefix}vaultkeeper-{cluster_name}-") for k in mine), mine
        other = next(c for c in clusters if c[0] != name)[2]
        assert not [e for e in d.entries("snapshot_retention_deleted") if other in e.text], d.stderr()
    assert set(owners) == {c[3] for c in clusters}, owners
