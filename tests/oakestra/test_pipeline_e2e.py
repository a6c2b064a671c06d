"""The whole FLOps pipeline through the Oakestra backend, against the contract server.

One environment for the module: the contract server (a fake Oakestra root orchestrator whose
"workers" run instances as local processes, with two active clusters), Mosquitto and the real
manager process (``python -m flops_manager`` with its embedded database) configured for
``oakestra://``. The manager deploys everything through Oakestra, the shared MLflow tracking
server included. Single-host settings of the backend make that work on one machine:

* ``FLOPS_BUILD_TARGET=environment`` + ``FLOPS_OAKESTRA_ALLOW_ENVIRONMENT_IMAGES=true``: the
  builder makes a virtualenv and services get ``env://<dir>`` images, which the contract server
  runs with that environment's interpreter;
* ``FLOPS_OAKESTRA_RR_SUBNET=127.30.0.0/16`` (``127.31.0.0/16`` on a second pytest worker):
  round-robin service IPs are loopback addresses; the contract server makes each instance
  listen on its service's address;

Like a real worker, the contract server mounts nothing into an instance: each gets its SLA's
environment and nothing else of the manager's. Every credential therefore reaches components
through enrollment (an enrollment token in the SLA, exchanged at the manager's API), and the
broker is Mosquitto with the dynamic security plugin, where each enrolled instance gets its
own login. The tests scan every SLA for every credential the manager holds (read from its
database).

Every wait has a deadline and fails naming what it waited for.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pymongo
import pytest
import requests
from mlflow.tracking import MlflowClient
from sklearn.datasets import load_digits

from flops_dataplane.node_agent import NodeAgent, NodeAgentSettings, start_agent
from flops_manager.adapters.oakestra import addresses, names
from flops_manager.adapters.oakestra.client import RootOrchestratorClient
from flops_manager.adapters.oakestra.orchestrator import OakestraOrchestrator
from flops_manager.adapters.oakestra.settings import OakestraSettings
from flops_manager.cli import data
from flops_manager.cli.client import ApiClient
from flops_manager.cli.project import summary
from flops_manager.identity import grants
from tests.fixtures.repos import git_repo, processes_mentioning
from tests.fixtures.servers import MosquittoServer, NxServer, free_port, wait_for
from tests.oakestra.conftest import loopback_rr_subnet
from tests.oakestra.contract_server import ContractServer
from tests.oakestra.test_sla import validate_both

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "examples" / "digits_sklearn"
TOKEN = "tok-oak-e2e"
RR_SUBNET = loopback_rr_subnet()
CLUSTERS = ("clusterA", "clusterB")
TRACKING = "flops-tracking-server"
MQTT_ADMIN = ("flops-manager", "mqtt-admin-pass-4e1f0c")
REGISTRY_PASSWORD = "registry-pass-9b7d21"
EDGE_PASSWORD = "registry-edge-pass-51c0e7"
OAKESTRA_PASSWORD = "Admin"
SLA_PATHS = ("/api/application/", "/api/service/")


# ---------------------------------------------------------------------------- helpers


def sla_services(server: ContractServer, pid: str) -> list[dict[str, Any]]:
    """Every microservice of project ``pid`` the manager asked the contract server for."""
    found = []
    app_name = names.application_name(pid)
    for record in list(server.state.requests):
        if record.method != "POST" or record.path != "/api/service/" or not record.body:
            continue
        for application in json.loads(record.body).get("applications", []):
            if application.get("application_name") == app_name:
                found.extend(application.get("microservices", []))
    return found


def env_of(service: dict[str, Any]) -> dict[str, str]:
    return dict(entry.split("=", 1) for entry in service.get("environment", []))


class Env:
    """The running environment: contract server, broker, manager and its REST API."""

    def __init__(self, server: ContractServer, manager: subprocess.Popen[bytes], base: str,
                 settings: OakestraSettings, directory: Path, repo: str, mongo: str) -> None:
        self.server = server
        self.manager = manager
        self.base = base + "/api/v1"
        self.headers = {"Authorization": f"Bearer {TOKEN}"}
        self.settings = settings
        self.directory = directory
        self.repo = repo
        self.mongo = mongo

    def stored_project(self, pid: str) -> dict[str, Any]:
        """The manager's own record of ``pid`` (with its secrets and grants)."""
        mongo: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
            self.mongo, serverSelectionTimeoutMS=5000)
        with mongo as client:
            found = client["flops"]["projects"].find_one({"_id": pid})
        assert found is not None, pid
        return dict(found)

    def manager_credentials(self) -> dict[str, str]:
        """Every credential the manager holds: its settings' and every project's secrets."""
        held = {"API token": TOKEN, "broker admin": MQTT_ADMIN[1],
                "registry": REGISTRY_PASSWORD, "Oakestra": OAKESTRA_PASSWORD,
                "registry edge login": EDGE_PASSWORD}
        mongo: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
            self.mongo, serverSelectionTimeoutMS=5000)
        with mongo as client:
            for doc in client["flops"]["projects"].find({}):
                for key, value in (doc.get("secrets") or {}).items():
                    held[f"{doc['_id']} {key}"] = value
        return held

    def manager_log(self, *, full: bool = False) -> str:
        path = self.directory / "manager.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return text if full else text[-3000:]

    def submit(self, spec: dict[str, Any]) -> str:
        response = requests.post(f"{self.base}/projects", headers=self.headers, timeout=30,
                                 json={"repository": {"url": self.repo}, "spec": spec})
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def get(self, path: str, **params: Any) -> requests.Response:
        return requests.get(f"{self.base}/{path}", params=params, headers=self.headers,
                            timeout=30)

    def project(self, pid: str) -> dict[str, Any]:
        response = self.get(f"projects/{pid}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def wait(self, pid: str, done: Callable[[dict[str, Any]], bool], *, timeout: float,
             what: str, fail_on: tuple[str, ...] = ("failed", "cancelled")) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        project = self.project(pid)
        while not done(project):
            if project["phase"] in fail_on:
                raise AssertionError(f"project {pid} {project['phase']} while waiting for "
                                     f"{what}: {project['last_error']}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{what} not reached within {timeout:.0f} s: phase {project['phase']}, "
                    f"error {project['last_error']}, pending {project['pending_actions']}\n"
                    f"manager log:\n{self.manager_log()}")
            assert self.manager.poll() is None, f"the manager exited:\n{self.manager_log()}"
            time.sleep(0.5)
            project = self.project(pid)
        return project

    def orchestrator(self) -> OakestraOrchestrator:
        """A second backend client (as the manager's), for checks from the test."""
        return OakestraOrchestrator(RootOrchestratorClient(self.settings), self.settings)


def small_spec(name: str, **training: Any) -> dict[str, Any]:
    """A project whose learners load the repository's own data (mock data needs FLOps nodes:
    see :func:`test_mock_data_is_written_to_the_nodes_by_a_provider_pinned_to_each`)."""
    return {
        "name": name,
        "training": {"rounds": 2, "learners": 3, "connect_timeout_s": 120, **training},
    }


def leftovers(oak: Env, pid: str) -> list[str]:
    """Project ``pid``'s application, services and processes that still exist."""
    app_name = names.application_name(pid)
    state = oak.server.state
    with state.lock:
        apps = [a["application_name"] for a in state.apps.values()
                if a["application_name"] == app_name]
        jobs = [j["microservice_name"] for j in state.jobs.values()
                if j["app_name"] == app_name or pid in "".join(j.get("environment") or [])]
    return apps + jobs + [f"pid {p}" for p in processes_mentioning(pid)]


def delete_and_wait_gone(oak: Env, pid: str) -> None:
    """Delete project ``pid`` through the API; wait until nothing of it is left."""
    response = requests.delete(f"{oak.base}/projects/{pid}", headers=oak.headers, timeout=30)
    assert response.status_code == 202, response.text
    wait_for(lambda: oak.get(f"projects/{pid}").status_code == 404, timeout=60,
             what=f"project {pid} deleted")
    deadline = time.monotonic() + 60
    while leftovers(oak, pid):
        assert time.monotonic() < deadline, f"left behind by the deletion: {leftovers(oak, pid)}"
        time.sleep(0.5)


# ---------------------------------------------------------------------------- environment


@contextlib.contextmanager
def environment(directory: Path, *, version: str = "v0.4.411",
                clusters: tuple[str, ...] = CLUSTERS) -> Iterator[Env]:
    """Contract server of Oakestra ``version``, broker and manager in ``directory``."""
    repo = git_repo(directory / "repos" / "digits", DIGITS).as_uri()
    mongo = NxServer(directory / "mongo").start()
    server = ContractServer(directory / "oakestra", port=free_port(), version=version).start()
    for name in clusters:
        server.state.add_cluster(name)
    broker = MosquittoServer(directory / "mosquitto", dynsec=MQTT_ADMIN).start()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOPS_")}
    env.update({
        "FLOPS_PORT": str(port),
        "FLOPS_DATA_DIR": str(directory / "manager"),
        "FLOPS_ORCHESTRATOR_URI": server.uri,
        "FLOPS_MQTT_URL": broker.url,
        "FLOPS_MQTT_USERNAME": MQTT_ADMIN[0],
        "FLOPS_MQTT_PASSWORD": MQTT_ADMIN[1],
        "FLOPS_BROKER_ACCOUNTS": "mosquitto-dynsec",
        "FLOPS_MONGO_URL": mongo.url,
        "FLOPS_REGISTRY_USERNAME": "flops-push",
        "FLOPS_REGISTRY_PASSWORD": REGISTRY_PASSWORD,
        "FLOPS_REGISTRY_EDGE_USERNAME": "flops-edge",
        "FLOPS_REGISTRY_EDGE_PASSWORD": EDGE_PASSWORD,
        "FLOPS_API_TOKENS": json.dumps({TOKEN: "alice"}),
        "FLOPS_BUILD_TARGET": "environment",
        "FLOPS_ALLOW_LOCAL_REPOS": "true",
        "FLOPS_RECONCILE_INTERVAL_S": "0.5",
        "FLOPS_ACTION_BACKOFF_S": "0.5",
        "FLOPS_OAKESTRA_USERNAME": "Admin",
        "FLOPS_OAKESTRA_PASSWORD": OAKESTRA_PASSWORD,
        "FLOPS_OAKESTRA_VERSION": version,
        "FLOPS_OAKESTRA_RR_SUBNET": RR_SUBNET,
        "FLOPS_OAKESTRA_ALLOW_ENVIRONMENT_IMAGES": "true",
        "FLOPS_OAKESTRA_BACKOFF_S": "0.05",
        "FLOPS_OAKESTRA_BACKOFF_MAX_S": "0.2",
    })
    log = (directory / "manager.log").open("ab")
    manager = subprocess.Popen([sys.executable, "-m", "flops_manager"], env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    settings = OakestraSettings.model_validate({
        "base_url": server.url, "username": "Admin", "password": "Admin",
        "rr_subnet": RR_SUBNET, "allow_environment_images": True, "version": version,
    })
    oak_env = Env(server, manager, f"http://127.0.0.1:{port}", settings, directory, repo,
                  mongo.url)
    try:
        wait_for(lambda: requests.get(f"http://127.0.0.1:{port}/ready", timeout=2,
                                      headers=oak_env.headers).ok,
                 timeout=60, what=f"manager ready (log: {directory / 'manager.log'})")
        yield oak_env
    finally:
        manager.send_signal(signal.SIGTERM)
        try:
            manager.wait(20)
        except subprocess.TimeoutExpired:
            manager.kill()
            manager.wait(5)
        log.close()
        server.stop()
        broker.stop()
        mongo.stop()


def check_credentials(oak: Env, pid: str) -> None:
    """Every credential came through enrollment; no SLA holds one; all revoked at the end."""
    bodies = "\n".join(r.body for r in list(oak.server.state.requests)
                        if r.method == "POST" and r.path in SLA_PATHS and r.body)
    assert pid in bodies
    for what, value in oak.manager_credentials().items():
        assert value not in bodies, f"an SLA holds the {what} credential"
    stored = oak.stored_project(pid)
    services = sla_services(oak.server, pid)
    assert services
    for service in services:
        env = env_of(service)
        assert not any(k.startswith("FLOPS_SECRET") for k in env), env
        parts = grants.parse_token(env["FLOPS_ENROLL_TOKEN"])
        assert parts is not None and parts.project_id == pid
        grant = stored["grants"][parts.grant_id]
        assert grant["role"] == env["FLOPS_SERVICE_ROLE"] == env["FLOPS_ENROLL_ROLE"]
        assert parts.secret not in json.dumps(stored, default=str)  # the manager keeps a digest
    used = [g for g in stored["grants"].values() if g["enrolled"]]
    roles = {g["role"] for g in used}
    assert {"builder", "aggregator", "learners"} <= roles, roles
    assert all(e["username"] for g in used for e in g["enrolled"]), "every login is its own"
    wait_for(lambda: all(g["revoked"] for g in oak.stored_project(pid)["grants"].values()),
             timeout=30, what="every grant revoked once the project ended")
    # after the end nothing works any more: the broker knows none of the project's logins,
    # the manager refuses its tokens (and the owner sees that), its data server is gone
    dynsec = oak.directory / "mosquitto" / "dynamic-security.json"
    wait_for(lambda: not [c for c in json.loads(dynsec.read_text())["clients"]
                          if pid in c["username"]], timeout=30,
             what="the project's broker logins deleted")
    token = env_of(services[0])["FLOPS_ENROLL_TOKEN"]
    replay = requests.post(f"{oak.base}/enroll", timeout=10, json={
        "token": token, "project_id": pid, "role": env_of(services[0])["FLOPS_ENROLL_ROLE"]})
    assert replay.status_code in (401, 403), replay.text
    refused = oak.get(f"projects/{pid}/events", rejected="true").json()["rejected"]
    assert any(r["topic"] == "api:POST /api/v1/enroll" for r in refused), refused
    wait_for(lambda: not oak.server.state.jobs_named(f"{pid}-data-server"), timeout=30,
             what="the project's data server removed")


@pytest.fixture(scope="module")
def oak(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with environment(tmp_path_factory.mktemp("oak-e2e")) as env:
        yield env


@pytest.fixture(scope="module")
def oak400(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """v0.4.400, whose service listing holds every application's services (one cluster: its
    ``addons`` placement is only right with a single active cluster)."""
    with environment(tmp_path_factory.mktemp("oak400-e2e"), version="v0.4.400",
                     clusters=CLUSTERS[:1]) as env:
        yield env


# ---------------------------------------------------------------------------- tests


def test_classic_project_completes_and_registers_the_model(oak: Env) -> None:
    pid = oak.submit(small_spec("oak-classic"))
    project = oak.wait(pid, lambda p: p["phase"] == "completed", timeout=300,
                       what="classic project completed")
    model = project["model"]
    assert model and model["registered_model"] and model["model_version"], model
    # the shared tracking server runs as an Oakestra service; its public URL is reachable
    orch = oak.orchestrator()
    try:
        tracking = orch.public_url(TRACKING)
        assert tracking is not None and tracking.endswith(":5000"), tracking
        host = tracking.removeprefix("http://").rsplit(":", 1)[0]
        assert addresses.AddressPool(RR_SUBNET).contains(host)
        assert orch.service_address(TRACKING) == f"{host}:5000"
    finally:
        orch.close()
    client = MlflowClient(tracking_uri=tracking, registry_uri=tracking)
    version = client.get_model_version(model["registered_model"], model["model_version"])
    assert version.status == "READY"
    history = client.get_metric_history(model["mlflow_run_id"], "accuracy")
    assert sorted(m.step for m in history) == [1, 2]
    # what went through Oakestra: env:// images, loopback round-robin addresses, credentials
    # only through enrollment, every service of the project gone once it completed
    services = {env_of(s)["FLOPS_SERVICE_ROLE"]: s for s in sla_services(oak.server, pid)}
    assert set(services) == {"builder", "aggregator", "learners"}  # no project-wide data server
    assert services["learners"]["code"].startswith("env://")
    assert services["aggregator"]["code"] == services["learners"]["code"]
    assert addresses.AddressPool(RR_SUBNET).contains(services["aggregator"]["addresses"]["rr_ip"])
    check_credentials(oak, pid)
    grants = list(oak.stored_project(pid)["grants"].values())
    assert not any("FLOPS_DATA_TOKEN" in g["secret_keys"] for g in grants), grants
    learners = [g for g in grants if g["role"] == "learners"]
    assert sum(len(g["enrolled"]) for g in learners) == 3, "one exchange per learner instance"
    wait_for(lambda: not oak.server.state.jobs_named(f"{pid}-aggregator"), timeout=30,
             what="the aggregator service removed after completion")


def test_hierarchical_project_on_two_clusters_completes(oak: Env) -> None:
    pid = oak.submit(small_spec("oak-hier", mode="hierarchical", cycles=2, rounds=1, learners=2))
    project = oak.wait(pid, lambda p: p["phase"] == "completed", timeout=240,
                       what="hierarchical project completed")
    assert project["model"], project
    placed: dict[str, set[str]] = {}
    for service in sla_services(oak.server, pid):
        role = env_of(service)["FLOPS_SERVICE_ROLE"]
        for constraint in service.get("constraints", []):
            if constraint["type"] == "direct":
                placed.setdefault(role, set()).add(constraint["cluster"])
    assert placed == {"cluster_aggregator": set(CLUSTERS), "learners": set(CLUSTERS)}, placed
    learners = [s for s in sla_services(oak.server, pid)
                if env_of(s)["FLOPS_SERVICE_ROLE"] == "learners"]
    assert sorted(env_of(s)["FLOPS_LEARNER_INDEX_OFFSET"] for s in learners) == ["0", "2"]
    check_credentials(oak, pid)


def test_delete_removes_every_application_service_and_process(oak: Env) -> None:
    pid = oak.submit(small_spec("oak-delete", rounds=500, learners=2))
    oak.wait(pid, lambda p: p["phase"] == "training" and (p["progress"]["round"] or 0) >= 1,
             timeout=180, what="training round 1")
    app_name = names.application_name(pid)
    assert any(a["application_name"] == app_name for a in oak.server.state.apps.values())
    assert processes_mentioning(pid), "the project's instances should be running"
    delete_and_wait_gone(oak, pid)
    assert oak.server.state.jobs_named(TRACKING), "the shared tracking server must stay"


def test_v0_4_400_delete_removes_its_application_and_only_its_services(oak400: Env) -> None:
    """Appendix C item 2: the listing of one application holds every application's services.

    With a second project training, deleting the first must still delete its application (the
    backend must not believe services remain) and must leave the second project's services,
    processes and training alone.
    """
    keep, gone = (oak400.submit(small_spec(name, rounds=500, learners=2))
                  for name in ("oak400-keep", "oak400-gone"))
    for pid in (keep, gone):
        oak400.wait(pid, lambda p: p["phase"] == "training" and (p["progress"]["round"] or 0)
                    >= 1, timeout=300, what="training round 1")
    kept_jobs = {j["microserviceID"] for j in oak400.server.state.jobs.values()
                 if j["app_name"] == names.application_name(keep)}
    kept_pids = processes_mentioning(keep)
    assert kept_jobs and kept_pids
    delete_and_wait_gone(oak400, gone)  # its application included
    state = oak400.server.state
    with state.lock:
        assert kept_jobs <= set(state.jobs), "the other project's services must stay"
    assert set(kept_pids) <= set(processes_mentioning(keep))
    round_before = oak400.project(keep)["progress"]["round"]
    oak400.wait(keep, lambda p: p["phase"] == "training" and p["progress"]["round"]
                > round_before, timeout=120, what="the other project still training")
    delete_and_wait_gone(oak400, keep)


def test_client_survives_expired_tokens_and_server_errors(oak: Env) -> None:
    state = oak.server.state
    # the first service the project creates gets a 500 (the worker retries the action)
    state.inject_failure(500, times=1, path_prefix="/api/service/", method="POST")
    pid = oak.submit(small_spec("oak-flaky", rounds=2, learners=2))
    oak.wait(pid, lambda p: p["phase"] == "training", timeout=180, what="training")
    logins = state.logins
    state.expire_tokens()
    state.inject_failure(500, times=1, path_prefix="/api/services/", method="GET")
    project = oak.wait(pid, lambda p: p["phase"] == "completed", timeout=180,
                       what="completed despite the expired token and the 500s")
    assert project["model"], project
    assert all(f.remaining == 0 for f in state.faults), "every injected failure was hit"
    assert state.logins > logins, "the manager logged in again after the tokens expired"
    builders = [s for s in sla_services(oak.server, pid)
                if env_of(s)["FLOPS_SERVICE_ROLE"] == "builder"]
    assert len(builders) == 2, "the refused builder service was created again"
    assert "reconcile pass failed" not in oak.manager_log(full=True), "the GET 500 was retried"


def test_failed_service_fails_the_project_with_its_reason(oak: Env) -> None:
    pid = oak.submit(small_spec("oak-fail", rounds=500, learners=2))
    oak.wait(pid, lambda p: p["phase"] == "training" and (p["progress"]["round"] or 0) >= 1,
             timeout=180, what="training round 1")
    state = oak.server.state
    (job,) = state.jobs_named(f"{pid}-aggregator")
    state.force_status(job["microserviceID"], 0, "FAILED", "OOMKilled (injected by the test)")
    project = oak.wait(pid, lambda p: p["phase"] == "failed", timeout=60, what="failed",
                       fail_on=("cancelled", "completed"))
    assert "aggregator" in project["last_error"], project["last_error"]
    assert "OOMKilled (injected by the test)" in project["last_error"], project["last_error"]
    deadline = time.monotonic() + 60
    while processes_mentioning(pid):
        assert time.monotonic() < deadline, f"processes of {pid} left after the failure"
        time.sleep(0.5)
    with contextlib.suppress(KeyError):
        state.forced.pop((job["microserviceID"], 0))


def _location(api: ApiClient, node: str) -> object:
    return api.request("GET", f"nodes/{node}").get("location")


def start_nodes(api: ApiClient, workers: dict[str, str], directory: Path) -> list[NodeAgent]:
    """A FLOps node agent per worker (name -> cluster), each once it reported its address."""
    agents = []
    try:
        for node, cluster in workers.items():
            token = api.request("POST", f"nodes/{node}/token")["token"]
            settings = NodeAgentSettings(name=node, cluster=cluster,
                                         data_dir=directory / node, manager_url=api.base_url,
                                         report_interval_s=1.0)
            agent = start_agent(settings, {"FLOPS_NODE_TOKEN": token})
            threading.Thread(target=agent.run, daemon=True).start()
            agents.append(agent)
            # a push needs the node's first report (its address); a loaded machine delays it
            wait_for(functools.partial(_location, api, node), timeout=60,
                     what=f"node {node} reporting its address")
    except BaseException:
        for agent in agents:
            agent.stop()
        raise
    return agents


def online_nodes(api: ApiClient) -> list[str]:
    """The names of the caller's nodes that the manager considers online."""
    return sorted(n["name"] for n in api.request("GET", "nodes")["items"]
                  if n["status"] == "online")


def start_digit_nodes(api: ApiClient, workers: dict[str, str], directory: Path,
                      tag: str) -> list[NodeAgent]:
    """:func:`start_nodes`, each with a share of the digits under ``tag`` (every n-th row; a
    fifth of them marked ``split=test``)."""
    x, y = load_digits(return_X_y=True)
    agents = start_nodes(api, workers, directory)
    try:
        for index, node in enumerate(workers):
            rows = np.arange(index, len(y), len(workers))
            split = np.where(np.arange(len(rows)) % 5 == 0, "test", "train")
            table = pa.table({**{f"x{i}": x[rows, i] for i in range(64)}, "label": y[rows],
                              "split": split})
            path = directory / f"{node}.parquet"
            pq.write_table(table, path)
            data.push(api, node, tag, path, label="label")
        wait_for(lambda: {d["node"] for d in data.listing(api, None) if d["tag"] == tag}
                 == set(workers), timeout=30, what="every node reporting its data")
    except BaseException:
        for agent in agents:
            agent.stop()
        raise
    return agents


def node_readers(directory: Path, node: str, op: str = "read") -> set[str]:
    """Who read (or did ``op``) data on ``node`` (its agent's access records)."""
    records = [json.loads(line) for line in
               (directory / node / "access.jsonl").read_text().splitlines()]
    return {r["sub"] for r in records if r["op"] == op}


def pinned_to(service: dict[str, Any]) -> tuple[str, str]:
    """The (node, cluster) a service's ``direct`` constraint pins it to, once the SLA
    validates against both schemas."""
    validate_both({"sla_version": "v2.0", "customerID": "Admin", "applications": [
        {"applicationID": "6b028662427be4af4d5de27f", "application_name": "x",
         "application_namespace": "x", "application_desc": "x", "microservices": [service]}]})
    (direct,) = [c for c in service["constraints"] if c["type"] == "direct"]
    return direct["node"], direct["cluster"]


def test_learners_on_flops_nodes_are_pinned_and_read_only_their_node(
        oak: Env, tmp_path: Path) -> None:
    """Data where it lives, through Oakestra: a FLOps node on a worker of each cluster holds
    a share of the digits; the project (data_tags, no mock data) gets one learner per node,
    each pinned to its worker by ``direct`` with ``cluster`` and ``node`` (Appendix C, item 4),
    and each reads only its own node's data server (the agents' access records)."""
    api = ApiClient(oak.base.removesuffix("/api/v1"), TOKEN)
    workers = {"worker-a": CLUSTERS[0], "worker-b": CLUSTERS[1]}
    agents = start_digit_nodes(api, workers, tmp_path, "digits")
    try:
        spec = {"name": "oak-nodes", "data_tags": ["digits"],
                "training": {"rounds": 2, "min_available_learners": 2, "connect_timeout_s": 120}}
        pid = oak.submit(spec)
        project = oak.wait(pid, lambda p: p["phase"] == "completed", timeout=300,
                           what="node project completed")
        assert {p["node"]: p["cluster"] for p in project["placement"]} == workers
        learners = [s for s in sla_services(oak.server, pid)
                    if env_of(s)["FLOPS_SERVICE_ROLE"] == "learners"]
        pinned: dict[str, tuple[str, str]] = {}
        for service in learners:
            node, cluster = pinned_to(service)
            pinned[node] = (cluster, env_of(service)["FLOPS_LEARNER_INDEX_OFFSET"])
        assert {node: cluster for node, (cluster, _) in pinned.items()} == workers
        for node, (_, offset) in pinned.items():
            assert node_readers(tmp_path, node) == {f"learner:{pid}/{offset}"}, node
        check_credentials(oak, pid)
    finally:
        for agent in agents:
            agent.stop()


def test_mock_data_is_written_to_the_nodes_by_a_provider_pinned_to_each(
        oak: Env, tmp_path: Path) -> None:
    """Mock data on FLOps nodes, through Oakestra: the owner's nodes hold nothing; one mock
    data provider per node, pinned to its worker, writes that node's partition, and each
    learner (pinned there too) reads only its node. No project-wide data server is deployed."""
    api = ApiClient(oak.base.removesuffix("/api/v1"), TOKEN)
    workers = {"worker-m1": CLUSTERS[0], "worker-m2": CLUSTERS[1]}
    agents = start_nodes(api, workers, tmp_path)
    try:
        # mock data takes the owner's online nodes in name order: the nodes of the tests
        # before (their agents stopped) must have been seen going offline first
        wait_for(lambda: online_nodes(api) == sorted(workers), timeout=60,
                 what=f"{sorted(workers)} the only online nodes")
        pid = oak.submit({**small_spec("oak-mock-nodes", learners=2),
                          "mock_data": {"partitioner": "iid", "seed": 7}})
        project = oak.wait(pid, lambda p: p["phase"] == "completed", timeout=300,
                           what="mock project on nodes completed")
        assert {p["node"]: p["cluster"] for p in project["placement"]} == workers
        assert all(p["rows"] > 0 for p in project["placement"]), project["placement"]
        services = sla_services(oak.server, pid)
        roles = [env_of(s)["FLOPS_SERVICE_ROLE"] for s in services]
        assert "data_server" not in roles and roles.count("mock_data_provider") == 2, roles
        index_of = {p["node"]: str(p["learner"]) for p in project["placement"]}
        for role, index_env in (("mock_data_provider", "FLOPS_PARTITION"),
                                ("learners", "FLOPS_LEARNER_INDEX_OFFSET")):
            placed = {pinned_to(s): env_of(s)[index_env] for s in services
                      if env_of(s)["FLOPS_SERVICE_ROLE"] == role}
            assert dict(placed.keys()) == workers  # each pinned to its node, in its cluster
            assert {node: index for (node, _), index in placed.items()} == index_of
        for entry in project["placement"]:
            node, index = entry["node"], entry["learner"]
            assert node_readers(tmp_path, node, "write") == {f"mock-provider:{pid}/{index}"}
            assert node_readers(tmp_path, node) == {f"learner:{pid}/{index}"}, node
        # the project ended: each node drops its partition at its next report
        wait_for(lambda: all(node_readers(tmp_path, n, "drop") == {"node"} for n in workers),
                 timeout=30, what="the nodes dropping the ended project's mock data")
        assert not list(tmp_path.rglob(f"mock-{pid}/*.parquet"))
        check_credentials(oak, pid)
    finally:
        for agent in agents:
            agent.stop()


def test_hierarchical_project_on_node_data_has_one_cluster_aggregator_per_node_cluster(
        oak: Env, tmp_path: Path) -> None:
    """Hierarchical training where the data lives: nodes on two workers of clusterA and one
    of clusterB hold the digits; the project (hierarchical, data_tags, no mock data) gets one
    cluster aggregator per node cluster, placed in that cluster, with that cluster's learners
    (each pinned to its node) under it; ``flops project status`` shows the grouping."""
    api = ApiClient(oak.base.removesuffix("/api/v1"), TOKEN)
    workers = {"worker-a1": CLUSTERS[0], "worker-a2": CLUSTERS[0], "worker-b1": CLUSTERS[1]}
    agents = start_digit_nodes(api, workers, tmp_path, "digits-h")
    try:
        spec = {"name": "oak-nodes-hier", "data_tags": ["digits-h"],
                "training": {"mode": "hierarchical", "cycles": 2, "rounds": 1,
                             "connect_timeout_s": 120}}
        pid = oak.submit(spec)
        project = oak.wait(pid, lambda p: p["phase"] == "completed", timeout=300,
                           what="hierarchical node project completed")
        assert project["model"], project
        aggregator_of = {c: f"{pid}-cluster-aggregator-{i}" for i, c in enumerate(CLUSTERS)}
        assert [(p["learner"], p["node"], p["cluster"], p["aggregator"])
                for p in project["placement"]] == [
            (0, "worker-a1", CLUSTERS[0], aggregator_of[CLUSTERS[0]]),
            (1, "worker-a2", CLUSTERS[0], aggregator_of[CLUSTERS[0]]),
            (2, "worker-b1", CLUSTERS[1], aggregator_of[CLUSTERS[1]])]
        lines = summary(project)
        assert f"  cluster {CLUSTERS[0]}: aggregator {aggregator_of[CLUSTERS[0]]}, " \
               "2 learner(s)" in lines, lines
        # Oakestra placed each cluster aggregator in its cluster; each learner on its node,
        # connected to its cluster's aggregator (by that service's round-robin address)
        services = sla_services(oak.server, pid)

        def direct(service: dict[str, Any]) -> dict[str, str]:
            (pin,) = [c for c in service["constraints"] if c["type"] == "direct"]
            return dict(pin)

        aggregators = {direct(s)["cluster"]: s for s in services
                       if env_of(s)["FLOPS_SERVICE_ROLE"] == "cluster_aggregator"}
        assert set(aggregators) == set(CLUSTERS)
        assert {c: env_of(s)["FLOPS_EXPECTED_CLIENTS"] for c, s in aggregators.items()} == {
            CLUSTERS[0]: "2", CLUSTERS[1]: "1"}
        address_of = {c: s["addresses"]["rr_ip"] for c, s in aggregators.items()}
        learners = [s for s in services if env_of(s)["FLOPS_SERVICE_ROLE"] == "learners"]
        placed = {direct(s)["node"]: (direct(s)["cluster"],
                                      env_of(s)["FLOPS_SERVER_ADDRESS"].rsplit(":", 1)[0],
                                      env_of(s)["FLOPS_LEARNER_INDEX_OFFSET"])
                  for s in learners}
        assert {n: (c, a) for n, (c, a, _) in placed.items()} == {
            n: (c, address_of[c]) for n, c in workers.items()}
        for node, (_, _, offset) in placed.items():
            assert node_readers(tmp_path, node) == {f"learner:{pid}/{offset}"}, node
        # two cycles at the root, each a round in both clusters
        rounds = [e for e in oak.get(f"projects/{pid}/events", limit=1000).json()["items"]
                  if e["event"]["event"] == "round_completed"
                  and e["event"]["component"] == "cluster_aggregator"]
        assert len(rounds) >= 4, rounds
        check_credentials(oak, pid)
    finally:
        for agent in agents:
            agent.stop()
