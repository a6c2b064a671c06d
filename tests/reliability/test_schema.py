"""Schemathesis over the whole OpenAPI document of the real manager process (HTTP, MongoDB
wire server, local backend), with response checks the in-process test
(``tests/manager/test_schemathesis.py``: memory adapters, 5xx only) does not make."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks
from schemathesis.core.result import Ok

from tests.reliability.conftest import Scenario
from tests.reliability.harness import ALICE, Stack, kill_project_processes

pytestmark = pytest.mark.integration

EXAMPLES = 25
CHECKS = [checks.not_a_server_error, checks.status_code_conformance,
          checks.content_type_conformance, checks.response_schema_conformance,
          checks.response_headers_conformance]


@pytest.fixture(scope="module")
def api_schema(stack: Stack) -> Iterator[schemathesis.BaseSchema]:
    yield schemathesis.openapi.from_url(f"{stack.api_url}/openapi.json")
    # the fuzzer may create projects with plausible repositories: stop whatever they started
    for project in stack.get("projects", limit=100)["items"]:
        kill_project_processes(project["id"])


def test_openapi_fuzz(api_schema: schemathesis.BaseSchema, stack: Stack,
                      scenario: Scenario) -> None:
    scenario.declare("H8", f"schemathesis over every operation of the OpenAPI document "
                     f"({EXAMPLES} examples each, valid token)",
                     "no 5xx; status codes, content types, headers and bodies match the schema")
    # half of the examples address a real project (stays 'building': its host never resolves)
    real = stack.create("https://invalid.invalid/fuzz/repo.git", {"training": {"rounds": 1}})
    calls = [0]
    failures: list[str] = []
    operations = 0
    statuses: dict[int, int] = {}
    for result in api_schema.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case: schemathesis.Case[Any]) -> None:
            calls[0] += 1
            if case.path_parameters and "project_id" in case.path_parameters and calls[0] % 2:
                case.path_parameters["project_id"] = real
            response = case.call_and_validate(base_url=stack.api_url, headers=ALICE,
                                              checks=CHECKS, timeout=30)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        try:
            run()
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure
            failures.append(f"{operation.method.upper()} {operation.path}: "
                            f"{str(exc).strip()[:1500]}")
    assert not failures, "\n\n".join(failures)
    scenario.observe(f"{operations} operations, {sum(statuses.values())} requests, statuses "
                     f"{dict(sorted(statuses.items()))}: no 5xx, every response conforms")
