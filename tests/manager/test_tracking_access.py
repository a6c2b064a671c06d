"""MLflow access scoped per owner, enforced by a real MLflow server running its basic-auth app.

The manager's :class:`TrackingLogins` (through the real ``MlflowAuthAccess`` adapter) prepares
two owners' projects; the test then talks to MLflow's REST API, both the client API
(``/api/2.0``) and the calls the UI makes (``/ajax-api/2.0``), with each login FLOps hands
out: owners' (``GET /api/v1/tracking``) and components' (``POST /api/v1/enroll``).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
import requests
from werkzeug.serving import make_server

from flops_manager.api.projects.views import links
from flops_manager.app import create_app
from flops_manager.identity import tracking_policy
from flops_manager.ports.errors import PermanentError
from tests.fixtures.mlflow_auth import PREFIXES, AuthMlflow, World, start_auth_mlflow
from tests.fixtures.mlflow_target import mlflow_pointed_at
from tests.manager.conftest import json_of

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def mlflow_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthMlflow]:
    server = start_auth_mlflow(tmp_path_factory.mktemp("mlflow-auth"))
    yield server
    server.stop()

@pytest.fixture(scope="module")
def world(mlflow_auth: AuthMlflow) -> World:
    return World(mlflow_auth)


def test_owner_b_cannot_read_owner_a_experiments_runs_or_models(world: World) -> None:
    a = world.project("alice", "digits", "alice-digits")
    world.project("bob", "digits", "bob-digits")  # same project name: another experiment
    alice, bob = world.owner_login("tok-alice"), world.owner_login("tok-bob")
    assert alice[0] == "alice" and bob[0] == "bob"
    writer = world.component_login(a, "aggregator")
    experiment = world.experiment_id(a)
    made = world.run(writer, experiment)
    assert made.status_code == 200, made.text
    run = made.json()["run"]
    assert world.version(writer, "alice-digits", run).status_code == 200
    run_id = run["info"]["run_id"]
    reads = [
        ("GET", "/experiments/get", {"params": {"experiment_id": experiment}}),
        ("GET", "/runs/get", {"params": {"run_id": run_id}}),
        ("GET", "/metrics/get-history", {"params": {"run_id": run_id, "metric_key": "loss"}}),
        ("GET", "/registered-models/get", {"params": {"name": "alice-digits"}}),
        ("GET", "/model-versions/get", {"params": {"name": "alice-digits", "version": "1"}}),
    ]
    for prefix in PREFIXES:
        for method, path, kwargs in reads:
            assert world.call(method, path, alice, prefix=prefix, **kwargs).status_code == 200
            refused = world.call(method, path, bob, prefix=prefix, **kwargs)
            assert refused.status_code == 403, (prefix, path, refused.text)
            anonymous = world.call(method, path, None, prefix=prefix, **kwargs)
            assert anonymous.status_code == 401, (prefix, path, anonymous.text)
        # searches answer, but with nothing of alice's
        runs = world.call("POST", "/runs/search", bob, prefix=prefix,
                          json={"experiment_ids": [experiment]}).json()
        assert not runs.get("runs"), runs
        experiments = world.call("POST", "/experiments/search", bob, prefix=prefix,
                                 json={"max_results": 100}).json().get("experiments", [])
        assert all(not e["name"].startswith("alice/") for e in experiments), experiments
        assert {e["name"] for e in experiments} == {"bob/flops-digits"}
        models = world.call("GET", "/registered-models/search", bob, prefix=prefix).json()
        assert [m["name"] for m in models.get("registered_models", [])] == ["bob-digits"]
    # and bob cannot change or delete what is alice's
    assert world.call("POST", "/runs/delete", bob, json={"run_id": run_id}).status_code == 403
    assert world.call("DELETE", "/registered-models/delete", bob,
                      json={"name": "alice-digits"}).status_code == 403


def test_a_project_aggregator_writes_only_its_own_experiment_and_model(world: World) -> None:
    a = world.project("alice", "mnist", "alice-mnist")
    b = world.project("bob", "cifar", "bob-cifar")
    writer = world.component_login(a, "aggregator")
    own = world.run(writer, world.experiment_id(a))
    assert own.status_code == 200, own.text
    assert world.version(writer, "alice-mnist", own.json()["run"]).status_code == 200
    assert world.run(writer, world.experiment_id(b)).status_code == 403
    assert world.version(writer, "bob-cifar", own.json()["run"]).status_code == 403
    assert world.call("GET", "/experiments/get", writer,
                      params={"experiment_id": world.experiment_id(b)}).status_code == 403
    # the project's reader (model builder, inference servers) reads but cannot write
    reader = world.component_login(a, "inference_server")
    assert world.call("GET", "/registered-models/get", reader,
                      params={"name": "alice-mnist"}).status_code == 200
    assert world.run(reader, world.experiment_id(a)).status_code == 403
    assert world.call("GET", "/registered-models/get", reader,
                      params={"name": "bob-cifar"}).status_code == 403


def test_component_logins_end_with_the_project(world: World) -> None:
    a = world.project("alice", "ending", None)
    writer = world.component_login(a, "aggregator")
    reader = world.component_login(a, "model_builder")
    experiment = world.experiment_id(a)
    assert world.run(writer, experiment).status_code == 200
    world.enrollment.revoke(a.id)  # the project ended
    assert world.run(writer, experiment).status_code == 401
    get = {"experiment_id": experiment}
    assert world.call("GET", "/experiments/get", reader, params=get).status_code == 200
    world.enrollment.revoke(a.id, standalone=True)  # the project is deleted
    assert world.call("GET", "/experiments/get", reader, params=get).status_code == 401
    owner = world.owner_login("tok-alice")  # the owner keeps their experiment
    assert world.call("GET", "/experiments/get", owner, params=get).status_code == 200


def test_names_created_by_another_login_are_never_granted_to_an_owner(world: World) -> None:
    world.project("alice", "first", "alice-owned")
    with pytest.raises(PermanentError, match="'alice-owned' was created in MLflow by someone"):
        world.project("bob", "second", "alice-owned")
    # MLflow lets any login create experiments and models (and manage them): alice's
    # aggregator squats the names of bob's next project, even with a forged owner tag
    writer = world.component_login(world.project("alice", "third", None), "aggregator")
    forged = [{"key": tracking_policy.OWNER_TAG, "value": "bob"},
              {"key": tracking_policy.PROOF_TAG, "value": "guessed"}]
    assert world.call("POST", "/experiments/create", writer,
                      json={"name": "bob/flops-next", "tags": forged}).status_code == 200
    assert world.call("POST", "/registered-models/create", writer,
                      json={"name": "bob-next", "tags": forged}).status_code == 200
    with pytest.raises(PermanentError, match="'bob/flops-next' was created in MLflow by some"):
        world.project("bob", "next", None)
    with pytest.raises(PermanentError, match="'bob-next' was created in MLflow by someone"):
        world.project("bob", "other", "bob-next")


def test_reserved_owner_names_get_no_login(world: World) -> None:
    settings = world.settings.model_copy(update={
        "api_tokens": '{"tok-admin": "admin", "tok-x": "flops-project-p1-aggregator"}'})
    app = create_app(settings, store=world.store, enrollment=world.enrollment)
    for token in ("tok-admin", "tok-x"):
        got = app.test_client().get("/api/v1/tracking",
                                    headers={"Authorization": f"Bearer {token}"})
        assert got.status_code == 403, got.get_data(as_text=True)
        assert "no MLflow login for this owner" in json_of(got)["message"]


def test_the_cli_prints_the_owner_s_working_login(world: World) -> None:
    a = world.project("alice", "cli", None)
    server = make_server("127.0.0.1", 0, world.app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {**os.environ, "FLOPS_API_URL": f"http://127.0.0.1:{server.server_port}",
               "FLOPS_API_TOKEN": "tok-alice"}
        done = subprocess.run([sys.executable, "-m", "flops_manager.cli.main", "project",
                               "tracking"], env=env, capture_output=True, text=True,
                              timeout=120, check=False)
    finally:
        server.shutdown()
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(": ", 1) for line in done.stdout.splitlines() if ": " in line)
    assert lines["MLflow UI"] == world.url and lines["login"] == "alice"
    login = (lines["login"], lines["password"])
    assert world.call("GET", "/experiments/get", login,
                      params={"experiment_id": world.experiment_id(a)}).status_code == 200


class _Manager:
    """A duck-typed ModelManager: only what the aggregator's logging needs."""

    def __init__(self, model: object) -> None:
        self.model = model

    def get_model(self) -> object:
        return self.model


def test_the_aggregator_tracks_with_its_login_and_the_reader_loads_the_model(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    from aggregator.experiment_kind import mark_model_training
    from aggregator.tracking import MlflowTracker

    a = world.project("alice", "aggregated", "alice-aggregated")
    x, y = load_digits(return_X_y=True)

    def use(login: tuple[str, str]) -> None:  # MLflow's client reads these variables
        monkeypatch.setenv(tracking_policy.TRACKING_USERNAME, login[0])
        monkeypatch.setenv(tracking_policy.TRACKING_PASSWORD, login[1])

    use(world.component_login(a, "aggregator"))
    tracker = MlflowTracker(tracking_uri=world.url, run_name="aggregated-training",
                            experiment_name=tracking_policy.experiment_name(
                                "alice", "aggregated", a.id))
    tracker.start(params={"rounds": 1}, tags={"flops.project_id": a.id})
    assert tracker.experiment_id == world.experiment_id(a)  # the manager's experiment
    assert mark_model_training(world.url, tracker.experiment_id)
    tracker.log_summary({"accuracy": 0.9})
    fitted = LogisticRegression(max_iter=200).fit(x, y)
    model = tracker.log_model(_Manager(fitted), registered_model_name="alice-aggregated",
                              tags={"flops.project_id": a.id})
    tracker.finish()
    assert model.version == "1" and model.registry_uri == "models:/alice-aggregated/1"
    with mlflow_pointed_at(world.url):
        use(world.component_login(a, "inference_server"))
        loaded = mlflow.pyfunc.load_model(model.registry_uri)
        assert (loaded.predict(x[:5]) == fitted.predict(x[:5])).all()
        use(world.owner_login("tok-bob"))
        with pytest.raises(mlflow.exceptions.MlflowException, match=r"403|Permission denied"):
            mlflow.pyfunc.load_model(model.registry_uri)

    # the links FLOps prints (project status, `flops project status`) open for the owner
    # with their login and for nobody else: the UI page asks the browser for a login, and
    # the REST calls the UI makes for each link's view answer the owner only
    done = dataclasses.replace(a, model={
        "mlflow_experiment_id": tracker.experiment_id, "mlflow_run_id": tracker.run_id,
        "registered_model": "alice-aggregated", "model_version": model.version})
    shown = links(done, world.url)
    assert all(shown[k] for k in ("tracking", "mlflow_runs", "mlflow_run", "mlflow_model"))
    alice, bob = world.owner_login("tok-alice"), world.owner_login("tok-bob")
    for key in ("tracking", "mlflow_runs", "mlflow_run", "mlflow_model"):
        page = str(shown[key]).split("#", 1)[0]
        anonymous = requests.get(page, timeout=30)
        assert anonymous.status_code == 401, (key, anonymous.status_code)
        assert anonymous.headers.get("WWW-Authenticate", "").startswith("Basic"), key
        opened = requests.get(page, auth=alice, timeout=30)
        assert opened.status_code == 200 and "<html" in opened.text.lower(), key
    assert str(shown["mlflow_runs"]).startswith(
        f"{world.url}/#/experiments/{tracker.experiment_id}/runs")
    assert shown["mlflow_run"] == (
        f"{world.url}/#/experiments/{tracker.experiment_id}/runs/{tracker.run_id}")
    assert shown["mlflow_model"] == f"{world.url}/#/models/alice-aggregated/versions/1"
    views = (("GET", "/experiments/get", {"experiment_id": tracker.experiment_id}),
             ("POST", "/runs/search", {"experiment_ids": [tracker.experiment_id]}),
             ("GET", "/runs/get", {"run_id": tracker.run_id}),
             ("GET", "/registered-models/get", {"name": "alice-aggregated"}),
             ("GET", "/model-versions/get", {"name": "alice-aggregated", "version": "1"}))
    for method, path, args in views:
        where = {"json": args} if method == "POST" else {"params": args}
        got = world.call(method, path, alice, prefix="/ajax-api/2.0/mlflow", **where)
        assert got.status_code == 200, (path, got.status_code, got.text[:200])
        refused = world.call(method, path, bob, prefix="/ajax-api/2.0/mlflow", **where)
        if path == "/runs/search":  # a search answers, without another owner's runs
            assert refused.json().get("runs", []) == [], refused.text[:200]
        else:
            assert refused.status_code == 403, (path, refused.status_code)
    found = world.call("POST", "/runs/search", alice, prefix="/ajax-api/2.0/mlflow",
                       json={"experiment_ids": [tracker.experiment_id]}).json()
    assert [r["info"]["run_id"] for r in found["runs"]] == [tracker.run_id]
