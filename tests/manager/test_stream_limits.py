"""Event streams cannot exhaust the API: a per-user cap (429) and threads kept for the rest.

The attack: one token opens more event streams than it may, then a second user fills the
remaining stream slots. The stated outcome: the extra streams are refused with 429 (that user)
or 503 (no slot left), both with ``Retry-After``, while ``/ready`` and ``GET project`` keep
answering on a real waitress server with only 6 worker threads.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import requests

from flops_manager.adapters.memory_orchestrator import MemoryOrchestrator
from flops_manager.adapters.memory_store import MemoryProjectStore
from flops_manager.api_server import ApiServer
from flops_manager.app import create_app
from flops_manager.services.stream_slots import (
    Slot,
    StreamLimits,
    StreamSlots,
    TooManyStreamsError,
    admit,
)
from tests.fixtures.servers import wait_for
from tests.manager.conftest import make_settings

TOKENS = '{"tok-alice": "alice", "tok-bob": "bob", "tok-carol": "carol"}'
LIMITS = StreamLimits(per_owner=2, total=4, max_s=60.0)


def auth(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer tok-{user}"}


def test_admit_is_pure_and_counts_per_owner_then_in_total() -> None:
    assert admit([], "alice", 0.0, LIMITS) is None
    two = [Slot("alice", 0.0), Slot("alice", 10.0)]
    refusal = admit(two, "alice", 20.0, LIMITS)
    assert isinstance(refusal, TooManyStreamsError)
    assert refusal.details["retry_after"] == 40  # the oldest stream ends at 60 s
    assert admit(two, "bob", 20.0, LIMITS) is None
    full = [*two, Slot("bob", 5.0), Slot("bob", 6.0)]
    refusal = admit(full, "carol", 20.0, LIMITS)
    assert refusal is not None and refusal.code == "backend_unavailable"


def test_slots_are_freed_by_release_or_after_the_longest_stream() -> None:
    now = [0.0]
    slots = StreamSlots(LIMITS, clock=lambda: now[0])
    release = slots.acquire("alice")
    slots.acquire("alice")
    with pytest.raises(TooManyStreamsError):
        slots.acquire("alice")
    release()
    release()  # idempotent
    slots.acquire("alice")
    now[0] = LIMITS.max_s + LIMITS.grace_s + 1  # a stream whose close was never seen
    assert slots.open_streams() == {}
    slots.acquire("alice")


@pytest.fixture()
def server() -> Iterator[str]:
    settings = make_settings(api_tokens=TOKENS, api_threads=6, api_reserved_threads=2,
                             sse_streams_per_owner=2, sse_max_s=60, sse_keepalive_s=0.2)
    app = create_app(settings, store=MemoryProjectStore(), orchestrator=MemoryOrchestrator())
    api = ApiServer(app, host="127.0.0.1", port=0, threads=settings.api_threads)
    api.bind()
    thread = threading.Thread(target=api.serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{api.port}"
    finally:
        api.close()


def create_project(base: str, user: str) -> str:
    body = {"repository": {"url": "https://example.com/r.git"}, "spec": {}}
    response = requests.post(f"{base}/api/v1/projects", json=body, headers=auth(user), timeout=30)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def open_stream(base: str, user: str, pid: str) -> requests.Response:
    return requests.get(f"{base}/api/v1/projects/{pid}/events/stream", headers=auth(user),
                        stream=True, timeout=30)


def test_streams_beyond_the_caps_are_refused_and_the_api_keeps_answering(server: str) -> None:
    pids = {user: create_project(server, user) for user in ("alice", "bob", "carol")}
    held: list[requests.Response] = []
    try:
        for _ in range(2):
            held.append(open_stream(server, "alice", pids["alice"]))
        assert [r.status_code for r in held] == [200, 200]
        third = open_stream(server, "alice", pids["alice"])
        assert third.status_code == 429, third.text
        assert int(third.headers["Retry-After"]) >= 1
        assert "event streams open" in third.json()["message"]
        # another user may still stream, until every slot not reserved is taken
        for _ in range(2):
            held.append(open_stream(server, "bob", pids["bob"]))
        assert [r.status_code for r in held] == [200] * 4
        refused = open_stream(server, "carol", pids["carol"])
        assert refused.status_code == 503 and int(refused.headers["Retry-After"]) >= 1
        assert "slots are in use" in refused.json()["message"]
        # while every stream slot is held, the reserved threads answer everything else
        for _ in range(5):
            assert requests.get(f"{server}/ready", headers=auth("carol"),
                                timeout=30).status_code == 200
            got = requests.get(f"{server}/api/v1/projects/{pids['alice']}",
                               headers=auth("alice"), timeout=30)
            assert got.status_code == 200 and got.json()["id"] == pids["alice"]
    finally:
        for response in held:
            response.close()
    # a closed stream gives its slot back (the server notices at its next keepalive)
    def admitted() -> bool:
        with open_stream(server, "alice", pids["alice"]) as response:
            return response.status_code == 200

    wait_for(admitted, timeout=30, what="alice's slots freed after her streams closed")
