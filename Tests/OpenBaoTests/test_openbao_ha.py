# SPDX-License-Identifier: Apache-2.0
"""High availability against a real 3-node OpenBao 2.7 Raft cluster on loopback (cluster_support.py):
one vaultkeeper per node, and one vaultkeeper watching all three through `[[peer]]`s. All three
`bao server` processes restarted at once (SIGTERM, SIGKILL, and SIGINT as OpenBao's own unit
stops it) come back sealed and are unsealed by the daemons; with the snapshot duty configured on
every node's daemon only the active node's daemon takes scheduled snapshots, a new leader's daemon
takes over when the leader is stopped, and the old leader, started again, is unsealed by its daemon.
Also: a node joining the cluster (`retry_join`) is unsealed by its daemon without a wrong-key
alarm, and `snapshot now` asked of a standby is forwarded by OpenBao.

The cluster is formed once for the module (about 20 s) and healed before each test. Nothing here
asserts how fast anything happens: every wait is for an event, with a generous bound (electing a
leader after a full restart takes about 20 s on an idle machine)."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

import bao_harness as bh
import vk_harness as h
from cluster_support import BaoCluster

POLICY = h.REPO / "deploy" / "vault-policy-snapshot.hcl"
SNAP_SUFFIX = ".snap"
ELECTION = 90  # generous: ~20 s after a full restart when idle, more on a loaded machine
UNSEAL = 60


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, pki):
    c = BaoCluster(tmp_path_factory.mktemp("ha"), pki)
    try:
        c.form()
        yield c
    finally:
        c.close()


@pytest.fixture
def ha(cluster) -> BaoCluster:
    """The module's cluster, whole again: three running, unsealed voters with a leader."""
    cluster.heal(timeout=ELECTION)
    return cluster


def _add_snapshot(cfg: Path, table: dict) -> Path:
    """The `config` fixture's file plus a `[snapshot]` table (the fixture renders none)."""
    cfg.write_text(cfg.read_text() + "\n[snapshot]\n" + "".join(f"{k} = {h._toml_value(v)}\n" for k, v in table.items()))
    return cfg


def _per_node_daemons(ha: BaoCluster, daemons, config, keyfile, snapshot=None, metrics_root: Path | None = None
                      ) -> list[h.Daemon]:
    """One vaultkeeper per node, each with `[vault] address` = its own node and its own copy of
    the key file (no root token in it), as one daemon per machine would run."""
    out = []
    for n in ha.nodes:
        mdir = None
        if metrics_root is not None:
            mdir = metrics_root / n.node_id
            mdir.mkdir(parents=True)
        cfg = config(n, key_file=keyfile(ha.init, name=f"keys-{n.node_id}.json", drop_root_token=True),
                     name=f"vk-{n.node_id}.toml", metrics={"textfile_dir": str(mdir)} if mdir else None)
        if snapshot is not None:
            _add_snapshot(cfg, snapshot(n))
        out.append(daemons(cfg, name=f"vk-{n.node_id}", metrics_dir=mdir))
    return out


ACTIVE_SAMPLE = re.compile(r'^vaultkeeper_vault_health_status\{node="([^"]+)",state="active"\} (\d+)$', re.M)


def _active_samples(ds: list[h.Daemon]) -> dict[str, int]:
    """`vaultkeeper_vault_health_status{state="active"}` from every daemon's textfile, by node."""
    out: dict[str, int] = {}
    for d in ds:
        for node, value in ACTIVE_SAMPLE.findall(d.read_metrics() or ""):
            out[node] = int(value)
    return out


def _wait_roles(ha: BaoCluster, ds: list[h.Daemon], leader: bh.BaoNode) -> None:
    """Each per-node daemon reports what its node is: the leader's `active`, the others `standby`."""
    for n, d in zip(ha.nodes, ds):
        want = "active" if n is leader else "standby"
        d.wait_state(lambda s, want=want: s["nodes"][0]["state"] == want, timeout=30,
                     what=f"{d.name} reporting {want}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_whole_cluster_restarted_at_once_each_node_unsealed_by_its_own_daemon(ha, daemons, config, keyfile, sig,
                                                                              tmp_path):
    ds = _per_node_daemons(ha, daemons, config, keyfile, metrics_root=tmp_path / "textfile")
    for d in ds:
        d.wait_ready(timeout=15)
    _wait_roles(ha, ds, ha.wait_leader(timeout=ELECTION))

    starts = [n.starts for n in ha.nodes]
    rounds = 2
    for r in range(1, rounds + 1):
        ha.restart_all(sig)  # every process signalled before any is waited for
        ha.wait_all_unsealed(timeout=UNSEAL)
        for n, d in zip(ha.nodes, ds):
            d.wait_entry("unsealed", contains=f"unsealed vault at {n.address} (sealed after a restart)", count=r,
                         timeout=UNSEAL)
        # Unsealed, the three elect a leader among themselves; the daemons follow the roles.
        leader = ha.wait_leader(timeout=ELECTION)
        _wait_roles(ha, ds, leader)
        # What VaultNoActiveNode sums over all vaultkeepers: exactly one active sample, the
        # leader's, though two of the three daemons never see an active node of their own.
        want = {n.address: int(n is leader) for n in ha.nodes}
        h.wait_until(lambda: _active_samples(ds) == want, 30, what=f"metrics {want}")

    for n, d, before in zip(ha.nodes, ds, starts):
        assert n.starts == before + rounds
        assert len(d.entries("unsealed", contains="sealed after a restart")) == rounds, d.stderr()
        assert not d.entries("deliberate_seal"), d.stderr()
        assert not d.entries("wrong_key"), d.stderr()
        assert not d.entries("unseal_failed"), d.stderr()
        # The node was unsealed at the start (by the harness), then by this daemon after each
        # restart: exactly the threshold each time, nothing sent to an unsealed node.
        report = d.read_state()
        assert report["nodes"][0]["unseal_attempts"] == {"success": 3 * rounds}, report
        assert d.running()


def test_one_daemon_with_peers_unseals_the_whole_cluster_after_a_full_restart(ha, daemons, config, keyfile):
    """`[vault]` = node1, `[[peer]]` = node2 and node3; the processes stopped with SIGINT, as
    OpenBao's packaged unit (`KillSignal=SIGINT`) stops them on `systemctl restart`."""
    first, *others = ha.nodes
    d = daemons(config(first, key_file=keyfile(ha.init, drop_root_token=True), peers=others), name="vk-peers")
    d.wait_ready(timeout=15)
    d.wait_status("3/3 nodes ok", timeout=30)
    report = d.read_state()
    assert [n["address"] for n in report["nodes"]] == ha.addresses()

    ha.restart_all(signal.SIGINT)
    ha.wait_all_unsealed(timeout=UNSEAL)
    for n in ha.nodes:
        d.wait_entry("unsealed", contains=f"unsealed vault at {n.address} (sealed after a restart)", timeout=UNSEAL)
    leader = ha.wait_leader(timeout=ELECTION)
    report = d.wait_state(lambda s: sorted(x["state"] for x in s["nodes"]) == ["active", "standby", "standby"],
                          timeout=30, what="one active, two standbys")
    assert report["nodes"][ha.nodes.index(leader)]["state"] == "active", report
    d.wait_status("3/3 nodes ok", timeout=30)
    assert all(x["unseal_attempts"] == {"success": 3} for x in report["nodes"]), report
    assert not d.entries("deliberate_seal"), d.stderr()
    assert not d.entries("wrong_key"), d.stderr()
    assert len(d.entries("unsealed")) == 3, d.stderr()


def test_a_node_joining_the_cluster_is_unsealed_by_its_daemon_without_a_wrong_key_alarm(baos, daemons, config, keyfile):
    """A new node with `retry_join` and its own vaultkeeper (a node added to the cluster, or one
    rebuilt with empty storage). Once its join has reached the leader it takes the shares, answers
    the one that completes the threshold with "sealed, progress 0" (the request returns when the
    join is done), and unseals itself a moment later. The daemon waits for that instead of sending
    a second round, which OpenBao answers with "crypto/aes: invalid key size 0": taken for a wrong
    key, that was a critical alert and a 10-minute hold for a node that was fine."""
    lead = baos("lead")
    init = lead.operator_init(5, 3)
    lead.unseal_with(init)
    lead.wait_active()
    joiner = baos("joiner", join=[lead], run=False)
    d = daemons(config(joiner, key_file=keyfile(init, name="keys-joiner.json", drop_root_token=True),
                       name="vk-joiner.toml"), name="vk-joiner")
    joiner.start()
    joiner.wait_unsealed(timeout=UNSEAL)
    d.wait_entry("unsealed", contains=f"unsealed vault at {joiner.address} (sealed at start-up) with 3 shares",
                 timeout=30)
    report = d.wait_state(lambda s: s["nodes"][0]["state"] == "standby", timeout=30, what="the joined node a standby")
    assert report["nodes"][0]["unseal_attempts"] == {"success": 3}, report  # one round, no second one
    assert report["nodes"][0].get("hold") is None, report
    for mid in ("wrong_key", "unseal_failed", "deliberate_seal"):
        assert not d.entries(mid), d.stderr()
    status, body = lead.request("GET", "sys/storage/raft/configuration", token=lead.root_token)
    assert status == 200 and "joiner" in {s["node_id"] for s in body["data"]["config"]["servers"]}, body


def _snapshots(directory: Path) -> list[str]:
    names = sorted(p.name for p in directory.iterdir())
    assert all(n.startswith("vaultkeeper-") and n.endswith(SNAP_SUFFIX) for n in names), names
    return names


def _raft_index(name: str) -> int:
    return int(name[: -len(SNAP_SUFFIX)].rsplit("-", 1)[1])


def _snapshot_table(tmp_path: Path, n: bh.BaoNode, approle: tuple[str, str], **more) -> dict:
    """A `[snapshot]` table for node `n`'s vaultkeeper: its own directory, ledger and AppRole
    credential files (mode 0600)."""
    directory = tmp_path / f"snaps-{n.node_id}"
    directory.mkdir(mode=0o700)
    creds = tmp_path / f"creds-{n.node_id}"
    creds.mkdir(mode=0o700)
    for name, value in zip(("role_id", "secret_id"), approle):
        (creds / name).write_text(value + "\n")
        (creds / name).chmod(0o600)
    table = {"directory": str(directory), "role_id_file": str(creds / "role_id"),
             "secret_id_file": str(creds / "secret_id"), "min_free_space": "1MiB",
             "state_file": str(tmp_path / f"ledger-{n.node_id}.json")}
    table.update(more)
    return table


def test_only_the_active_nodes_daemon_snapshots_and_a_new_leaders_daemon_takes_over(ha, daemons, config, keyfile,
                                                                                    tmp_path):
    approle = ha.enable_approle(POLICY)
    dirs: dict[str, Path] = {}

    def snapshot_table(n: bh.BaoNode) -> dict:
        table = _snapshot_table(tmp_path, n, approle, interval="2s")
        dirs[n.node_id] = Path(table["directory"])
        return table

    leader = ha.wait_leader(timeout=ELECTION)
    ds = _per_node_daemons(ha, daemons, config, keyfile, snapshot=snapshot_table)
    by_node = dict(zip((n.node_id for n in ha.nodes), ds))
    standbys = [n for n in ha.nodes if n is not leader]

    # The leader's daemon takes one at once (no ledger yet) and the next 2 s later.
    taken = by_node[leader.node_id].wait_entry("snapshot_taken", count=2, timeout=60)
    assert "verified" in taken[0].text and "raft index" in taken[0].text, taken[0].text
    cluster_name = leader.request("GET", "sys/health")[1]["cluster_name"]
    files = _snapshots(dirs[leader.node_id])
    assert len(files) >= 2 and all(f.startswith(f"vaultkeeper-{cluster_name}-") for f in files), files
    # The standbys' daemons, due at once as well, wait: phase standby, no file, nothing about
    # snapshots in the journal (not even a stale alert) or in STATUS.
    for n in standbys:
        d = by_node[n.node_id]
        d.wait_state(lambda s: s.get("snapshot", {}).get("phase") == "standby", timeout=30,
                     what=f"{d.name}: snapshot phase standby")
        assert not _snapshots(dirs[n.node_id])
        for mid in ("snapshot_taken", "snapshot_failed", "snapshots_stale"):
            assert not d.entries(mid), d.stderr()
        assert all("snapshot" not in st for st in d.statuses()), d.statuses()

    # The leader stopped (SIGTERM, as `systemctl stop`): the two others elect a new one, and its
    # daemon takes the next snapshot (its own was overdue all along).
    leader.stop(signal.SIGTERM)
    old_daemon = by_node[leader.node_id]
    old_count = len(old_daemon.entries("snapshot_taken"))
    last_old_index = max(_raft_index(f) for f in _snapshots(dirs[leader.node_id]))
    new_leader = ha.wait_leader(among=standbys, timeout=ELECTION)
    new_daemon = by_node[new_leader.node_id]
    taken = new_daemon.wait_entry("snapshot_taken", timeout=60)
    new_files = _snapshots(dirs[new_leader.node_id])
    assert new_files and all(f.startswith(f"vaultkeeper-{cluster_name}-") for f in new_files), new_files
    # The same cluster's Raft log, continued: never behind what the old leader saved.
    assert min(_raft_index(f) for f in new_files) >= last_old_index, (new_files, last_old_index)
    third = next(n for n in standbys if n is not new_leader)
    assert not _snapshots(dirs[third.node_id])
    assert not by_node[third.node_id].entries("snapshot_taken")

    # The old leader started again comes back sealed; its own daemon unseals it, and it rejoins
    # as a standby, so its daemon does not snapshot again while the new leader's daemon does.
    leader.start()
    old_daemon.wait_entry("unsealed", contains=f"unsealed vault at {leader.address} (sealed after a restart)",
                          timeout=UNSEAL)
    leader.wait_unsealed(timeout=UNSEAL)
    old_daemon.wait_state(lambda s: s["nodes"][0]["state"] == "standby"
                          and s.get("snapshot", {}).get("phase") == "standby", timeout=60,
                          what="the old leader's daemon: standby")
    after = len(new_daemon.entries("snapshot_taken"))
    new_daemon.wait_entry("snapshot_taken", count=after + 2, timeout=60)
    assert len(old_daemon.entries("snapshot_taken")) == old_count, old_daemon.stderr()
    assert not by_node[third.node_id].entries("snapshot_taken")
    assert ha.active() == [new_leader]
    for d in ds:
        assert not d.entries("deliberate_seal"), d.stderr()
        assert d.running()


def test_snapshot_now_asked_of_a_standby_is_forwarded_by_openbao(ha, config, tmp_path):
    """`vaultkeeper snapshot now` pointed at a standby: OpenBao forwards the AppRole login and the
    snapshot GET to the active node itself, or, while a standby has no forwarding connection yet
    (seen right after a leader change), answers the GET with a 307 to the active node's
    api_addr. The other nodes are configured as [[peer]]s, as a cluster's vaultkeeper has them,
    so that redirect is followed (only to a configured node, issue #10). Either way the archive
    is the cluster's and verifies."""
    approle = ha.enable_approle(POLICY)
    leader = ha.wait_leader(timeout=ELECTION)
    cluster_name = leader.request("GET", "sys/health")[1]["cluster_name"]
    for n in (x for x in ha.nodes if x is not leader):
        assert n.health()[0] == 429, n.health()  # a standby, as vaultkeeper's health query sees it
        table = _snapshot_table(tmp_path, n, approle)
        directory = Path(table["directory"])
        peers = [x for x in ha.nodes if x is not n]
        cfg = _add_snapshot(config(n, name=f"now-{n.node_id}.toml", peers=peers), table)
        r = h.run_cli(["snapshot", "now", "--config", str(cfg)], timeout=60)
        assert r.returncode == 0, r
        files = _snapshots(directory)
        assert len(files) == 1 and files[0].startswith(f"vaultkeeper-{cluster_name}-"), files
        assert f"saved {directory / files[0]}: " in r.stdout and "verified" in r.stdout, r
        v = h.run_cli(["snapshot", "verify", str(directory / files[0])])
        assert v.returncode == 0 and ": OK (index " in v.stdout, v
