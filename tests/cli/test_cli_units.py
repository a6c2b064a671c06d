"""Pure parts of the CLI: project files, event rendering, broker and tracking-server settings."""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np
import pytest

from flops_contracts.errors import FlopsError
from flops_dataplane.partitioners import holdout_split
from flops_manager.cli.broker import (
    amqtt_config,
    broker_command,
    dynsec_plugin,
    manager_broker_env,
    mosquitto_binary,
    mosquitto_config,
)
from flops_manager.cli.project import read_request
from flops_manager.cli.watch import describe, progress_bar, progress_lines
from learner_base.settings import LearnerSettings
from tracking_server.settings import TrackingServerSettings, auth_config, server_argv


def test_project_file_with_or_without_repository(tmp_path: Path) -> None:
    full = tmp_path / "p.yaml"
    full.write_text("spec:\n  training: {rounds: 2}\nrepository:\n  url: https://h/r.git\n")
    snaps = tmp_path / "snapshots"
    assert read_request(full, repo=None, ref="v1", snapshots=snaps) == {
        "spec": {"training": {"rounds": 2}},
        "repository": {"url": "https://h/r.git", "ref": "v1"},
    }
    bare = tmp_path / "spec.json"
    bare.write_text('{"training": {"rounds": 3}}')
    with pytest.raises(FlopsError, match="--repo"):
        read_request(bare, repo=None, ref=None, snapshots=snaps)
    (tmp_path / "repo").mkdir()
    local = read_request(bare, repo=str(tmp_path / "repo"), ref=None, snapshots=snaps)
    assert local["repository"]["url"].startswith(snaps.as_uri())  # a snapshot: not Git
    assert len(local["repository"]["ref"]) == 40
    bad = tmp_path / "bad.yaml"
    bad.write_text("spec: [unclosed")
    with pytest.raises(FlopsError, match="not valid YAML"):
        read_request(bad, repo="x", ref=None, snapshots=snaps)
    extra = tmp_path / "extra.yaml"
    extra.write_text("spec: {}\nrepo: x\n")
    with pytest.raises(FlopsError, match="unknown top-level keys"):
        read_request(extra, repo="x", ref=None, snapshots=snaps)


def test_event_lines() -> None:
    def ev(event: str, component: str = "aggregator", **data: object) -> dict[str, object]:
        return {"seq": 1, "event": {"event": event, "component": component, "instance": "i",
                                    "data": data}}

    assert progress_bar(2, 4, width=8) == "[####----]"
    line = describe(ev("round_completed", round=2, total_rounds=4,
                       metrics={"accuracy": 0.91234, "loss": 0.3}))
    assert line == "round 2/4 [############------------] accuracy 0.912  loss 0.300"
    assert describe(ev("phase_changed", "manager", **{"from": "training", "to": "failed",
                                                      "reason": "boom"})) == (
        "phase: training -> failed (boom)")
    assert describe(ev("failed", "learner", reason="no data")) == "learner i failed: no data"
    assert describe(ev("round_completed", "cluster_aggregator", round=1)) is None
    assert describe(ev("log", message="x")) is None
    assert describe(ev("lost", "aggregator", reason="dropped", connection=2)) == (
        "aggregator i lost: dropped (connection 2; counts unless it reconnects)")
    assert describe(ev("online", "aggregator", connection=2)) is None


def test_progress_lines_skip_the_last_will_of_an_instance_that_was_done() -> None:
    def ev(event: str, instance: str, **data: object) -> dict[str, object]:
        return {"seq": 1, "event": {"event": event, "component": "aggregator",
                                    "instance": instance, "data": data}}

    lines = list(progress_lines([
        ev("lost", "a-0", reason="dropped", connection=1),  # before it was done: news
        ev("completed", "a-1"),
        ev("lost", "a-1", reason="dropped", connection=1),  # after: not news
        ev("failed", "a-2", reason="boom"),
        ev("lost", "a-2", reason="dropped", connection=1),
    ]))
    assert lines == ["aggregator a-0 lost: dropped (connection 1; counts unless it reconnects)",
                     "aggregator a-2 failed: boom"]


def test_broker_configurations(tmp_path: Path) -> None:
    assert "listener 1883 127.0.0.1" in mosquitto_config(1883, tmp_path, as_root=False)
    assert "user root" in mosquitto_config(1883, tmp_path, as_root=True)
    assert "bind: 127.0.0.1:1884" in amqtt_config(1884, tmp_path / "policy.json")
    with pytest.raises(FlopsError, match="use auto, mosquitto or amqtt"):
        broker_command(tmp_path, 1, {"FLOPS_BROKER": "rabbit"})
    locked = mosquitto_config(1883, tmp_path, as_root=False, plugin="/p/dynsec.so")
    assert "allow_anonymous false" in locked and "plugin /p/dynsec.so" in locked
    assert "allow_anonymous true" not in locked


def test_embedded_mosquitto_gets_a_private_administrator_login(tmp_path: Path) -> None:
    if dynsec_plugin() is None or mosquitto_binary() is None:
        pytest.skip("Mosquitto with the dynamic security plugin is not installed")
    kind, argv = broker_command(tmp_path, 1883, {"FLOPS_BROKER": "mosquitto"})
    env = manager_broker_env(tmp_path)
    assert kind == "mosquitto" and env["FLOPS_BROKER_ACCOUNTS"] == "mosquitto-dynsec"
    for name in ("manager-login.json", "dynamic-security.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    assert env["FLOPS_MQTT_PASSWORD"] not in " ".join(argv)
    assert env["FLOPS_MQTT_PASSWORD"] not in (tmp_path / "dynamic-security.json").read_text()


def test_tracking_server_command_line(tmp_path: Path) -> None:
    settings = TrackingServerSettings(listen_address="0.0.0.0:5000", data_dir=tmp_path,
                                      allowed_hosts=["mlflow", "flops.example.org:5443"])
    argv = server_argv("mlflow", settings)
    assert argv[:6] == ["mlflow", "server", "--host", "0.0.0.0", "--port", "5000"]
    assert argv[argv.index("--backend-store-uri") + 1] == f"sqlite:///{tmp_path}/mlflow.db"
    hosts = argv[argv.index("--allowed-hosts") + 1].split(",")
    assert {"mlflow", "mlflow:5000", "localhost:5000", "flops.example.org:5443"} <= set(hosts)
    assert "flops.example.org:5443:5000" not in hosts  # a published port is kept as given
    with pytest.raises(ValueError, match="host:port"):
        TrackingServerSettings(listen_address="5000")


def test_tracking_server_with_logins_denies_by_default(tmp_path: Path) -> None:
    assert "--app-name" not in server_argv("mlflow", TrackingServerSettings(data_dir=tmp_path))
    settings = TrackingServerSettings(data_dir=tmp_path, auth=True, auth_admin_username="root")
    assert server_argv("mlflow", settings)[-2:] == ["--app-name", "basic-auth"]
    config = auth_config(settings).splitlines()
    assert "default_permission = NO_PERMISSIONS" in config
    assert f"database_uri = sqlite:///{tmp_path}/auth.db" in config
    assert "admin_username = root" in config
    assert not any(line.startswith("admin_password") for line in config)  # env only


def test_learner_index_from_the_orchestrators_instance_index() -> None:
    s = LearnerSettings(repo_dir=".", server_address="a:1", instance_index=1,
                        learner_index_offset=4)
    assert (s.learner_index, s.seed) == (5, 5)
    explicit = LearnerSettings(repo_dir=".", server_address="a:1", learner_index=2, seed=9,
                               instance_index=7)
    assert (explicit.learner_index, explicit.seed) == (2, 9)


def test_holdout_is_deterministic_and_disjoint() -> None:
    kept, held = holdout_split(1000, fraction=0.2, seed=3)
    assert len(held) == 200 and len(kept) == 800
    assert not set(kept.tolist()) & set(held.tolist())
    again_kept, again_held = holdout_split(1000, fraction=0.2, seed=3)
    assert np.array_equal(held, again_held) and np.array_equal(kept, again_kept)
    assert not np.array_equal(held, holdout_split(1000, fraction=0.2, seed=4)[1])


def test_simulated_nodes_are_dealt_round_robin_over_clusters():
    from flops_manager.cli.stack import node_cluster

    assert [node_cluster(i, 1) for i in range(3)] == ["local"] * 3
    assert [node_cluster(i, 2) for i in range(5)] == [
        "cluster-1", "cluster-2", "cluster-1", "cluster-2", "cluster-1"]
    with pytest.raises(ValueError, match="1 or more"):
        node_cluster(0, 0)
