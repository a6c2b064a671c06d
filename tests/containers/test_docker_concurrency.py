"""The Docker backend's locking and drift reporting against an in-process fake engine.

The real engine is exercised in ``test_docker_backend.py``; here an API stand-in lets a test
hold an image pull for as long as it wants, to show what the pull does (not) block.
"""

from __future__ import annotations

import builtins
import threading
from typing import Any

import docker.errors  # type: ignore[import-untyped]

from flops_manager.adapters.docker_orchestrator import DockerOrchestrator
from flops_manager.ports.orchestrator import ServiceSpec, ServiceState


class FakeContainer:
    def __init__(self, engine: FakeEngine, name: str, labels: dict[str, str]) -> None:
        self.engine, self.name, self.labels = engine, name, labels
        self.attrs: dict[str, Any] = {"State": {"Status": "created"}}

    def start(self) -> None:
        self.attrs["State"] = {"Status": "running"}

    def reload(self) -> None:
        if self.name not in self.engine.containers_by_name:
            raise docker.errors.NotFound(f"no container {self.name}")

    def logs(self, tail: int = 0) -> bytes:
        return b""

    def stop(self, timeout: int = 0) -> None:
        self.attrs["State"] = {"Status": "exited", "ExitCode": 0}

    def remove(self, force: bool = False, v: bool = False) -> None:
        self.engine.containers_by_name.pop(self.name, None)


class FakeEngine:
    """Just enough of ``docker.DockerClient`` for the backend; pulls wait for ``release``."""

    def __init__(self) -> None:
        self.containers_by_name: dict[str, FakeContainer] = {}
        self.images_present = {"present:1"}
        self.pulling = threading.Event()
        self.release = threading.Event()
        self.containers = self
        self.images = self
        self.networks = self
        self.api = self
        self.created: list[str] = []

    # containers
    def list(self, all: bool = False, filters: dict[str, Any] | None = None,
             names: list[str] | None = None) -> list[Any]:
        if names is not None:  # networks.list
            return [object()]
        wanted = dict(item.split("=", 1) for item in (filters or {}).get("label", []))
        return [c for c in list(self.containers_by_name.values())
                if all and all_match(c.labels, wanted)]

    def create(self, image: str, **kwargs: Any) -> FakeContainer:
        container = FakeContainer(self, kwargs["name"], kwargs["labels"])
        self.containers_by_name[container.name] = container
        self.created.append(container.name)
        return container

    def create_endpoint_config(self, aliases: builtins.list[str]) -> dict[str, Any]:
        return {"Aliases": aliases}

    # images
    def get(self, image: str) -> object:
        if image not in self.images_present:
            raise docker.errors.ImageNotFound(image)
        return object()

    def pull(self, image: str, auth_config: dict[str, str] | None = None) -> None:
        """Hold the pull until the test releases it (``auth_config``: the backend's login)."""
        self.pulling.set()
        assert self.release.wait(60), "the test never released the pull"
        self.images_present.add(image)

    def version(self) -> dict[str, Any]:
        return {"Components": [{"Name": "Podman Engine"}]}


def all_match(labels: dict[str, str], wanted: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in wanted.items())


def spec(name: str, image: str, project: str, instances: int = 1) -> ServiceSpec:
    return ServiceSpec(name=name, role="learners", image=image, project_id=project,
                       instances=instances)


def test_a_slow_pull_blocks_neither_reads_nor_other_services() -> None:
    engine = FakeEngine()
    backend = DockerOrchestrator(engine)
    backend.create_service(spec("b-learners", "present:1", "b"))
    slow = threading.Thread(target=backend.create_service,
                            args=(spec("a-learners", "slow:1", "a"),), daemon=True)
    slow.start()
    assert engine.pulling.wait(30), "the pull never started"
    try:
        # while project A's pull hangs: project B's status, a new service, a removal
        status = backend.service_status("b-learners")
        assert status is not None and status.state is ServiceState.RUNNING
        backend.create_service(spec("b-aggregator", "present:1", "b"))
        assert backend.remove_service("b-aggregator")
        assert slow.is_alive() and "a-learners-0" not in engine.containers_by_name
    finally:
        engine.release.set()
    slow.join(30)
    assert "a-learners-0" in engine.containers_by_name


def test_removed_instances_are_reported_missing_and_started_again() -> None:
    engine = FakeEngine()
    backend = DockerOrchestrator(engine)
    backend.create_service(spec("p-learners", "present:1", "p", instances=3))
    del engine.containers_by_name["p-learners-1"]  # removed behind the backend's back
    status = backend.service_status("p-learners")
    assert status is not None and status.missing == ("p-learners-1",)
    assert status.running == 2
    repaired = backend.create_service(spec("p-learners", "present:1", "p", instances=3))
    assert repaired.missing == () and repaired.running == 3
    assert engine.created == ["p-learners-0", "p-learners-1", "p-learners-2", "p-learners-1"]
    # killed from outside (podman kill): missing too, and replaced
    engine.containers_by_name["p-learners-2"].attrs["State"] = {"Status": "exited",
                                                                "ExitCode": 137}
    killed = backend.service_status("p-learners")
    assert killed is not None and killed.missing == ("p-learners-2",)
    assert killed.state is ServiceState.FAILED
    assert backend.create_service(spec("p-learners", "present:1", "p", instances=3)).running == 3
    assert engine.created[-1] == "p-learners-2"
    for name in ("p-learners-0", "p-learners-1", "p-learners-2"):
        del engine.containers_by_name[name]
    assert backend.service_status("p-learners") is None
