"""Schemathesis over the manager's OpenAPI document, in-process.

``test_no_server_errors``: every operation on the memory store (5xx only). ``test_fuzz_on_nx``:
the same app on the nx-27017 store (a real MongoDB wire server, so BSON encoding runs), first
every operation on its own, then stateful sequences that follow the document's OpenAPI links
(create a project, then get, cancel, read events, stream, deploy, delete it). It asserts the
number of calls and that none answered 5xx, and checks status codes, content types and bodies
against the document. With ``FLOPS_FUZZ_FIGURES=PATH`` it writes the figures there as JSON
(``docs/reliability-fuzz.json`` feeds the section of ``docs/reliability.md`` rendered by
``scripts/reliability_report.py``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymongo
import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from schemathesis import checks
from schemathesis.core.result import Ok

from flops_manager.adapters.memory_orchestrator import MemoryOrchestrator
from flops_manager.adapters.memory_store import MemoryProjectStore
from flops_manager.adapters.mongo_store import MongoProjectStore
from flops_manager.api.context import services
from flops_manager.app import create_app
from tests.fixtures.servers import NxServer
from tests.manager.conftest import ALICE, json_of, make_settings

APP = create_app(make_settings(sse_max_s=0.05), store=MemoryProjectStore(),
                 orchestrator=MemoryOrchestrator())
schema = schemathesis.openapi.from_wsgi("/openapi.json", APP)


@schema.parametrize()
@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case: schemathesis.Case[Any]) -> None:
    response = case.call(headers={"Authorization": "Bearer tok-alice"})
    assert response.status_code < 500, (case.method, case.path, response.text[:500])


EXAMPLES_PER_OPERATION = 45
STATEFUL_SCENARIOS = 60
STATEFUL_STEPS = 10
MIN_CALLS = 1000
CHECKS = [checks.not_a_server_error, checks.status_code_conformance,
          checks.content_type_conformance, checks.response_schema_conformance]


class Tally:
    """Calls made and their status codes, per phase."""

    def __init__(self) -> None:
        self.statuses: dict[str, Counter[int]] = {"stateless": Counter(), "stateful": Counter()}
        self.server_errors: list[str] = []
        self.succeeded: dict[str, Counter[str]] = {"stateless": Counter(), "stateful": Counter()}

    def count(self, phase: str, case: schemathesis.Case[Any], status: int) -> None:
        self.statuses[phase][status] += 1
        if status < 300:
            self.succeeded[phase][f"{case.method} {case.path}"] += 1
        if status >= 500:
            self.server_errors.append(f"{case.method} {case.formatted_path} -> {status}")

    def calls(self, phase: str | None = None) -> int:
        phases = [phase] if phase else list(self.statuses)
        return sum(sum(self.statuses[p].values()) for p in phases)

    def figures(self, operations: int, links: int, seconds: float) -> dict[str, Any]:
        every: Counter[int] = Counter()
        for counter in self.statuses.values():
            every.update(counter)
        return {
            "generated_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "store": "nx-27017 (MongoDB wire protocol, BSON encoding)",
            "operations": operations,
            "links": links,
            "calls": self.calls(),
            "stateless_calls": self.calls("stateless"),
            "stateful_calls": self.calls("stateful"),
            "statuses": {str(k): v for k, v in sorted(every.items())},
            "stateful_statuses": {str(k): v for k, v in sorted(self.statuses["stateful"].items())},
            "stateful_successes": dict(sorted(self.succeeded["stateful"].items())),
            "server_errors": len(self.server_errors),
            "seconds": round(seconds, 1),
            "test": "tests/manager/test_schemathesis.py::test_fuzz_on_nx",
        }


VALID_PROJECT: dict[str, dict[str, Any]] = {"repository": {"url": "https://git.example/u/repo.git"},
                                           "spec": {"training": {"rounds": 1}}}


@dataclasses.dataclass
class NxApp:
    app: Flask
    url: str
    db: str

    def reset(self) -> dict[str, str]:
        """Empty the database and seed it again (each stateful scenario starts the same)."""
        client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(self.url)
        try:
            for name in ("projects", "events", "rejected_events", "services"):
                client[self.db][name].delete_many({})
        finally:
            client.close()
        return seed(self.app)


@pytest.fixture(scope="module")
def nx_app(nx_server: NxServer) -> Iterator[NxApp]:
    db = "fuzz" + uuid.uuid4().hex[:10]
    store = MongoProjectStore(nx_server.url, db_name=db)
    # stream limits out of the way: streams the test client never closes must not turn into
    # 429s that depend on timing (tests/manager/test_stream_limits.py tests the limits)
    settings_ = make_settings(sse_max_s=0.05, api_threads=512, api_reserved_threads=1,
                              sse_streams_per_owner=511)
    yield NxApp(create_app(settings_, store=store, orchestrator=MemoryOrchestrator()),
                nx_server.url, db)
    store.close()


def seed(app: Flask) -> dict[str, str]:
    """A project with a trained model and one deployment: path parameters that exist."""
    with app.app_context():
        found = services()
        project = found.projects.create(owner="alice", spec=VALID_PROJECT["spec"],
                                        repository=VALID_PROJECT["repository"])
        found.store.save_project(project.replace(model={"model_uri": "models:/m/1"}),
                                 expected_version=project.version)
        deployment = found.models.deploy(project.id, owner="alice", model_uri=None, instances=1)
    return {"project_id": project.id, "deployment_id": deployment.id}


class Aim:
    """Points every other call at things that exist, so that fuzzing reaches past 404 and 422.

    Half of the project creations get a valid body; half of the calls with path parameters
    address the seeded project and deployment (except deleting that project).
    """

    def __init__(self, existing: dict[str, str]) -> None:
        self.restart(existing)

    def restart(self, existing: dict[str, str]) -> None:
        """Aim at ``existing`` from now on, counting calls from zero."""
        self.existing = existing
        self.calls = 0

    def __call__(self, case: schemathesis.Case[Any]) -> None:
        self.calls += 1
        if self.calls % 2:
            return
        if case.method == "POST" and case.path == "/api/v1/projects":
            case.body = dict(VALID_PROJECT)
        elif case.path_parameters and not (case.method == "DELETE"
                                           and case.path.endswith("{project_id}")):
            for name in case.path_parameters:
                case.path_parameters[name] = self.existing.get(name, case.path_parameters[name])


def count_links(document: dict[str, Any]) -> int:
    return sum(len(response.get("links", {}))
               for operations in document["paths"].values()
               for operation in operations.values() if isinstance(operation, dict)
               for response in operation.get("responses", {}).values())


def test_fuzz_on_nx(nx_app: NxApp) -> None:
    nx_schema = schemathesis.openapi.from_wsgi("/openapi.json", nx_app.app)
    declared_links = count_links(json_of(nx_app.app.test_client().get("/openapi.json")))
    aim = Aim(seed(nx_app.app))
    tally = Tally()
    failures: list[str] = []
    started = time.monotonic()
    operations = 0
    for result in nx_schema.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case: schemathesis.Case[Any]) -> None:
            aim(case)
            response = case.call(headers=ALICE)
            tally.count("stateless", case, response.status_code)
            case.validate_response(response, checks=CHECKS)

        try:
            run()
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure
            failures.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:1500]}")

    class Sequences(nx_schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            aim.restart(nx_app.reset())

        def get_call_kwargs(self, case: schemathesis.Case[Any]) -> dict[str, Any]:
            return {"headers": ALICE}

        def before_call(self, case: schemathesis.Case[Any]) -> None:
            if case.method == "POST" and case.path == "/api/v1/projects":
                aim(case)  # links then chain calls on the projects created

        def after_call(self, response: Any, case: schemathesis.Case[Any]) -> None:
            tally.count("stateful", case, response.status_code)

        def validate_response(self, response: Any, case: schemathesis.Case[Any],
                              additional_checks: Any = None, **kwargs: Any) -> None:
            # collected, not raised: a server whose state moved on cannot replay a scenario
            # for Hypothesis to shrink
            try:
                case.validate_response(response, checks=CHECKS)
            except Exception as exc:  # noqa: BLE001 - every failure is reported below
                failures.append(f"stateful {case.method} {case.path}: {str(exc)[:1500]}")

    try:
        Sequences.run(settings=settings(max_examples=STATEFUL_SCENARIOS,
                                        stateful_step_count=STATEFUL_STEPS, deadline=None,
                                        database=None, suppress_health_check=list(HealthCheck)))
    except Exception as exc:  # noqa: BLE001 - reported with the others
        failures.append(f"stateful: {str(exc)[:3000]}")
    figures = tally.figures(operations, declared_links, time.monotonic() - started)
    print(json.dumps(figures, indent=2))
    target = os.environ.get("FLOPS_FUZZ_FIGURES")
    if target:
        Path(target).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    assert not tally.server_errors, tally.server_errors[:20]
    assert not failures, "\n\n".join(failures)
    assert figures["links"] >= 10 and tally.calls("stateful") > 0
    assert tally.calls() >= MIN_CALLS, figures
