"""Refused messages are kept per project and shown to its owner only (API and CLI)."""

from __future__ import annotations

from typing import Any

from flask import Flask

from flops_contracts.events import Component, Event, EventType
from flops_contracts.topics import event_topic
from flops_manager.cli.rejected import rejected_lines
from flops_manager.services.ingest import EventIngest, Outcome
from tests.manager.conftest import ALICE, BOB

SPEC = {"name": "rej", "training": {"rounds": 1, "learners": 2}}


def forged(pid: str) -> tuple[str, bytes]:
    """A learner claiming the builder's result: images of its choosing."""
    event = Event(pid, Component.LEARNER, "evil-0", EventType.COMPLETED,
                  data={"images": {"learner": "attacker/learner:1"}})
    return event_topic(pid, Component.LEARNER, "evil-0"), event.to_json().encode()


def test_owner_reads_rejected_events_others_get_404(app: Flask) -> None:
    client = app.test_client()
    created = client.post("/api/v1/projects", headers=ALICE,
                          json={"spec": SPEC, "repository": {"url": "https://h/u/r"}})
    pid = created.get_json()["id"]
    store = app.extensions["flops"].store
    result = EventIngest(store).handle(*forged(pid))
    assert result.outcome is Outcome.REJECTED
    page = client.get(f"/api/v1/projects/{pid}/events?rejected=true", headers=ALICE).get_json()
    (rejected,) = page["rejected"]
    assert "learner may not send 'images'" in rejected["reason"]
    assert rejected["topic"].endswith("/learner/evil-0/events")
    assert page["items"] == [] and page["total"] == 1
    normal = client.get(f"/api/v1/projects/{pid}/events", headers=ALICE).get_json()
    assert all(e["event"]["component"] != "learner" for e in normal["items"])
    assert client.get(f"/api/v1/projects/{pid}/events?rejected=true",
                      headers=BOB).status_code == 404
    assert client.get(f"/api/v1/projects/{pid}", headers=ALICE).get_json()["phase"] in (
        "submitted", "building")


class StubClient:
    def __init__(self, page: dict[str, Any]) -> None:
        self.page = page
        self.asked: list[tuple[str, dict[str, Any]]] = []

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        self.asked.append((path, kwargs.get("params", {})))
        return self.page


def test_cli_logs_show_rejected_events() -> None:
    client = StubClient({"items": [], "total": 1, "next_after": 0, "rejected": [
        {"id": "r", "topic": "api:POST /api/v1/enroll", "payload": "{}",
         "reason": "enrollment token already used (replay)",
         "received_at": "2026-12-06T01:00:00.000Z"}]})
    lines = rejected_lines(client, "p1")  # type: ignore[arg-type]
    assert lines == ["rejected | 2026-12-06T01:00:00.000Z api:POST /api/v1/enroll: "
                     "enrollment token already used (replay)"]
    assert client.asked == [("projects/p1/events", {"rejected": "true", "limit": 1000})]
