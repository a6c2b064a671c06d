"""Enrollment: grants in descriptors, working credentials from the API, refusals recorded.

Runs the real Flask app on the in-memory store and the in-memory orchestrator; the reconcile
worker creates the services, so the specs the backend receives are exactly what a backend
would write into an SLA or a container.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient

from flops_manager.adapters.memory_orchestrator import MemoryOrchestrator
from flops_manager.adapters.memory_store import MemoryProjectStore
from flops_manager.app import create_app
from flops_manager.identity import grants
from flops_manager.identity.enrollment import ENROLL_TOPIC, Enrollment, secret_values
from flops_manager.lifecycle.service_specs import (
    LEARNER_DATA_TOKEN,
    MOCK_WRITE_TOKEN,
)
from flops_manager.lifecycle.state import Phase, Project
from flops_manager.lifecycle.worker import ReconcileWorker
from flops_manager.ports.broker_accounts import BrokerAccounts
from flops_manager.services.mutate import mutate_project
from flops_manager.services.projects import ProjectService
from tests.manager.conftest import make_settings

SPEC = {"name": "enr", "training": {"rounds": 1, "learners": 2}}
REGISTRY_PASSWORD = "registry-pass-never-in-a-spec"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class RecordingBroker(BrokerAccounts):
    """Keeps the logins it was asked to create (as a broker would)."""

    def __init__(self) -> None:
        self.logins: dict[str, tuple[str, list[str]]] = {}

    def add(self, username: str, password: str, *, role: str, topics: Any) -> None:
        self.logins[username] = (password, list(topics))

    def remove(self, usernames: Any) -> None:
        for name in usernames:
            self.logins.pop(name, None)


class World:
    def __init__(self, clock: Any = None, **overrides: Any) -> None:
        """``clock``: default a :class:`Clock` (``world.clock.now`` moves it); ``overrides``
        change the manager's settings."""
        self.clock = clock or Clock()
        self.store = MemoryProjectStore()
        self.orch = MemoryOrchestrator()
        self.broker = RecordingBroker()
        settings = make_settings(**{
            "registry": "127.0.0.1:5005", "registry_username": "admin",
            "registry_password": REGISTRY_PASSWORD, "enroll_ttl_s": 600.0, **overrides})
        self.settings = settings
        self.enrollment = Enrollment(self.store, settings, broker=self.broker, clock=self.clock)
        self.worker = ReconcileWorker(self.store, self.orch, settings, clock=self.clock,
                                      enrollment=self.enrollment)
        app = create_app(settings, store=self.store, orchestrator=self.orch,
                         enrollment=self.enrollment)
        self.client: FlaskClient = app.test_client()
        self.projects = ProjectService(self.store, allow_local_repos=True, clock=self.clock)

    def project(self) -> str:
        return self.projects.create(owner="alice", spec=SPEC,
                                    repository={"url": "https://h/u/r"}).id

    def run(self, pid: str) -> None:
        self.worker.reconcile(pid)

    def env(self, name: str) -> dict[str, str]:
        return dict(self.orch.services[name].env)

    def enroll(self, env: dict[str, str], **override: str) -> Any:
        body = {"token": env["FLOPS_ENROLL_TOKEN"], "project_id": env["FLOPS_ENROLL_PROJECT"],
                "role": env["FLOPS_ENROLL_ROLE"], "instance": "i-0", **override}
        return self.client.post("/api/v1/enroll", json=body)

    def rejected(self, pid: str) -> list[str]:
        return [r.reason for r in self.store.list_rejected_events(project_id=pid)]


@pytest.fixture()
def world() -> World:
    return World()


def deploy_data(world: World) -> str:
    """A project whose builder has been created by the worker."""
    pid = world.project()
    world.run(pid)  # submitted -> building: the builder is created
    return pid


def test_services_carry_only_an_enrollment_token(world: World) -> None:
    pid = deploy_data(world)
    builder = world.orch.services[f"{pid}-builder"]
    assert builder.secret_env == {}
    assert set(builder.env) >= {"FLOPS_ENROLL_TOKEN", "FLOPS_ENROLL_URL", "FLOPS_ENROLL_ROLE"}
    assert REGISTRY_PASSWORD not in json.dumps(dict(builder.env))
    project = world.store.get_project(pid)
    (_grant,) = project.grants.values()
    token = builder.env["FLOPS_ENROLL_TOKEN"]
    assert grants.parse_token(token) is not None
    assert token.split(".")[-1] not in json.dumps(project.to_doc())  # only the digest is kept


def test_exchange_returns_the_role_s_credentials_once_per_instance(world: World) -> None:
    pid = deploy_data(world)
    env = world.env(f"{pid}-builder")
    answer = world.enroll(env)
    assert answer.status_code == 200, answer.get_json()
    creds = answer.get_json()["env"]
    # a push login of this project, never the manager's own registry login
    assert creds["FLOPS_REGISTRY_USERNAME"] == f"flops-builder.{pid}"
    assert creds["FLOPS_REGISTRY_PASSWORD"] != REGISTRY_PASSWORD
    username = creds["FLOPS_MQTT_USERNAME"]
    password, topics = world.broker.logins[username]
    assert creds["FLOPS_MQTT_PASSWORD"] == password
    assert topics == [f"flops/v1/projects/{pid}/builder/+/events"]
    replay = world.enroll(env)
    assert replay.status_code == 401 and "replay" in replay.get_json()["message"]
    assert any("replay" in reason for reason in world.rejected(pid))


@pytest.mark.parametrize("claim, status, reason", [
    ({"role": "aggregator"}, 403, "presented for"),
    ({"project_id": "someoneelse"}, 403, "presented for"),
    ({"token": "fe1.x.y.z"}, 401, "unknown"),
    ({"token": "garbage"}, 401, "malformed"),
])
def test_tokens_for_another_project_or_role_are_refused_and_recorded(
    world: World, claim: dict[str, str], status: int, reason: str
) -> None:
    pid = deploy_data(world)
    env = world.env(f"{pid}-builder")
    answer = world.enroll(env, **claim)
    assert answer.status_code == status, answer.get_json()
    assert reason in answer.get_json()["message"]
    recorded = world.store.list_rejected_events(project_id=pid)  # the owner sees it
    assert any(r.topic == ENROLL_TOPIC and reason in r.reason for r in recorded)
    assert env["FLOPS_ENROLL_TOKEN"] not in json.dumps([r.payload for r in recorded])
    assert world.enroll(env).status_code == 200  # the refusals did not spend the token


def test_expired_tokens_are_refused(world: World) -> None:
    pid = deploy_data(world)
    env = world.env(f"{pid}-builder")
    world.clock.now += 601
    answer = world.enroll(env)
    assert answer.status_code == 401 and "expired" in answer.get_json()["message"]
    assert "enrollment token expired" in world.rejected(pid)


def test_project_end_revokes_every_credential(world: World) -> None:
    pid = deploy_data(world)
    env = world.env(f"{pid}-builder")
    assert world.enroll(env).status_code == 200
    assert world.broker.logins
    services = world.projects
    services.cancel(pid, owner="alice")
    world.run(pid)  # removes the services, then revokes
    assert world.store.get_project(pid).phase is Phase.CANCELLED
    assert world.broker.logins == {}, "the broker logins of an ended project are deleted"
    assert all(g["revoked"] for g in world.store.get_project(pid).grants.values())
    again = world.enroll(env)
    assert again.status_code == 401


def test_a_project_that_ended_refuses_unused_tokens(world: World) -> None:
    pid = deploy_data(world)
    env = world.env(f"{pid}-builder")
    mutate_project(world.store, pid, lambda p: p.replace(phase=Phase.FAILED), now=1.0)
    answer = world.enroll(env)
    assert answer.status_code == 403 and "ended" in answer.get_json()["message"]


def test_learners_get_one_exchange_per_instance(world: World) -> None:
    pid = deploy_data(world)
    env = world.env(f"{pid}-builder")
    grant_id = env["FLOPS_ENROLL_TOKEN"].split(".")[2]
    mutate_project(world.store, pid, lambda p: p.replace(
        grants={**p.grants, grant_id: {**p.grants[grant_id], "uses_left": 2}}), now=1.0)
    first, second = world.enroll(env).get_json(), world.enroll(env).get_json()
    assert first["env"]["FLOPS_MQTT_USERNAME"] != second["env"]["FLOPS_MQTT_USERNAME"]
    assert world.enroll(env).status_code == 401


def test_deployments_of_a_finished_project_enroll_until_undeployed(world: World) -> None:
    from flops_manager.ports.orchestrator import ServiceSpec

    pid = deploy_data(world)
    mutate_project(world.store, pid, lambda p: p.replace(phase=Phase.COMPLETED), now=1.0)
    serve = ServiceSpec(name=f"{pid}-serve-1", role="inference_server", image="i",
                        project_id=pid, instances=2)
    env = dict(world.enrollment.seal_standalone(serve).env)
    assert world.enroll(env).status_code == 200  # the project ended; its deployment did not
    world.enrollment.revoke(pid)  # the project's own grants only
    assert world.broker.logins, "a standalone deployment keeps its login"
    world.enrollment.revoke(pid, service=serve.name)  # undeploy
    assert world.broker.logins == {}
    assert world.enroll(env).status_code == 401


def test_concurrent_instances_each_get_their_own_login(world: World) -> None:
    import threading

    from flops_manager.ports.errors import TemporaryError
    from flops_manager.ports.orchestrator import ServiceSpec

    pid = deploy_data(world)
    spec = world.enrollment.seal(ServiceSpec(name=f"{pid}-learners", role="learners", image="i",
                                             project_id=pid, instances=8))
    token = spec.env["FLOPS_ENROLL_TOKEN"]
    logins: list[str] = []

    def one(index: int) -> None:
        while True:  # what a component does on 503
            try:
                env = world.enrollment.exchange(token, project_id=pid, role="learners",
                                                instance=f"l-{index}")
            except TemporaryError:
                continue
            logins.append(env["FLOPS_MQTT_USERNAME"])
            return

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(set(logins)) == 8 and set(logins) == set(world.broker.logins)
    assert world.enroll({**spec.env}).status_code == 401  # a ninth instance: replay


def test_each_node_service_is_handed_its_own_data_token_only() -> None:
    pid = "p0123456789abcdef"
    project = Project(id=pid, owner="alice", spec={}, repository={"url": "https://h/r"},
                      created_at=0, updated_at=0,
                      secrets={LEARNER_DATA_TOKEN + f"{pid}-learners-0": "read-0",
                               MOCK_WRITE_TOKEN + f"{pid}-mock-data-provider-0": "write-0"})
    settings = make_settings()

    def token(service: str | None) -> str | None:
        return secret_values(project, settings, service).get("FLOPS_DATA_TOKEN")

    assert token(f"{pid}-learners-0") == "read-0"
    assert token(f"{pid}-mock-data-provider-0") == "write-0"
    # no other service holds a data token: there is no project-wide data server
    assert token(f"{pid}-learners-1") is None
    assert token(f"{pid}-aggregator") is None and token(None) is None
