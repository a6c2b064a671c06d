"""Table tests: every client call against every recorded response shape of both versions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest
import requests

from flops_manager.adapters.oakestra import models
from flops_manager.adapters.oakestra.client import RootOrchestratorClient
from flops_manager.adapters.oakestra.errors import (
    OakestraAuthError,
    OakestraConflictError,
    OakestraPermanentError,
    OakestraTemporaryError,
)
from flops_manager.adapters.oakestra.settings import OakestraSettings

RECORDED = Path(__file__).parent / "data" / "recorded"
FILES = {
    "develop": RECORDED / "system_manager_http__develop_0e879834.jsonl",
    "v0.4.400": RECORDED / "system_manager_http__v0.4.400_1f15bdc7.jsonl",
}


def load(version: str) -> dict[int, dict[str, Any]]:
    entries = [json.loads(line) for line in FILES[version].read_text().splitlines() if line]
    return {e["n"]: e for e in entries}


def response(entry: dict[str, Any]) -> requests.Response:
    resp = requests.Response()
    resp.status_code = entry["status"]
    resp._content = entry["raw_body"].encode()
    resp.headers["Content-Type"] = entry["content_type"]
    resp.encoding = "utf-8"
    return resp


class ReplaySession:
    """Answers logins with entry #1 and everything else with one chosen entry."""

    def __init__(self, entries: dict[int, dict[str, Any]], answer: int) -> None:
        self.entries = entries
        self.answer = answer
        self.calls: list[tuple[str, str, Any]] = []

    def request(self, method: str, url: str, **kw: Any) -> requests.Response:
        self.calls.append((method, url, kw.get("json")))
        if url.endswith("/api/auth/login"):
            return response(self.entries[1])
        return response(self.entries[self.answer])

    def close(self) -> None:
        pass


def client_for(version: str, answer: int) -> tuple[RootOrchestratorClient, ReplaySession]:
    session = ReplaySession(load(version), answer)
    settings = OakestraSettings(base_url="http://oak:10000", username="Admin",
                                password="Admin", retries=0)
    # the replay stands in for the requests.Session the client would build
    return RootOrchestratorClient(settings, session_factory=lambda: cast(requests.Session, session)
                                  ), session


APP = "6b028662427be4af4d5de27f"
SVC = "6b028662427be4af4d5de280"

# (entry, call, expected) -- expected is a check function or an exception type
CASES: list[tuple[int, str, Any]] = [
    (12, "clusters_all", lambda r: [c.name for c in r] == ["clusterA"]),
    (13, "clusters", lambda r: r == []),
    (15, "clusters_all", lambda r: r[0].active and r[0].name == "clusterA"),
    (16, "clusters", lambda r: len(r) == 1 and r[0].active and len(r[0].cluster_id) == 24),
    (17, "create_app", lambda r: r[0].name == "projabc123" and len(r[0].app_id) == 24),
    (18, "create_app", OakestraConflictError),
    (19, "create_app", OakestraPermanentError),
    (20, "create_app", OakestraTemporaryError),
    (21, "create_app", OakestraPermanentError),
    (24, "list_apps", lambda r: [a.name for a in r] == ["projabc123"]),
    (26, "list_apps", lambda r: r[0].user_id == "Admin"),
    (27, "append", lambda r: len(r.job_id) == 24 and r.deployed == ("flearnerabc",)
     and r.failed == ()),
    (28, "append", OakestraPermanentError),
    (29, "append", OakestraPermanentError),
    (30, "append", OakestraPermanentError),
    (31, "get_service", lambda r: r.status is None and r.instances == ()
     and r.rr_ip == "10.30.1.2"),
    (32, "deploy", lambda r: r is None),
    (33, "get_service", lambda r: r.status == "CLUSTER_SCHEDULED" and len(r.instances) == 1),
    (35, "get_service", lambda r: (r.status == "RUNNING" and r.instances[0].status == "RUNNING"
     and r.instances[0].public_ip == "192.168.1.10" and r.instances[0].cpu_percent == 1.5)
     or r.instances[0].cpu_percent is None),
    (36, "list_services", lambda r: r[0].name == "flearnerabc" and r[0].one_shot),
    (37, "list_services", lambda r: len(r) == 1),
    (38, "delete_service_raw", OakestraTemporaryError),
    (40, "get_service", lambda r: len(r.instances) == 2),
    (41, "undeploy", lambda r: r is None),
    (42, "get_service", lambda r: [i.number for i in r.instances] == [1]),
    (43, "deploy", lambda r: r is None),
    (44, "get_service", lambda r: r is None),
    (45, "delete_service", lambda r: r is True),
    (47, "create_app", lambda r: [len(a.services) for a in r] == [0, 2]),
    (48, "list_services", lambda r: [s.name for s in r] == ["curl", "nginx"]
     and r[0].port == "9080"),
    (50, "list_apps", lambda r: len(r) == 2),
    (51, "delete_app", lambda r: r is True),
    (53, "delete_app", lambda r: r is False),
    (54, "list_apps", lambda r: r == []),
    (4, "list_apps", OakestraAuthError),
    (5, "list_apps", OakestraAuthError),
    (6, "list_services", OakestraAuthError),
    (9, "list_apps", OakestraAuthError),
]


def recorded_app(version: str, entry: int) -> str:
    """The application whose services a recorded listing holds (the client filters by it)."""
    raw = load(version)[entry]
    if raw["status"] != 200 or not raw["path"].startswith("/api/services/"):
        return APP
    services = models.parse_services(models.decode(raw["raw_body"]))
    return services[0].app_id if services else APP


def call(client: RootOrchestratorClient, name: str, app_id: str = APP) -> Any:
    sla = {"sla_version": "v2.0", "customerID": "x", "applications": []}
    return {
        "clusters": lambda: client.list_clusters(),
        "clusters_all": lambda: client.list_clusters(active_only=False),
        "create_app": lambda: client.create_application(sla),
        "list_apps": lambda: client.list_applications(),
        "append": lambda: client.append_services(sla),
        "get_service": lambda: client.get_service(SVC),
        "list_services": lambda: client.list_services(app_id),
        "deploy": lambda: client.deploy_instance(SVC),
        "undeploy": lambda: client.undeploy_instance(SVC, 0),
        "delete_service": lambda: client.delete_service(SVC),
        "delete_service_raw": lambda: client.delete_service(SVC),
        "delete_app": lambda: client.delete_application(APP),
    }[name]()


@pytest.mark.parametrize("version", sorted(FILES))
@pytest.mark.parametrize(("entry", "name", "expected"), CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_client_parses_recorded_answer(version, entry, name, expected):
    client, session = client_for(version, entry)
    app_id = recorded_app(version, entry)
    if isinstance(expected, type):
        with pytest.raises(expected) as info:
            call(client, name, app_id)
        error = info.value
        assert error.status == load(version)[entry]["status"]  # type: ignore[attr-defined]
        assert error.method in ("GET", "POST", "PUT", "DELETE")  # type: ignore[attr-defined]
        assert error.url.startswith("http://oak:10000/api/")  # type: ignore[attr-defined]
        assert str(error.status) in str(error)  # type: ignore[attr-defined]
    else:
        assert expected(call(client, name, app_id))
    assert session.calls[0][1].endswith("/api/auth/login") or name.startswith("clusters")


@pytest.mark.parametrize("version", sorted(FILES))
def test_login_answers(version):
    entries = load(version)
    tokens = models.parse_tokens(models.decode(entries[1]["raw_body"]))
    assert tokens.access and tokens.refresh
    assert models.parse_tokens(models.decode(entries[8]["raw_body"])).refresh is None
    for n, expected in ((2, "refused the credentials"), (3, "unknown organization")):
        session = ReplaySession(entries, n)
        session.entries = {**entries, 1: entries[n]}
        settings = OakestraSettings(base_url="http://oak:10000", username="Admin",
                                    password="nope", organization="nope",
                                    retries=0)

        def replay(s: ReplaySession = session) -> requests.Session:
            return cast(requests.Session, s)  # the replay stands in for a requests.Session

        client = RootOrchestratorClient(settings, session_factory=replay)
        with pytest.raises(OakestraAuthError, match=expected) as info:
            client.login()
        assert "nope" not in info.value.body  # the password is never echoed
        assert info.value.status == entries[n]["status"]


@pytest.mark.parametrize("version", sorted(FILES))
def test_error_shapes(version):
    entries = load(version)
    kinds = {n: models.parse_error(entries[n]["raw_body"]).kind for n in (2, 4, 5, 6, 7, 46)}
    assert kinds == {2: "smorest", 4: "jwt", 5: "jwt", 6: "message", 7: "jwt", 46: "smorest"}
    assert models.decode(entries[22]["raw_body"]) is None
    assert models.decode(entries[54]["raw_body"]) == []
    user = models.decode(entries[11]["raw_body"])
    assert models.object_id(user["_id"]) == "6b0286598971fa6562de1b1f" or len(
        models.object_id(user["_id"])) == 24


def test_recorded_documents_parse_in_both_versions():
    for version in FILES:
        for entry in load(version).values():
            if entry["status"] != 200 or not entry["raw_body"].strip():
                continue
            if entry["path"].startswith("/api/service/") and entry["method"] == "GET":
                service = models.parse_service(models.decode(entry["raw_body"]))
                assert service.service_id and service.app_id
            if entry["path"].startswith("/api/services/"):
                models.parse_services(models.decode(entry["raw_body"]))
            if entry["path"].startswith("/api/applications/"):
                models.parse_applications(models.decode(entry["raw_body"]))
