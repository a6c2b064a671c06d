"""Pure translation of a project's actions into ServiceSpecs (no servers needed)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flops_manager.lifecycle.actions import Action, ActionKind, Role
from flops_manager.lifecycle.service_specs import (
    LEARNER_DATA_TOKEN,
    MOCK_WRITE_TOKEN,
    Placement,
    action_specs,
    services_of,
    tracking_server_spec,
)
from flops_manager.lifecycle.state import Project
from flops_manager.lifecycle.worker import choose_clusters
from flops_manager.ports.errors import PermanentError
from flops_manager.ports.orchestrator import BuildTarget, Cluster
from flops_manager.settings import Settings

PID = "p0123456789abcdef"
BUILD = {"env_dir": "/cache/envs/k/venv", "repo_dir": "/cache/checkouts/c", "commit": "c" * 40,
         "images": {"learner": "reg/l:1", "aggregator": "reg/a:1"}}


def project(spec: dict[str, Any], **kw: Any) -> Project:
    return Project(id=PID, owner="alice", spec=spec, repository={"url": "https://h/r.git"},
                   created_at=0, updated_at=0, build=BUILD, **kw)


def place(target: BuildTarget = BuildTarget.ENVIRONMENT, clusters: tuple[str, ...] = ()
          ) -> Placement:
    return Placement(target=target, events_uri="mqtt://broker:1883",
                     tracking_uri="http://mlflow:5000", clusters=clusters,
                     resolve=lambda name: f"{name}.svc:9")


SETTINGS = Settings(data_dir="/data")


def specs(kind: ActionKind, p: Project, pl: Placement) -> list[Any]:
    return list(action_specs(Action(kind, PID), p, SETTINGS, pl))


def test_classic_aggregator_and_learners_from_the_environment() -> None:
    p = project({"training": {"rounds": 4, "learners": 3}})
    (agg,) = specs(ActionKind.DEPLOY_AGGREGATOR, p, place())
    assert agg.image == "env:///cache/envs/k/venv" and agg.command == ("python", "-m",
                                                                        "aggregator")
    assert agg.env["FLOPS_REPO_DIR"] == "/cache/checkouts/c"
    assert agg.env["FLOPS_MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert json.loads(agg.env["FLOPS_TRAINING"])["rounds"] == 4
    assert agg.env["FLOPS_EXPECTED_CLIENTS"] == "3" and agg.listen_env == "FLOPS_LISTEN_ADDRESS"
    assert "FLOPS_LISTEN_ADDRESS" not in agg.env  # the backend decides where it listens
    (learners,) = specs(ActionKind.DEPLOY_LEARNERS, p, place())
    assert learners.instances == 3
    assert learners.env["FLOPS_SERVER_ADDRESS"] == f"{PID}-aggregator.svc:9"
    assert learners.env["FLOPS_LEARNER_COUNT"] == "3"
    assert not learners.secret_env  # no data plane, no token


def test_container_targets_use_built_images_and_baked_repository() -> None:
    p = project({"training": {"learners": 2}})
    (agg,) = specs(ActionKind.DEPLOY_AGGREGATOR, p, place(BuildTarget.IMAGE))
    (learners,) = specs(ActionKind.DEPLOY_LEARNERS, p, place(BuildTarget.IMAGE))
    assert (agg.image, learners.image) == ("reg/a:1", "reg/l:1")
    assert "FLOPS_REPO_DIR" not in agg.env and "FLOPS_REPO_DIR" not in learners.env


def test_learners_not_placed_on_nodes_get_no_data_server_and_no_data_token() -> None:
    """Only node learners read data from FLOps: there is no project-wide data server."""
    p = project({"training": {"learners": 3}})
    assert specs(ActionKind.DEPLOY_DATA, p, place()) == []
    (learners,) = specs(ActionKind.DEPLOY_LEARNERS, p, place())
    assert "FLOPS_DATA_SERVER" not in learners.env and not learners.secret_env
    assert json.loads(learners.env["FLOPS_DATA_TAGS"]) == []


def test_hierarchical_root_then_one_cluster_aggregator_and_learner_group_per_cluster() -> None:
    p = project({"training": {"mode": "hierarchical", "cycles": 2, "rounds": 2, "learners": 2,
                              "clusters": ["edge-a", "edge-b"]}}, clusters=("edge-a", "edge-b"))
    pl = place(clusters=("edge-a", "edge-b"))
    root, c0, c1 = specs(ActionKind.DEPLOY_AGGREGATOR, p, pl)
    assert root.env["FLOPS_ROLE"] == "root" and root.env["FLOPS_EXPECTED_CLIENTS"] == "2"
    assert (c0.name, c0.cluster, c0.env["FLOPS_ROOT_ADDRESS"]) == (
        f"{PID}-cluster-aggregator-0", "edge-a", f"{PID}-aggregator.svc:9")
    assert c1.env["FLOPS_CLUSTER_NAME"] == "edge-b"
    l0, l1 = specs(ActionKind.DEPLOY_LEARNERS, p, pl)
    assert l0.env["FLOPS_SERVER_ADDRESS"] == f"{PID}-cluster-aggregator-0.svc:9"
    assert (l0.env["FLOPS_LEARNER_INDEX_OFFSET"], l1.env["FLOPS_LEARNER_INDEX_OFFSET"]) == (
        "0", "2")
    assert l1.env["FLOPS_LEARNER_COUNT"] == "4" and l1.cluster == "edge-b"
    assert services_of(p, (Role.LEARNERS,)) == [f"{PID}-learners-0", f"{PID}-learners-1"]


def test_builder_and_inference_specs() -> None:
    p = project({}, model={"model_uri": "models:/m/1"})
    (builder,) = specs(ActionKind.BUILD_IMAGES, p, place())
    assert builder.one_shot and builder.env["FLOPS_TARGET"] == "environment"
    assert builder.env["FLOPS_REPOSITORY_URL"] == "https://h/r.git"
    assert builder.env["FLOPS_CACHE_DIR"] == "/data/build-cache"
    (inference,) = specs(ActionKind.DEPLOY_INFERENCE, p, place())
    assert inference.public and inference.env["FLOPS_MODEL_URI"] == "models:/m/1"
    assert inference.env["FLOPS_TRACKING_URI"] == "http://mlflow:5000"
    tracking = tracking_server_spec(SETTINGS)
    assert tracking.public and tracking.listen_env == "FLOPS_LISTEN_ADDRESS"


def test_clusters_are_chosen_from_active_ones() -> None:
    active = [Cluster("1", "edge-a"), Cluster("2", "edge-b"), Cluster("3", "down", active=False)]
    assert choose_clusters(None, active, labels=False) == ("edge-a", "edge-b")
    assert choose_clusters(["edge-b"], active, labels=False) == ("edge-b",)
    with pytest.raises(PermanentError, match="not active"):
        choose_clusters(["down"], active, labels=False)
    with pytest.raises(PermanentError, match="no active cluster"):
        choose_clusters(None, [], labels=False)
    assert choose_clusters(["x", "y"], [Cluster("local", "local")], labels=True) == ("x", "y")


def test_image_builds_get_registry_settings_and_the_password_only_as_a_secret() -> None:
    settings = Settings(data_dir="/data", registry="127.0.0.1:5005/flops",
                        registry_tls_verify=False, registry_username="bob",
                        registry_password="hunter2", extra_ca_bundle="/etc/ssl/ca.crt")
    p = project({"platforms": ["linux/amd64", "linux/arm64"]}, model={"model_uri": "m:/1"})
    (builder,) = action_specs(Action(ActionKind.BUILD_IMAGES, PID), p, settings,
                              place(BuildTarget.IMAGE))
    assert builder.env["FLOPS_TARGET"] == "images" and builder.privileged
    assert builder.env["FLOPS_REGISTRY"] == "127.0.0.1:5005/flops"
    assert builder.env["FLOPS_REGISTRY_TLS_VERIFY"] == "false"
    assert json.loads(builder.env["FLOPS_PLATFORMS"]) == ["linux/amd64", "linux/arm64"]
    # the login's variables only: a project push login is made at enrollment
    assert set(builder.secret_env) == {"FLOPS_REGISTRY_USERNAME", "FLOPS_REGISTRY_PASSWORD"}
    assert "hunter2" not in json.dumps(dict(builder.secret_env))
    assert builder.env["FLOPS_IMAGE_NAMESPACE"].startswith("flops/owners/o-")
    assert "hunter2" not in json.dumps(dict(builder.env))
    (model,) = action_specs(Action(ActionKind.BUILD_MODEL_IMAGE, PID), p, settings,
                            place(BuildTarget.IMAGE))
    assert model.env["FLOPS_TARGET"] == "model_image" and model.env["FLOPS_MODEL_URI"] == "m:/1"


def test_components_get_the_broker_login_only_as_a_secret() -> None:
    settings = Settings(data_dir="/data", component_mqtt_username="flops-component",
                        component_mqtt_password="mqtt-pw")
    p = project({"training": {"learners": 2}})
    for kind in (ActionKind.BUILD_IMAGES, ActionKind.DEPLOY_AGGREGATOR,
                 ActionKind.DEPLOY_LEARNERS):
        for spec in action_specs(Action(kind, PID), p, settings, place()):
            assert spec.secret_env["FLOPS_MQTT_USERNAME"] == "flops-component"
            assert spec.secret_env["FLOPS_MQTT_PASSWORD"] == "mqtt-pw"
            assert "mqtt-pw" not in json.dumps(dict(spec.env))


def test_mlflow_logins_go_only_to_the_roles_that_use_them_and_only_as_secrets() -> None:
    settings = Settings(data_dir="/data", tracking_access="mlflow-basic-auth",
                        tracking_admin_password="admin-password-123")
    p = project({"name": "digits", "training": {"learners": 2},
                 "model": {"registered_model_name": "digits"}})
    logins: dict[str, str | None] = {}
    for kind in (ActionKind.BUILD_IMAGES, ActionKind.DEPLOY_AGGREGATOR,
                 ActionKind.DEPLOY_LEARNERS, ActionKind.BUILD_MODEL_IMAGE):
        for spec in action_specs(Action(kind, PID), p, settings, place()):
            logins[spec.role] = spec.secret_env.get("MLFLOW_TRACKING_USERNAME")
            assert "MLFLOW_TRACKING_PASSWORD" not in spec.env
            assert "admin-password-123" not in json.dumps([dict(spec.env),
                                                           dict(spec.secret_env)])
            if spec.role == "aggregator":  # the owner's experiment, made by the manager
                assert spec.env["FLOPS_MLFLOW_EXPERIMENT"] == "alice/flops-digits"
    assert logins == {"builder": None, "aggregator": f"flops-project-{PID}-aggregator",
                      "learners": None, "model_builder": f"flops-project-{PID}-reader"}
    (open_agg,) = specs(ActionKind.DEPLOY_AGGREGATOR, p, place())  # open MLflow: unchanged
    assert "FLOPS_MLFLOW_EXPERIMENT" not in open_agg.env
    assert "MLFLOW_TRACKING_USERNAME" not in open_agg.secret_env


def test_learners_on_flops_nodes_are_pinned_to_their_node_and_read_only_its_server() -> None:
    placed = ({"learner": 0, "node": "pi-kitchen", "cluster": "home", "rows": 40,
               "location": "grpc://10.0.0.7:50070"},
              {"learner": 1, "node": "jetson-1", "cluster": "lab", "rows": 50,
               "location": "grpc://10.0.1.9:50070"})
    names = [f"{PID}-learners-{i}" for i in range(2)]
    p = project({"training": {"learners": 2}, "data_tags": ["digits"]}, placement=placed)
    p = p.replace(secrets={**p.secrets, **{LEARNER_DATA_TOKEN + n: f"tok-{n}" for n in names}})
    first, second = specs(ActionKind.DEPLOY_LEARNERS, p, place(BuildTarget.IMAGE))
    assert (first.cluster, first.node) == ("home", "pi-kitchen")
    assert (second.cluster, second.node) == ("lab", "jetson-1")
    assert first.env["FLOPS_DATA_SERVER"] == "grpc://10.0.0.7:50070"
    assert second.env["FLOPS_DATA_SERVER"] == "grpc://10.0.1.9:50070"
    assert first.secret_env == {"FLOPS_DATA_TOKEN": f"tok-{names[0]}"}
    assert first.node_location_env == "FLOPS_DATA_SERVER"  # a backend on the node may localise


def test_mock_data_on_nodes_is_one_provider_per_node_and_no_data_server() -> None:
    placed = ({"learner": 0, "node": "pi-kitchen", "cluster": "home", "rows": 0,
               "location": "grpc://10.0.0.7:50070"},
              {"learner": 1, "node": "jetson-1", "cluster": "lab", "rows": 0,
               "location": "grpc://10.0.1.9:50070"})
    p = project({"training": {"learners": 2}, "data_tags": ["digits"],
                 "mock_data": {"partitioner": "dirichlet", "alpha": 0.3, "seed": 5,
                               "holdout_fraction": 0.1}},
                placement=placed)
    providers = [f"{PID}-mock-data-provider-{i}" for i in range(2)]
    learners = [f"{PID}-learners-{i}" for i in range(2)]
    p = p.replace(secrets={**p.secrets,
                           **{MOCK_WRITE_TOKEN + n: f"write-{n}" for n in providers},
                           **{LEARNER_DATA_TOKEN + n: f"read-{n}" for n in learners}})
    first, second = specs(ActionKind.DEPLOY_DATA, p, place(BuildTarget.IMAGE))
    # partition i to learner i's node: pinned there, its local address, its own write token
    assert [(s.name, s.node, s.cluster, s.env["FLOPS_SERVER"], s.env["FLOPS_PARTITION"])
            for s in (first, second)] == [
        (providers[0], "pi-kitchen", "home", "grpc://10.0.0.7:50070", "0"),
        (providers[1], "jetson-1", "lab", "grpc://10.0.1.9:50070", "1")]
    for provider in (first, second):
        assert provider.one_shot and provider.node_location_env == "FLOPS_SERVER"
        assert provider.env["FLOPS_PARTITIONS"] == "2" and provider.env["FLOPS_SEED"] == "5"
        assert provider.env["FLOPS_HOLDOUT_FRACTION"] == "0.1"
        assert provider.env["FLOPS_TAG"] == f"mock-{PID}"
        assert "FLOPS_SERVERS" not in provider.env
        assert provider.secret_env == {"FLOPS_DATA_TOKEN": f"write-{provider.name}"}
        assert "write-" not in json.dumps(dict(provider.env))
    # the learners read the mock tag on their node only, with their own read token
    read = specs(ActionKind.DEPLOY_LEARNERS, p, place(BuildTarget.IMAGE))
    assert [json.loads(s.env["FLOPS_DATA_TAGS"]) for s in read] == [[f"mock-{PID}"]] * 2
    assert [s.env["FLOPS_DATA_SERVER"] for s in read] == [e["location"] for e in placed]
    assert [s.secret_env["FLOPS_DATA_TOKEN"] for s in read] == [f"read-{n}" for n in learners]
    assert services_of(p, (Role.MOCK_DATA_PROVIDER,)) == providers


def test_hierarchical_learners_on_nodes_report_to_their_clusters_aggregator() -> None:
    placed = tuple({"learner": i, "node": f"n{i}", "cluster": c, "rows": 10,
                    "location": f"grpc://10.0.0.{i}:1"}
                   for i, c in enumerate(("lab-a", "lab-a", "lab-b")))
    names = [f"{PID}-learners-{i}" for i in range(3)]
    p = project({"training": {"mode": "hierarchical", "cycles": 2, "rounds": 1, "learners": 2,
                              "min_available_learners": 1}, "data_tags": ["digits"]},
                placement=placed, clusters=("lab-a", "lab-b"))
    p = p.replace(secrets={**p.secrets, **{LEARNER_DATA_TOKEN + n: f"tok-{n}" for n in names}})
    pl = place(clusters=("lab-a", "lab-b"))
    root, cag_a, cag_b = specs(ActionKind.DEPLOY_AGGREGATOR, p, pl)
    assert (cag_a.cluster, cag_a.env["FLOPS_EXPECTED_CLIENTS"]) == ("lab-a", "2")
    assert (cag_b.cluster, cag_b.env["FLOPS_EXPECTED_CLIENTS"]) == ("lab-b", "1")
    assert root.env["FLOPS_EXPECTED_CLIENTS"] == "2"
    learners = specs(ActionKind.DEPLOY_LEARNERS, p, pl)
    assert [(s.node, s.cluster, s.env["FLOPS_SERVER_ADDRESS"]) for s in learners] == [
        ("n0", "lab-a", f"{PID}-cluster-aggregator-0.svc:9"),
        ("n1", "lab-a", f"{PID}-cluster-aggregator-0.svc:9"),
        ("n2", "lab-b", f"{PID}-cluster-aggregator-1.svc:9")]
    assert services_of(p, (Role.CLUSTER_AGGREGATOR, Role.LEARNERS)) == [
        f"{PID}-cluster-aggregator-0", f"{PID}-cluster-aggregator-1", *names]
