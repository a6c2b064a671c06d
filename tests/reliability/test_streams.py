"""Stream exhaustion: one user cannot take the API's threads with event streams."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from tests.fixtures.repos import git_repo
from tests.reliability.conftest import Scenario
from tests.reliability.harness import ALICE, BOB, Stack

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PER_OWNER = 4  # FLOPS_SSE_STREAMS_PER_OWNER's default


def test_one_user_cannot_exhaust_the_api_with_event_streams(
    stack: Stack, tmp_path: Path, scenario: Scenario, cleanup_projects: list[str]
) -> None:
    scenario.declare(
        "S1", f"one user opens {PER_OWNER + 1} event streams at once (each holds an API worker "
        "thread until it ends); meanwhile the API is polled",
        f"the first {PER_OWNER} streams are served, the next answers 429 with Retry-After; "
        "/ready, the owner's status and another user's listing answer 200 within 5 s",
    )
    repo = git_repo(tmp_path / "digits", ROOT / "examples" / "digits_sklearn").as_uri()
    pid = stack.create(repo, {"name": "streams", "training": {"rounds": 1, "learners": 1}})
    cleanup_projects.append(pid)
    url = f"{stack.base}/projects/{pid}/events/stream"
    held: list[requests.Response] = []
    try:
        for _ in range(PER_OWNER):
            held.append(requests.get(url, headers=ALICE, stream=True, timeout=30))
        extra = requests.get(url, headers=ALICE, stream=True, timeout=30)
        statuses = [r.status_code for r in held]
        assert statuses == [200] * PER_OWNER, statuses
        assert extra.status_code == 429, extra.text
        retry_after = int(extra.headers["Retry-After"])
        assert retry_after >= 1
        slowest = 0.0
        for path, headers in (("/ready", ALICE), (f"/projects/{pid}", ALICE),
                              ("/projects", BOB)):
            started = time.monotonic()
            base = stack.api_url if path == "/ready" else stack.base
            answer = requests.get(f"{base}{path}", headers=headers, timeout=5)
            slowest = max(slowest, time.monotonic() - started)
            assert answer.status_code == 200, (path, answer.status_code, answer.text)
    finally:
        for response in held:
            response.close()
    scenario.observe(
        f"streams answered {statuses}, the extra one 429 (Retry-After {retry_after} s: "
        f"{extra.json()['message']}); /ready, status and bob's listing answered 200, slowest "
        f"{slowest * 1000:.0f} ms")
