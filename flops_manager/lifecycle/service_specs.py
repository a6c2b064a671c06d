"""Pure translation of actions and user requests into orchestrator ServiceSpecs."""

from __future__ import annotations

import json
from typing import Any

from flops_manager.lifecycle.actions import Action, ActionKind, Role, service_name
from flops_manager.lifecycle.state import Project
from flops_manager.ports.orchestrator import Resources, ServiceSpec
from flops_manager.settings import Settings

MOCK_PROVIDER_COMMAND = ("python", "-m", "flops_dataplane.mock_provider")


def _resources(project: Project) -> Resources:
    raw: dict[str, Any] = project.spec.get("resources", {})
    return Resources(
        memory_mb=int(raw.get("memory_mb", 1024)),
        vcpus=float(raw.get("vcpus", 1.0)),
        vgpus=int(raw.get("vgpus", 0)),
        storage_mb=int(raw.get("storage_mb", 0)),
    )


def _image(settings: Settings, project: Project, role: str) -> str:
    return f"{settings.images_prefix}/{project.id}-{role}:latest"


def project_service_spec(action: Action, project: Project, settings: Settings) -> ServiceSpec:
    """Return the service an action of ``project`` creates.

    Raises
    ------
    ValueError
        For actions that do not create a service.
    """
    env = {
        "FLOPS_PROJECT_ID": project.id,
        "FLOPS_EVENTS_URI": settings.mqtt_url or "",
        "FLOPS_SPEC": json.dumps(project.spec, sort_keys=True),
    }
    training = project.spec.get("training", {})
    common: dict[str, Any] = {"owner": project.owner, "project_id": project.id}
    kind = action.kind
    if kind is ActionKind.BUILD_IMAGES:
        role, image, instances = Role.BUILDER, settings.builder_image, 1
        env["FLOPS_REPOSITORY_URL"] = str(project.repository.get("url"))
        env["FLOPS_REPOSITORY_REF"] = str(project.repository.get("ref") or "")
    elif kind is ActionKind.DEPLOY_AGGREGATOR:
        role, image, instances = Role.AGGREGATOR, _image(settings, project, "aggregator"), 1
    elif kind is ActionKind.DEPLOY_LEARNERS:
        role, image = Role.LEARNERS, _image(settings, project, "learner")
        instances = int(training.get("learners", 1))
    elif kind is ActionKind.BUILD_MODEL_IMAGE:
        role, image, instances = Role.MODEL_BUILDER, settings.builder_image, 1
        env["FLOPS_MODEL_URI"] = str((project.model or {}).get("model_uri", ""))
    elif kind is ActionKind.DEPLOY_INFERENCE:
        role, image, instances = Role.INFERENCE_SERVER, settings.inference_image, 1
        env["FLOPS_MODEL_URI"] = str((project.model or {}).get("model_uri", ""))
    else:
        raise ValueError(f"action {kind.value} does not create a service")
    return ServiceSpec(
        name=service_name(project.id, role),
        role=role.value,
        image=image,
        env=env,
        instances=instances,
        resources=_resources(project),
        **common,
    )


def mock_provider_spec(
    *, name: str, owner: str, request: dict[str, Any], settings: Settings
) -> ServiceSpec:
    """Return the service running ``python -m flops_dataplane.mock_provider`` for ``request``."""
    env = {
        "FLOPS_DATASET": str(request["dataset"]),
        "FLOPS_PARTITIONS": str(request["partitions"]),
        "FLOPS_PARTITIONER": str(request["partitioner"]),
        "FLOPS_SEED": str(request["seed"]),
        "FLOPS_TAG": str(request["tag"]),
        "FLOPS_SERVERS": json.dumps(list(request["servers"])),
    }
    if request.get("alpha") is not None:
        env["FLOPS_ALPHA"] = str(request["alpha"])
    return ServiceSpec(
        name=name,
        role=Role.MOCK_DATA_PROVIDER.value,
        image=settings.dataplane_image,
        command=MOCK_PROVIDER_COMMAND,
        env=env,
        instances=1,
        owner=owner,
    )


def inference_spec(
    *, name: str, project: Project, model_uri: str, instances: int, settings: Settings
) -> ServiceSpec:
    """Return an inference server for ``model_uri`` of ``project``."""
    return ServiceSpec(
        name=name,
        role=Role.INFERENCE_SERVER.value,
        image=settings.inference_image,
        env={"FLOPS_MODEL_URI": model_uri, "FLOPS_PROJECT_ID": project.id},
        instances=instances,
        resources=_resources(project),
        owner=project.owner,
        project_id=project.id,
        ports=(8080,),
    )
