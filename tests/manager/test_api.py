from __future__ import annotations

import concurrent.futures
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flops_contracts.events import Component, Event, EventType
from flops_manager.adapters.memory_orchestrator import MemoryOrchestrator
from flops_manager.api.context import services
from flops_manager.api.errors import render_flops_error
from flops_manager.lifecycle.state import Phase
from flops_manager.lifecycle.worker import ReconcileWorker
from flops_manager.ports.errors import UnstorableError
from flops_manager.services.ingest import EventIngest
from tests.manager.conftest import ALICE, BOB, json_of

GOOD = {"spec": {"training": {"rounds": 2, "learners": 2}},
        "repository": {"url": "https://git.example/u/repo.git", "ref": "main"}}


@pytest.fixture()
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def create(client: FlaskClient, body: dict[str, Any] | None = None) -> dict[str, Any]:
    r = client.post("/api/v1/projects", json=body or GOOD, headers=ALICE)
    assert r.status_code == 201, r.json
    return dict(json_of(r))


def test_health_open_and_ready(client: FlaskClient) -> None:
    assert client.get("/health").json == {"status": "ok"}
    assert client.get("/ready").status_code == 401
    assert client.get("/ready", headers=ALICE).json == {"status": "ready"}
    assert json_of(client.get("/openapi.json"))["openapi"].startswith("3.1")
    assert client.get("/docs").status_code == 200


def test_create_get_list(client: FlaskClient) -> None:
    p = create(client)
    assert p["phase"] == "submitted" and p["owner"] == "alice"
    assert p["progress"] == {"round": 0, "total_rounds": 2, "metrics": {}}
    got = json_of(client.get(f"/api/v1/projects/{p['id']}", headers=ALICE))
    assert got["id"] == p["id"] and got["links"]["tracking"] == "http://mlflow.example:5000"
    listed = json_of(client.get("/api/v1/projects?page=1&page_size=10&phase=submitted",
                                headers=ALICE))
    assert listed["total"] == 1 and listed["items"][0]["id"] == p["id"]
    assert json_of(client.get("/api/v1/projects", headers=BOB))["total"] == 0


def test_responses_say_how_long_the_manager_spent(client: FlaskClient) -> None:
    for response in (client.get("/health"), client.get("/api/v1/projects", headers=ALICE),
                     client.get("/api/v1/projects")):  # refused requests are timed too
        name, _, duration = response.headers["Server-Timing"].partition(";dur=")
        assert name == "app" and 0 <= float(duration) < 10_000, response.headers


@pytest.mark.parametrize("path", [
    "/api/v1/projects", "/api/v1/projects/x", "/api/v1/projects/x/events",
    "/api/v1/projects/x/events/stream", "/api/v1/projects/x/models",
    "/api/v1/projects/x/deployments", "/api/v1/mock-data-providers",
    "/api/v1/mock-data-providers/x", "/api/v1/tracking", "/ready",
])
def test_401_without_token(client: FlaskClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 401 and json_of(r)["code"] == 401
    assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_other_users_project_is_404(client: FlaskClient) -> None:
    pid = create(client)["id"]
    for method, path in [
        ("get", f"/api/v1/projects/{pid}"), ("delete", f"/api/v1/projects/{pid}"),
        ("post", f"/api/v1/projects/{pid}/cancel"), ("get", f"/api/v1/projects/{pid}/events"),
        ("get", f"/api/v1/projects/{pid}/events/stream"), ("get", f"/api/v1/projects/{pid}/models"),
        ("get", f"/api/v1/projects/{pid}/deployments"),
    ]:
        r = getattr(client, method)(path, headers=BOB)
        assert r.status_code == 404, (method, path)
        assert set(r.json) >= {"code", "status", "message"}


INVALID = [
    ({"training": {"strategy": {"name": "NoSuchStrategy"}}}, "spec.training.strategy.name"),
    ({"training": {"rounds": -1}}, "spec.training.rounds"),
    ({"training": {"learners": 2, "min_fit_learners": 3}}, "spec.training"),
    ({"unknown_field": 1}, "spec.unknown_field"),
    ({"training": {"mode": "hierarchical"}}, "spec.training"),
    ({"post_training_steps": ["deploy_trained_model_image"]}, "spec"),
]


@pytest.mark.parametrize(("spec", "field"), INVALID)
def test_422_invalid_spec(client: FlaskClient, spec: dict[str, Any], field: str) -> None:
    r = client.post("/api/v1/projects", json={"spec": spec, "repository": GOOD["repository"]},
                    headers=ALICE)
    assert r.status_code == 422, r.json
    errors = json_of(r)["errors"]["json"]
    assert any(k == field or k.startswith(field) for k in errors), errors
    assert all(isinstance(v, list) and v for v in errors.values())


@pytest.mark.parametrize("url", ["ext::sh -c touch% /tmp/pwned", "--upload-pack=touch /x",
                                 "ftp://host/repo", "http://host/repo", "git://host/repo", ""])
def test_422_bad_repository_url(client: FlaskClient, url: str) -> None:
    r = client.post("/api/v1/projects", json={"spec": {}, "repository": {"url": url}},
                    headers=ALICE)
    assert r.status_code == 422
    assert "url" in str(json_of(r)["errors"])


@pytest.mark.parametrize("url", ["https://h/u/r", "ssh://git@h:22/u/r.git", "git@h:u/r.git",
                                 "file://{git}", "{git}"])
def test_allowed_repository_urls(client: FlaskClient, url: str, tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    create(client, {"spec": {}, "repository": {"url": url.format(git=tmp_path)}})


@pytest.mark.parametrize(("make", "message"), [
    (lambda d: d / "missing", "does not exist on the manager's machine"),
    (lambda d: d, "is not a Git repository: commit it"),
])
def test_local_repositories_are_checked_at_submission(
    client: FlaskClient, tmp_path: Path, make: Callable[[Path], Path], message: str
) -> None:
    path = make(tmp_path)
    for url in (path.as_uri(), str(path)):
        r = client.post("/api/v1/projects", json={"spec": {}, "repository": {"url": url}},
                        headers=ALICE)
        assert r.status_code == 422
        [problem] = json_of(r)["errors"]["json"]["repository.url"]
        assert str(path) in problem and message in problem


def test_index_is_open_and_links_the_docs(client: FlaskClient) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert json_of(r)["docs"] == "/docs" and json_of(r)["api"] == "/api/v1"
    assert client.get(json_of(r)["openapi"]).status_code == 200


def test_swagger_ui_is_served_by_the_manager(client: FlaskClient) -> None:
    page = client.get("/docs").get_data(as_text=True)
    assert "cdn" not in page and "/docs/static/swagger-ui-bundle.js" in page
    bundle = client.get("/docs/static/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and len(bundle.data) > 100_000
    assert client.get("/docs/static/swagger-ui.css").status_code == 200
    assert client.get("/docs/static/../settings.py").status_code == 404


def test_unknown_body_field_rejected(client: FlaskClient) -> None:
    r = client.post("/api/v1/projects", json={**GOOD, "extra": 1}, headers=ALICE)
    assert r.status_code == 422 and "extra" in json_of(r)["errors"]["json"]


def test_cancel_and_delete(app: Flask, client: FlaskClient) -> None:
    pid = create(client)["id"]
    r = client.post(f"/api/v1/projects/{pid}/cancel", headers=ALICE)
    assert r.status_code == 202 and json_of(r)["phase"] == "cancelled"
    assert client.post(f"/api/v1/projects/{pid}/cancel", headers=ALICE).status_code == 409
    r = client.delete(f"/api/v1/projects/{pid}", headers=ALICE)
    assert r.status_code == 202
    assert client.get(f"/api/v1/projects/{pid}", headers=ALICE).status_code == 404
    with app.app_context():
        store = services().store
        assert [a.action["kind"] for a in store.get_project(pid).pending][-1] == "delete_project"


def publish(app: Flask, pid: str, component: str, event: str, **data: Any) -> None:
    e = Event(project_id=pid, component=Component(component), instance="i0",
              event=EventType(event), data=data)
    with app.app_context():
        EventIngest(services().store).handle(f"flops/v1/projects/{pid}/{component}/i0/events",
                                             e.to_json().encode())


def test_events_stream_models_and_deployments(app: Flask, client: FlaskClient,
                                              orchestrator: MemoryOrchestrator) -> None:
    pid = create(client)["id"]
    publish(app, pid, "builder", "started")
    r = json_of(client.get(f"/api/v1/projects/{pid}/events?after=0&limit=10", headers=ALICE))
    assert [e["seq"] for e in r["items"]] == [1] and r["next_after"] == 1
    body = client.get(f"/api/v1/projects/{pid}/events/stream?after=0", headers=ALICE)
    assert body.mimetype == "text/event-stream"
    text = body.get_data(as_text=True)
    assert "id: 1\n" in text and "event: end" in text
    assert client.get(f"/api/v1/projects/{pid}/models", headers=ALICE).json == {"items": []}
    r = client.post(f"/api/v1/projects/{pid}/deployments", json={}, headers=ALICE)
    assert r.status_code == 409
    # drive the project to completion with a model
    with app.app_context():
        store = services().store
        p = store.get_project(pid)
        store.save_project(p.replace(phase=Phase.TRAINING), expected_version=p.version)
    publish(app, pid, "aggregator", "completed", model_uri="models:/m/3", registered_model="m",
            model_version=3, mlflow_run_id="r9", registry_uri="http://mlflow")
    got = json_of(client.get(f"/api/v1/projects/{pid}", headers=ALICE))
    assert got["phase"] == "completed"
    assert got["links"]["mlflow_model"] == "http://mlflow.example:5000/#/models/m/versions/3"
    models = json_of(client.get(f"/api/v1/projects/{pid}/models", headers=ALICE))["items"]
    assert models[0]["model_uri"] == "models:/m/3" and models[0]["mlflow_run_id"] == "r9"
    r = client.post(f"/api/v1/projects/{pid}/deployments", json={"instances": 2}, headers=ALICE)
    assert r.status_code == 201, r.json
    dep = json_of(r)
    assert dep["state"] == "requested" and dep["name"] not in orchestrator.services
    with app.app_context():  # the reconciler, not the request, creates the server
        ReconcileWorker(services().store, orchestrator, services().settings).tick()
    assert orchestrator.services[dep["name"]].role == "inference_server"
    url = f"/api/v1/projects/{pid}/deployments/{dep['id']}"
    assert json_of(client.get(url, headers=ALICE))["state"] == "running"
    listed = json_of(client.get(f"/api/v1/projects/{pid}/deployments", headers=ALICE))["items"]
    assert [d["id"] for d in listed] == [dep["id"]]
    assert client.delete(url, headers=BOB).status_code == 404
    assert client.delete(url, headers=ALICE).status_code == 202
    assert client.get(url, headers=ALICE).status_code == 404
    assert json_of(client.get(f"/api/v1/projects/{pid}/deployments", headers=ALICE))["items"] == []
    with app.app_context():
        ReconcileWorker(services().store, orchestrator, services().settings).tick()
    assert dep["name"] not in orchestrator.services


def test_mock_data_providers(client: FlaskClient, orchestrator: MemoryOrchestrator) -> None:
    body = {"dataset": "digits", "partitions": 3, "partitioner": "dirichlet", "alpha": 0.5,
            "seed": 7, "tag": "digits", "servers": ["127.0.0.1:9000"]}
    r = client.post("/api/v1/mock-data-providers", json=body, headers=ALICE)
    assert r.status_code == 201, r.json
    spec = orchestrator.services[json_of(r)["name"]]
    assert spec.role == "mock_data_provider"
    assert spec.command == ("python", "-m", "flops_dataplane.mock_provider")
    assert spec.env["FLOPS_PARTITIONS"] == "3" and spec.env["FLOPS_ALPHA"] == "0.5"
    assert spec.env["FLOPS_SERVERS"] == '["127.0.0.1:9000"]'
    pid = json_of(r)["id"]
    assert client.get(f"/api/v1/mock-data-providers/{pid}", headers=ALICE).status_code == 200
    assert client.get(f"/api/v1/mock-data-providers/{pid}", headers=BOB).status_code == 404
    assert len(json_of(client.get("/api/v1/mock-data-providers", headers=ALICE))["items"]) == 1
    bad = client.post("/api/v1/mock-data-providers", json={**body, "alpha": None}, headers=ALICE)
    assert bad.status_code == 422 and "alpha" in json_of(bad)["errors"]["json"]


def test_tracking(client: FlaskClient) -> None:
    r = client.get("/api/v1/tracking", headers=ALICE)
    assert r.json == {"tracking_url": "http://mlflow.example:5000"}


def test_50_concurrent_creations(app: Flask) -> None:
    def one(i: int) -> str:
        r = app.test_client().post("/api/v1/projects", json=GOOD, headers=ALICE)
        assert r.status_code == 201
        return str(json_of(r)["id"])

    with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
        ids = list(pool.map(one, range(50)))
    assert len(set(ids)) == 50
    listed = json_of(app.test_client().get("/api/v1/projects?page_size=200", headers=ALICE))
    assert listed["total"] == 50 and {p["id"] for p in listed["items"]} == set(ids)


def test_cursor_pages_list_every_project_once(client: FlaskClient) -> None:
    ids = {create(client)["id"] for _ in range(5)}
    first = json_of(client.get("/api/v1/projects?page_size=2", headers=ALICE))
    assert first["total"] == 5 and first["page"] == 1 and first["next_cursor"]
    seen = [p["id"] for p in first["items"]]
    cursor = first["next_cursor"]
    while cursor:
        page = json_of(client.get(f"/api/v1/projects?page_size=2&cursor={cursor}", headers=ALICE))
        assert page["total"] is None and page["page"] is None
        seen += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
    assert len(seen) == 5 and set(seen) == ids
    newest = json_of(client.get("/api/v1/projects?cursor=&page_size=5", headers=ALICE))
    assert [p["id"] for p in newest["items"]] == seen and newest["next_cursor"] is None
    assert json_of(client.get("/api/v1/projects?cursor=", headers=BOB))["items"] == []


@pytest.mark.parametrize("cursor", ["nonsense", "WyJ4IiwxXQ", "W10"])
def test_bad_cursor_is_a_422_naming_the_parameter(client: FlaskClient, cursor: str) -> None:
    r = client.get(f"/api/v1/projects?cursor={cursor}", headers=ALICE)
    assert r.status_code == 422, r.json
    assert "cursor" in json_of(r)["message"]


@pytest.mark.parametrize(("extra", "says"), [
    ({"x": 10**30}, "64-bit"), ({"a\x00b": 1}, "NUL"), ({"$where": 1}, "'$'"),
    ({"a.b": 1}, "'.'"), ({"s": "y" * 5000}, "4096"),
])
def test_unstorable_extra_is_refused_with_422_naming_the_fix(
    client: FlaskClient, extra: dict[str, Any], says: str
) -> None:
    """The attack of issue 19: values BSON cannot encode used to answer 500 on MongoDB."""
    spec = {"training": {"learner_config": {"extra": extra}}}
    r = client.post("/api/v1/projects", json={**GOOD, "spec": spec}, headers=ALICE)
    assert r.status_code == 422, r.json
    messages = json_of(r)["errors"]["json"]["spec.training.learner_config.extra"]
    assert says in " ".join(messages)
    assert json_of(client.get("/api/v1/projects", headers=ALICE))["total"] == 0


def test_unstorable_document_from_the_store_answers_422(app: Flask, client: FlaskClient) -> None:
    """Whatever still reaches the store unencodable is a 422 that says what to change."""
    pid = create(client)["id"]
    with app.app_context():
        store = services().store
        project = store.get_project(pid)
        bad = project.replace(metrics={"n": 10**30})
        with pytest.raises(UnstorableError, match="64-bit range"):
            store.save_project(bad, expected_version=project.version)
        response, status = render_flops_error(UnstorableError("x"))
    assert status == 422 and json_of(response)["code"] == 422



def test_unstorable_event_is_kept_as_rejected_not_dropped(app: Flask, client: FlaskClient) -> None:
    """A component event BSON cannot encode is rejected with the reason, not lost in a log."""
    pid = create(client)["id"]
    publish(app, pid, "builder", "progress", huge=10**30)
    with app.app_context():
        store = services().store
        rejected = store.list_rejected_events()
        assert store.list_events(pid) == []
    assert len(rejected) == 1 and "64-bit" in rejected[0].reason
