"""Plan the processes of a local training run (pure: no processes are started here)."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Mapping
from typing import Any

from flops_contracts.aggregator_settings import AggregatorRole, AggregatorSettings
from flops_contracts.config import settings_to_env
from flops_contracts.spec import TrainingMode, TrainingSpec
from learner_base.settings import LearnerSettings

PortAllocator = Callable[[], int]


@dataclasses.dataclass(frozen=True)
class ProcessPlan:
    """One process to start: a Python module run with an environment."""

    name: str
    role: str
    module: str
    env: Mapping[str, str]

    @property
    def argv(self) -> list[str]:
        """The command line (the interpreter and ``-m module``; configuration is in ``env``)."""
        return [sys.executable, "-m", self.module]


@dataclasses.dataclass(frozen=True)
class LocalRun:
    """Where and how a local run is configured."""

    repo_dir: str
    training: TrainingSpec
    project_id: str = "local"
    project_name: str | None = None
    events_uri: str | None = None
    mlflow_tracking_uri: str | None = None
    mlflow_artifact_location: str | None = None
    registered_model_name: str | None = None
    host: str = "127.0.0.1"
    data_tags: tuple[str, ...] = ()
    data_servers: tuple[str, ...] = ()
    """One data server per learner (by global learner index); empty = repository's own data."""


def plan_processes(run: LocalRun, next_port: PortAllocator) -> list[ProcessPlan]:
    """Return the aggregator(s) first, then the learners, each with its full configuration.

    Classic: one aggregator and ``training.learners`` learners. Hierarchical: a root aggregator,
    one cluster aggregator per cluster and ``training.learners`` learners per cluster.
    """
    t = run.training
    common: dict[str, Any] = {
        "project_id": run.project_id,
        "events_uri": run.events_uri,
    }
    plans: list[ProcessPlan] = []
    main_port = next_port()
    main_address = f"{run.host}:{main_port}"
    root_role = AggregatorRole.CLASSIC if t.mode is TrainingMode.CLASSIC else AggregatorRole.ROOT
    clusters = t.clusters or ["cluster-0"]
    main = AggregatorSettings(
        role=root_role,
        training=t,
        repo_dir=run.repo_dir,
        listen_address=main_address,
        project_name=run.project_name,
        expected_clients=t.learners if root_role is AggregatorRole.CLASSIC else len(clusters),
        mlflow_tracking_uri=run.mlflow_tracking_uri,
        mlflow_artifact_location=run.mlflow_artifact_location,
        registered_model_name=run.registered_model_name,
        **common,
    )
    plans.append(ProcessPlan(main.instance_name, root_role.value, "aggregator",
                             settings_to_env(main)))
    if root_role is AggregatorRole.CLASSIC:
        plans.extend(_learners(run, main_address, prefix="learner", common=common))
        return plans
    for position, cluster in enumerate(clusters):
        address = f"{run.host}:{next_port()}"
        cag = AggregatorSettings(
            role=AggregatorRole.CLUSTER,
            training=t,
            listen_address=address,
            root_address=main_address,
            cluster_name=cluster,
            expected_clients=t.learners,
            **common,
        )
        plans.append(ProcessPlan(cag.instance_name, "cluster", "aggregator",
                                 settings_to_env(cag)))
        plans.extend(_learners(run, address, prefix=f"{cluster}-learner", common=common,
                               offset=position * t.learners, total=len(clusters) * t.learners))
    return plans


def _learners(
    run: LocalRun,
    address: str,
    *,
    prefix: str,
    common: Mapping[str, Any],
    offset: int = 0,
    total: int | None = None,
) -> list[ProcessPlan]:
    """Learners of one aggregator; data shards are numbered across all clusters."""
    out = []
    for index in range(run.training.learners):
        settings = LearnerSettings.model_validate({
            "repo_dir": run.repo_dir,
            "server_address": address,
            "instance": f"{prefix}-{index}",
            "learner_index": offset + index,
            "learner_count": total or run.training.learners,
            "seed": offset + index,
            "connect_timeout_s": run.training.connect_timeout_s,
            "data_tags": list(run.data_tags),
            "data_server": run.data_servers[offset + index] if run.data_servers else None,
            "project_id": str(common["project_id"]),
            "events_uri": common["events_uri"],
        })
        out.append(ProcessPlan(settings.instance_name, "learner", "learner_base",
                               settings_to_env(settings)))
    return out


def main_process(plans: list[ProcessPlan]) -> ProcessPlan:
    """The process whose exit ends the run (the classic or root aggregator)."""
    return plans[0]


__all__ = ["LocalRun", "ProcessPlan", "main_process", "plan_processes"]
