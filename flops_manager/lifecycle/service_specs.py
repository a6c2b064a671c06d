"""Translation of a project's actions into orchestrator ServiceSpecs (no I/O).

Everything a spec needs from outside the project record comes in a :class:`Placement`: what the
backend runs (environments or images), the clusters, the tracking server and a resolver that
turns the name of an already created service into its ``host:port``. Configuration reaches
components only through environment variables; credentials only through ``secret_env``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from typing import Any

from flops_contracts.aggregator_settings import AggregatorRole, AggregatorSettings
from flops_contracts.config import settings_to_env
from flops_contracts.spec import MockDataSpec, ProjectSpec, TrainingMode
from flops_dataplane.names import mock_data_tag
from flops_manager.identity import tracking_policy
from flops_manager.identity.registry_access import owner_namespace
from flops_manager.identity.registry_server import DEFAULT_NAMESPACE
from flops_manager.lifecycle.actions import (
    PER_CLUSTER_ROLES,
    ROLES_OF_KIND,
    Action,
    ActionKind,
    Role,
    service_name,
)
from flops_manager.lifecycle.state import Project
from flops_manager.lifecycle.variants import learner_platforms, variant_images
from flops_manager.ports.orchestrator import (
    IMAGE_ENV_SCHEME,
    PYTHON,
    BuildTarget,
    Resources,
    ServiceSpec,
)
from flops_manager.settings import Settings

Resolver = Callable[[str], str]
"""Service name -> ``host:port``; raises ``TemporaryError`` while the address is unknown."""

TRACKING_SERVICE = "flops-tracking-server"
AGGREGATOR_PORT = 8080
TRACKING_PORT = 5000
INFERENCE_PORT = 8080
LEARNER_DATA_TOKEN = "data_token:"  # noqa: S105 - a key prefix, not a secret
MOCK_WRITE_TOKEN = "mock_write_token:"  # noqa: S105 - a key prefix, not a secret
"""``Project.secrets`` key prefix of a node learner's own data token (+ its service name)."""

_MODULE = {
    Role.BUILDER: "image_builder",
    Role.MODEL_BUILDER: "image_builder",
    Role.MOCK_DATA_PROVIDER: "flops_dataplane.mock_provider",
    Role.AGGREGATOR: "aggregator",
    Role.CLUSTER_AGGREGATOR: "aggregator",
    Role.LEARNERS: "learner_base",
    Role.INFERENCE_SERVER: "inference_server",
    Role.TRACKING_SERVER: "tracking_server",
}


@dataclasses.dataclass(frozen=True)
class Placement:
    """Facts about the deployment a project's specs depend on (gathered by the worker)."""

    target: BuildTarget
    events_uri: str
    tracking_uri: str | None = None
    clusters: tuple[str, ...] = ()
    resolve: Resolver = dataclasses.field(default=lambda name: name)
    node_platforms: tuple[str | None, ...] = ()
    """Platform reported by the node of learner ``i`` (``None``: not reported)."""
    trusted_images: tuple[str, ...] = ()
    """Digest references FLOps recorded as pushed by its builders (builders' cache hits)."""


def command(role: Role) -> tuple[str, ...]:
    """The command of a role's service: the image's Python running the role's module."""
    return (PYTHON, "-m", _MODULE[role])


def parsed_spec(project: Project) -> ProjectSpec:
    """The project's spec as a model (it was validated when the project was created)."""
    return ProjectSpec.model_validate(project.spec)


def project_clusters(project: Project) -> tuple[str, ...]:
    """Clusters of a hierarchical project (chosen when its aggregators were deployed)."""
    if parsed_spec(project).training.mode is not TrainingMode.HIERARCHICAL:
        return ()
    return tuple(project.clusters)


def services_of(project: Project, roles: tuple[Role, ...]) -> list[str]:
    """Names of the project's services of ``roles`` (one per cluster where that applies)."""
    clusters = project_clusters(project)
    names: list[str] = []
    for role in roles:
        if role in (Role.LEARNERS, Role.MOCK_DATA_PROVIDER) and project.placement:
            names.extend(service_name(project.id, role, i) for i in range(len(project.placement)))
        elif role in PER_CLUSTER_ROLES and clusters:
            names.extend(service_name(project.id, role, i) for i in range(len(clusters)))
        elif role is not Role.CLUSTER_AGGREGATOR:
            names.append(service_name(project.id, role))
    return names


def _resources(spec: ProjectSpec) -> Resources:
    r = spec.resources
    return Resources(memory_mb=r.memory_mb, vcpus=r.vcpus, vgpus=r.vgpus, storage_mb=r.storage_mb)


def _image(project: Project, role: Role, settings: Settings, target: BuildTarget) -> str:
    """The image a project's FL component runs: its built environment or its built image."""
    build = project.build or {}
    if target is BuildTarget.ENVIRONMENT:
        return f"{IMAGE_ENV_SCHEME}{build['env_dir']}"
    images: dict[str, str] = build.get("images") or {}
    key = {Role.LEARNERS: "learner", Role.INFERENCE_SERVER: "inference_server"}.get(
        role, "aggregator"
    )
    return images.get(key) or f"{settings.images_prefix}/{project.id}-{key}:latest"


def _repo_env(project: Project, target: BuildTarget) -> dict[str, str]:
    """Where the repository is: the checkout on this machine, or baked into the image."""
    if target is BuildTarget.ENVIRONMENT:
        return {"FLOPS_REPO_DIR": str((project.build or {})["repo_dir"])}
    return {}


def _base(project: Project, role: Role, **kw: Any) -> dict[str, Any]:
    return {
        "name": kw.pop("name", service_name(project.id, role)),
        "role": role.value,
        "command": command(role),
        "owner": project.owner,
        "project_id": project.id,
        **kw,
    }


def builder_resources(settings: Settings) -> Resources:
    """What a builder may use (``settings.builder_memory_mb``, one vCPU)."""
    return Resources(memory_mb=settings.builder_memory_mb, vcpus=1.0)


BUILDER_TARGETS = {BuildTarget.ENVIRONMENT: "environment", BuildTarget.IMAGE: "images"}
"""``FLOPS_TARGET`` of the image builder per backend build target."""


def _builder_env(project: Project, settings: Settings, place: Placement) -> dict[str, str]:
    """Settings every builder run shares: identity, events, cache, registry and base image."""
    env = {
        "FLOPS_PROJECT_ID": project.id,
        "FLOPS_EVENTS_URI": place.events_uri,
        "FLOPS_REPOSITORY_URL": str(project.repository.get("url")),
        "FLOPS_ALLOW_LOCAL": json.dumps(settings.local_repos_allowed),
        "FLOPS_CACHE_DIR": settings.builder_cache_dir or f"{settings.data_dir}/build-cache",
    }
    if project.repository.get("ref"):
        env["FLOPS_REF"] = str(project.repository["ref"])
    if place.target is BuildTarget.IMAGE:
        platforms = parsed_spec(project).platforms
        env["FLOPS_PLATFORMS"] = json.dumps([str(p) for p in platforms])
        env["FLOPS_REGISTRY_TLS_VERIFY"] = json.dumps(settings.registry_tls_verify)
        optional = {"FLOPS_REGISTRY": settings.registry, "FLOPS_BASE_IMAGE": settings.base_image,
                    "FLOPS_EXTRA_CA_BUNDLE": settings.extra_ca_bundle}
        env.update({k: v for k, v in optional.items() if v})
        # images live below their owner's prefix (the registry lets the builder push only there)
        env["FLOPS_IMAGE_NAMESPACE"] = owner_namespace(DEFAULT_NAMESPACE, project.owner)
        env["FLOPS_TRUSTED_IMAGES"] = json.dumps(list(place.trusted_images))
    return env


REGISTRY_LOGIN_VARS = ("FLOPS_REGISTRY_USERNAME", "FLOPS_REGISTRY_PASSWORD")
"""A builder's registry login: a push login of its project, made at enrollment."""


def _registry_secret(settings: Settings, place: Placement) -> dict[str, str]:
    """The variables of a builder's registry login (values come at enrollment)."""
    if not settings.registry or place.target is not BuildTarget.IMAGE:
        return {}
    return dict.fromkeys(REGISTRY_LOGIN_VARS, "(enrollment)")


def builder_spec(project: Project, settings: Settings, place: Placement) -> ServiceSpec:
    """The one-shot builder of the project's environment or images."""
    env = {**_builder_env(project, settings, place), "FLOPS_TARGET": BUILDER_TARGETS[place.target]}
    return ServiceSpec(
        **_base(project, Role.BUILDER),
        image=settings.builder_image,
        env=env,
        secret_env=_registry_secret(settings, place),
        resources=builder_resources(settings),
        one_shot=True,
        privileged=place.target is BuildTarget.IMAGE,
    )


def model_builder_spec(project: Project, settings: Settings, place: Placement) -> ServiceSpec:
    """The one-shot builder of the trained model's inference image."""
    env = {
        **_builder_env(project, settings, place),
        "FLOPS_TARGET": "model_image",
        "FLOPS_MODEL_URI": served_model_uri(project),
    }
    if place.tracking_uri:
        env["FLOPS_TRACKING_URI"] = place.tracking_uri
    return ServiceSpec(
        **_base(project, Role.MODEL_BUILDER),
        image=settings.builder_image,
        env=env,
        secret_env=_registry_secret(settings, place),
        resources=builder_resources(settings),
        one_shot=True,
        privileged=True,
    )


def tracking_server_spec(settings: Settings) -> ServiceSpec:
    """The shared MLflow tracking server the manager starts when none is configured."""
    return ServiceSpec(
        name=TRACKING_SERVICE,
        role=Role.TRACKING_SERVER.value,
        image=settings.tracking_image,
        command=command(Role.TRACKING_SERVER),
        env={"FLOPS_DATA_DIR": f"{settings.data_dir}/tracking"},
        ports=(TRACKING_PORT,),
        listen_env="FLOPS_LISTEN_ADDRESS",
        public=True,
    )


def node_data_tags(project: Project) -> list[str]:
    """The tags learners placed on nodes read: the project's, or its mock data tag."""
    spec = parsed_spec(project)
    return [mock_data_tag(project.id)] if spec.mock_data is not None else list(spec.data_tags)


def _mock_settings_env(mock: MockDataSpec) -> dict[str, str]:
    """How the mock data provider partitions the data set (the same on every node)."""
    return {
        "FLOPS_DATASET": mock.dataset,
        "FLOPS_PARTITIONER": mock.partitioner.value,
        "FLOPS_ALPHA": str(mock.alpha),
        "FLOPS_LABELS_PER_PARTITION": str(mock.labels_per_partition),
        "FLOPS_SEED": str(mock.seed),
        "FLOPS_TEST_FRACTION": str(mock.test_fraction),
        "FLOPS_HOLDOUT_FRACTION": str(mock.holdout_fraction),
    }


def _node_provider_specs(project: Project, settings: Settings, place: Placement,
                         mock: MockDataSpec) -> Iterator[ServiceSpec]:
    """One mock data provider per placed node, writing that node's learner's partition.

    Each runs where the node's learner will (pinned to the node, at the node's local data
    server address) and holds a write token for the project's mock data tag on that node
    only. No project-wide data server is started.
    """
    for entry in project.placement:
        index = int(entry["learner"])
        name = service_name(project.id, Role.MOCK_DATA_PROVIDER, index)
        yield ServiceSpec(
            **_base(project, Role.MOCK_DATA_PROVIDER, name=name),
            image=settings.dataplane_image,
            env={
                "FLOPS_PROJECT_ID": project.id,
                "FLOPS_EVENTS_URI": place.events_uri,
                **_mock_settings_env(mock),
                "FLOPS_PARTITIONS": str(len(project.placement)),
                "FLOPS_PARTITION": str(index),
                "FLOPS_TAG": mock_data_tag(project.id),
                "FLOPS_SERVER": str(entry["location"]),
            },
            secret_env={"FLOPS_DATA_TOKEN": project.secrets[MOCK_WRITE_TOKEN + name]},
            one_shot=True,
            cluster=str(entry["cluster"]),
            node=str(entry["node"]),
            node_location_env="FLOPS_SERVER",
        )


def data_specs(project: Project, settings: Settings, place: Placement) -> Iterator[ServiceSpec]:
    """The mock data's services: one provider per placed node (none without mock data).

    A mock data project is always placed on its owner's nodes at submission, so its data takes
    the path that pushed data takes; there is no project-wide data server.
    """
    mock = parsed_spec(project).mock_data
    if mock is not None:
        yield from _node_provider_specs(project, settings, place, mock)


def learner_total(spec: ProjectSpec, place: Placement) -> int:
    """Learners of the whole project (every cluster's)."""
    clusters = len(place.clusters) if spec.training.mode is TrainingMode.HIERARCHICAL else 1
    return spec.training.learners * max(clusters, 1)


def aggregator_specs(
    project: Project, settings: Settings, place: Placement
) -> Iterator[ServiceSpec]:
    """The classic aggregator, or the root and then one cluster aggregator per cluster."""
    spec = parsed_spec(project)
    t = spec.training
    hierarchical = t.mode is TrainingMode.HIERARCHICAL
    role = AggregatorRole.ROOT if hierarchical else AggregatorRole.CLASSIC
    build = project.build or {}
    main = AggregatorSettings(
        role=role,
        training=t,
        repo_dir=_repo_env(project, place.target).get("FLOPS_REPO_DIR", "/opt/flops/repo"),
        project_id=project.id,
        project_name=spec.name,
        expected_clients=len(place.clusters) if hierarchical else t.learners,
        events_uri=place.events_uri or None,
        mlflow_tracking_uri=place.tracking_uri,
        mlflow_experiment=(tracking_policy.experiment_name(project.owner, spec.name, project.id)
                           if settings.tracking_access != "open" else None),
        registered_model_name=spec.model.registered_model_name,
        repository_url=str(project.repository.get("url")),
        commit=build.get("commit"),
        data_placement=[{k: v for k, v in p.items() if k != "location"}
                        for p in project.placement],
    )
    env = _component_env(main, exclude=("listen_address",))
    if place.target is not BuildTarget.ENVIRONMENT:
        env.pop("FLOPS_REPO_DIR", None)
    image = _image(project, Role.AGGREGATOR, settings, place.target)
    common: dict[str, Any] = {
        "image": image, "resources": _resources(spec), "ports": (AGGREGATOR_PORT,),
        "listen_env": "FLOPS_LISTEN_ADDRESS",
    }
    main_spec = ServiceSpec(**_base(project, Role.AGGREGATOR), env=env, **common)
    yield main_spec
    if not hierarchical:
        return
    root = place.resolve(main_spec.name)
    for index, cluster in enumerate(place.clusters):
        cag = AggregatorSettings(
            role=AggregatorRole.CLUSTER,
            training=t,
            project_id=project.id,
            root_address=root,
            cluster_name=_cluster_label(cluster, index),
            expected_clients=_cluster_learners(project, cluster) or t.learners,
            events_uri=place.events_uri or None,
        )
        yield ServiceSpec(
            **_base(project, Role.CLUSTER_AGGREGATOR,
                    name=service_name(project.id, Role.CLUSTER_AGGREGATOR, index)),
            env=_component_env(cag, exclude=("listen_address",)),
            cluster=cluster,
            **common,
        )


def _cluster_learners(project: Project, cluster: str) -> int:
    """Learners placed on nodes of ``cluster`` (0 without node placement)."""
    return sum(1 for p in project.placement if p["cluster"] == cluster)


def _cluster_label(cluster: str, index: int) -> str:
    """A name usable as an identifier in events for the cluster at ``index``."""
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in cluster).strip("-_")
    return safe or f"cluster-{index}"


def learner_specs(project: Project, settings: Settings, place: Placement) -> list[ServiceSpec]:
    """One learners service (classic) or one per cluster, each pointed at its aggregator."""
    spec = parsed_spec(project)
    t = spec.training
    hierarchical = t.mode is TrainingMode.HIERARCHICAL
    groups: list[tuple[str, str, str | None]] = []  # (service name, aggregator name, cluster)
    if hierarchical:
        for index, cluster in enumerate(place.clusters):
            groups.append((service_name(project.id, Role.LEARNERS, index),
                           service_name(project.id, Role.CLUSTER_AGGREGATOR, index), cluster))
    else:
        groups.append((service_name(project.id, Role.LEARNERS),
                       service_name(project.id, Role.AGGREGATOR), None))
    images = _learner_images(project, spec, place)
    if project.placement:
        return _node_learner_specs(project, settings, place, images)
    specs = []
    for position, (name, aggregator, placed_on) in enumerate(groups):
        env = {
            **_repo_env(project, place.target),
            "FLOPS_SERVER_ADDRESS": place.resolve(aggregator),
            "FLOPS_PROJECT_ID": project.id,
            "FLOPS_LEARNER_COUNT": str(learner_total(spec, place)),
            "FLOPS_LEARNER_INDEX_OFFSET": str(position * t.learners),
            "FLOPS_CONNECT_TIMEOUT_S": str(t.connect_timeout_s),
            "FLOPS_DATA_TAGS": json.dumps(spec.data_tags),
        }
        if place.events_uri:
            env["FLOPS_EVENTS_URI"] = place.events_uri
        specs.append(ServiceSpec(
            **_base(project, Role.LEARNERS, name=name),
            image=_image(project, Role.LEARNERS, settings, place.target),
            env=env,
            instances=t.learners,
            resources=_resources(spec),
            cluster=placed_on,
            instance_images=images[position * t.learners:(position + 1) * t.learners],
        ))
    return specs


def _node_learner_specs(project: Project, settings: Settings, place: Placement,
                        images: tuple[str, ...]) -> list[ServiceSpec]:
    """One learner service per placed node, reading only that node's data server.

    Each gets its own read-only data token for that node (``FLOPS_DATA_TOKEN``, a secret
    handed out at enrollment) and is pinned to the node's cluster. In a hierarchical
    project it reports to the aggregator of its node's cluster.
    """
    spec = parsed_spec(project)
    t = spec.training
    hierarchical = t.mode is TrainingMode.HIERARCHICAL
    specs = []
    for entry in project.placement:
        index = int(entry["learner"])
        name = service_name(project.id, Role.LEARNERS, index)
        aggregator = service_name(project.id, Role.AGGREGATOR)
        if hierarchical:
            aggregator = service_name(project.id, Role.CLUSTER_AGGREGATOR,
                                      place.clusters.index(str(entry["cluster"])))
        env = {
            **_repo_env(project, place.target),
            "FLOPS_SERVER_ADDRESS": place.resolve(aggregator),
            "FLOPS_PROJECT_ID": project.id,
            "FLOPS_LEARNER_COUNT": str(len(project.placement)),
            "FLOPS_LEARNER_INDEX_OFFSET": str(index),
            "FLOPS_CONNECT_TIMEOUT_S": str(t.connect_timeout_s),
            "FLOPS_DATA_TAGS": json.dumps(node_data_tags(project)),
            "FLOPS_DATA_SERVER": str(entry["location"]),
        }
        if place.events_uri:
            env["FLOPS_EVENTS_URI"] = place.events_uri
        specs.append(ServiceSpec(
            **_base(project, Role.LEARNERS, name=name),
            image=_image(project, Role.LEARNERS, settings, place.target),
            env=env,
            secret_env={"FLOPS_DATA_TOKEN": project.secrets[LEARNER_DATA_TOKEN + name]},
            instances=1,
            resources=_resources(spec),
            cluster=str(entry["cluster"]),
            node=str(entry["node"]),
            node_location_env="FLOPS_DATA_SERVER",
            instance_images=images[index:index + 1],
        ))
    return specs


def _learner_images(project: Project, spec: ProjectSpec, place: Placement) -> tuple[str, ...]:
    """Each learner's platform variant of the learner image (``()``: all run the default)."""
    if place.target is BuildTarget.ENVIRONMENT:
        return ()
    chosen = learner_platforms(len(project.placement) or learner_total(spec, place),
                               requested=[str(p) for p in spec.learner_platforms],
                               node_platforms=place.node_platforms)
    variants = ((project.build or {}).get("variants") or {}).get("learner") or {}
    return variant_images(chosen, variants)


def served_model_uri(project: Project) -> str:
    """The URI to serve: the registered version (``models:/NAME/VERSION``) when there is one."""
    model = project.model or {}
    return str(model.get("registry_uri") or model.get("model_uri") or "")


def inference_spec(
    project: Project,
    settings: Settings,
    place: Placement,
    *,
    model_uri: str,
    name: str | None = None,
    instances: int = 1,
) -> ServiceSpec:
    """An inference server for ``model_uri`` of ``project``."""
    env = {
        "FLOPS_MODEL_URI": model_uri,
        "FLOPS_PROJECT_ID": project.id,
    }
    if place.tracking_uri:
        env["FLOPS_TRACKING_URI"] = place.tracking_uri
    if place.events_uri:
        env["FLOPS_EVENTS_URI"] = place.events_uri
    return ServiceSpec(
        **_base(project, Role.INFERENCE_SERVER,
                name=name or service_name(project.id, Role.INFERENCE_SERVER)),
        image=_image(project, Role.INFERENCE_SERVER, settings, place.target),
        env=env,
        instances=instances,
        resources=_resources(parsed_spec(project)),
        ports=(INFERENCE_PORT,),
        listen_env="FLOPS_LISTEN_ADDRESS",
        public=True,
    )


def _component_env(settings: Any, *, exclude: tuple[str, ...]) -> dict[str, str]:
    env = settings_to_env(settings)
    for name in exclude:
        env.pop(f"FLOPS_{name.upper()}", None)
    env.pop("FLOPS_INSTANCE", None)  # the backend names each instance
    return env


def action_specs(
    action: Action, project: Project, settings: Settings, place: Placement
) -> Iterator[ServiceSpec]:
    """Yield the services ``action`` creates, in creation order.

    Lazily: a spec that needs the address of an earlier one (the mock data provider, cluster
    aggregators) is only made after the caller created its predecessors.

    Raises
    ------
    ValueError
        For actions that do not create services.
    """
    for spec in _action_specs(action, project, settings, place):
        yield with_tracking_login(with_broker_login(spec, settings), settings)


def with_broker_login(spec: ServiceSpec, settings: Settings) -> ServiceSpec:
    """Add the components' broker login (if configured) to ``spec``'s secrets."""
    if not settings.component_mqtt_username:
        return spec
    login = {"FLOPS_MQTT_USERNAME": settings.component_mqtt_username}
    if settings.component_mqtt_password:
        login["FLOPS_MQTT_PASSWORD"] = settings.component_mqtt_password
    return dataclasses.replace(spec, secret_env={**spec.secret_env, **login})


def with_tracking_login(spec: ServiceSpec, settings: Settings) -> ServiceSpec:
    """Add the MLflow login of ``spec``'s role (when MLflow checks logins) to its secrets."""
    if settings.tracking_access == "open" or spec.project_id is None:
        return spec
    login = tracking_policy.login_env(spec.project_id, spec.role,
                                      key=settings.tracking_admin_password or "")
    return dataclasses.replace(spec, secret_env={**spec.secret_env, **login}) if login else spec


def _action_specs(
    action: Action, project: Project, settings: Settings, place: Placement
) -> Iterator[ServiceSpec]:
    kind = action.kind
    if kind is ActionKind.BUILD_IMAGES:
        yield builder_spec(project, settings, place)
    elif kind is ActionKind.BUILD_MODEL_IMAGE:
        yield model_builder_spec(project, settings, place)
    elif kind is ActionKind.DEPLOY_DATA:
        yield from data_specs(project, settings, place)
    elif kind is ActionKind.DEPLOY_AGGREGATOR:
        yield from aggregator_specs(project, settings, place)
    elif kind is ActionKind.DEPLOY_LEARNERS:
        yield from learner_specs(project, settings, place)
    elif kind is ActionKind.DEPLOY_INFERENCE:
        yield inference_spec(project, settings, place, model_uri=served_model_uri(project))
    else:
        raise ValueError(f"action {kind.value} does not create a service")


def mock_provider_spec(
    *, name: str, owner: str, request: dict[str, Any], settings: Settings
) -> ServiceSpec:
    """Return the service running the mock data provider for an API request."""
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
        command=command(Role.MOCK_DATA_PROVIDER),
        env=env,
        instances=1,
        owner=owner,
        one_shot=True,
    )


__all__ = [
    "ROLES_OF_KIND",
    "TRACKING_SERVICE",
    "Placement",
    "action_specs",
    "inference_spec",
    "mock_provider_spec",
    "node_data_tags",
    "services_of",
    "tracking_server_spec",
]
