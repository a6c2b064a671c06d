"""v0.4.400 lists every application's services under ``GET /api/services/<appId>``.

Reference Appendix C item 2: the contract server reproduces that listing in v0.4.400 mode, and
the backend must still delete a project's application with its last service, leave other
projects' services alone and never take another application's same-named service for its own.
Instances are real (sleeping) processes of the contract server's "workers".
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest

from flops_manager.adapters.oakestra import names
from flops_manager.adapters.oakestra.client import RootOrchestratorClient
from flops_manager.adapters.oakestra.orchestrator import OakestraOrchestrator
from flops_manager.ports.orchestrator import ServiceSpec
from tests.oakestra.conftest import make_settings
from tests.oakestra.contract_server import ContractServer
from tests.oakestra.test_orchestrator_e2e import SLEEPER, alive

OURS = ("proj1-aggregator", "proj1-learners")
"""The services of the project that is deleted."""


def spec(name: str) -> ServiceSpec:
    project_id, _, role = name.partition("-")
    return ServiceSpec(name=name, project_id=project_id, owner="Admin", role=role,
                       image="registry.example/flops/test:1", command=SLEEPER)


def orchestrator(server: ContractServer, namespace: str) -> OakestraOrchestrator:
    settings = make_settings(server, namespace=namespace)
    return OakestraOrchestrator(RootOrchestratorClient(settings), settings)


@pytest.fixture
def v400(start_server: Callable[..., ContractServer]) -> ContractServer:
    server: ContractServer = start_server(version="v0.4.400")
    server.state.add_cluster("clusterA")
    return server


@pytest.fixture
def managers(v400: ContractServer) -> Iterator[tuple[OakestraOrchestrator, OakestraOrchestrator]]:
    """Our manager, and another FLOps installation (namespace ``other``) on the same Oakestra
    whose project happens to have our project's id, so its services have our names."""
    ours, theirs = orchestrator(v400, "flops"), orchestrator(v400, "other")
    yield ours, theirs
    ours.close()
    theirs.close()


def json_list(text: str) -> list[dict[str, object]]:
    """A listing's documents (decoded twice when double-encoded, as v0.4.400 does)."""
    value = json.loads(text)
    return list(json.loads(value) if isinstance(value, str) else value)


def app_names(server: ContractServer) -> set[tuple[str, str]]:
    with server.state.lock:
        return {(a["application_namespace"], a["application_name"])
                for a in server.state.apps.values()}


def test_the_fake_lists_every_application_like_v0_4_400(v400: ContractServer, managers) -> None:
    ours, _ = managers
    ours.create_service(spec("proj1-aggregator"))
    ours.create_service(spec("proj2-aggregator"))
    client = RootOrchestratorClient(make_settings(v400))
    response = client._request("GET", f"/api/services/{ours._app_ids['proj1']}")
    listed = {s["app_name"] for s in json_list(response.text)}
    assert listed == {names.application_name("proj1"), names.application_name("proj2")}
    assert [s.name for s in client.list_services(ours._app_ids["proj1"]) or []] == [
        names.microservice_name("proj1-aggregator", app_key="proj1")]
    client.close()


def test_deleting_a_project_deletes_its_application_and_only_its_services(
    v400: ContractServer, managers
) -> None:
    ours, theirs = managers
    theirs.create_service(spec("proj1-aggregator"))  # first in the unfiltered listing
    for name in (*OURS, "proj2-aggregator"):
        ours.create_service(spec(name))
    state = v400.state
    assert len(state.jobs_named("proj1-aggregator")) == 2, "ours was created, not matched"
    (foreign,) = [j for j in state.jobs_named("proj1-aggregator")
                  if j["applicationID"] == theirs._app_ids["proj1"]]
    own = ours.service_status("proj1-aggregator")
    theirs_status = theirs.service_status("proj1-aggregator")
    assert own is not None and theirs_status is not None
    bystanders = {j["microserviceID"]: state.instance_pids(j["microserviceID"])
                  for j in [foreign, *state.jobs_named("proj2-aggregator")]}

    for name in OURS:  # what the reconcile worker does when the project is deleted
        assert ours.remove_service(name) is True

    assert ("flops", names.application_name("proj1")) not in app_names(v400)
    assert {("flops", names.application_name("proj2")),
            ("other", names.application_name("proj1"))} <= app_names(v400)
    assert ours.service_status("proj1-aggregator") is None, "never the other installation's"
    assert ours.remove_service("proj1-aggregator") is False
    for job_id, pids in bystanders.items():
        assert job_id in state.jobs and pids and all(alive(p) for p in pids)
    assert theirs.service_status("proj1-aggregator") is not None
    assert ours.service_status("proj2-aggregator") is not None


def test_repeated_deletes_and_unknown_instances_answer_like_the_real_one(
    v400: ContractServer, managers
) -> None:
    ours, _ = managers
    ours.create_service(spec("proj1-aggregator"))
    app_id = ours._app_ids["proj1"]
    (job,) = v400.state.jobs_named("proj1-aggregator")
    client = RootOrchestratorClient(make_settings(v400, retries=0))
    try:
        assert client.delete_service(job["microserviceID"]) is True
        raw = client._request("DELETE", f"/api/service/{job['microserviceID']}")
        assert raw.status_code == 500  # Appendix C item 6; the client reads it as "gone"
        assert client.delete_service(job["microserviceID"]) is False
        assert client.delete_application(app_id) is True
        raw = client._request("DELETE", f"/api/application/{app_id}")
        assert raw.status_code == 501
        assert client.delete_application(app_id) is False
        unknown = client._request("POST", "/api/service/0123456789abcdef01234567/instance")
        assert (unknown.status_code, unknown.json()) == (200, {"message": "ok"})
    finally:
        client.close()
