"""In-memory Orchestrator, for unit tests and the restart test (``FLOPS_ORCHESTRATOR_URI=memory://``).

It records services and can be told to fail the next calls with a ``TemporaryError``.
"""

from __future__ import annotations

import threading

from flops_manager.ports.errors import TemporaryError
from flops_manager.ports.orchestrator import (
    Cluster,
    Orchestrator,
    ServiceSpec,
    ServiceState,
    ServiceStatus,
)


class MemoryOrchestrator(Orchestrator):
    """Services live in a dictionary; every created service is immediately ``running``."""

    def __init__(self, clusters: list[Cluster] | None = None) -> None:
        self._lock = threading.Lock()
        self.services: dict[str, ServiceSpec] = {}
        self.created: list[str] = []
        self.removed: list[str] = []
        self.fail_next = 0
        self._clusters = clusters or [Cluster(id="local", name="local")]

    def _maybe_fail(self) -> None:
        if self.fail_next > 0:
            self.fail_next -= 1
            raise TemporaryError("orchestrator temporarily unavailable (injected)")

    def _status(self, spec: ServiceSpec) -> ServiceStatus:
        return ServiceStatus(
            name=spec.name,
            role=spec.role,
            state=ServiceState.RUNNING,
            instances=spec.instances,
            running=spec.instances,
            address=f"{spec.name}:8080",
        )

    def create_service(self, spec: ServiceSpec) -> ServiceStatus:  # noqa: D102
        with self._lock:
            self._maybe_fail()
            existing = self.services.get(spec.name)
            if existing is None:
                self.services[spec.name] = spec
                self.created.append(spec.name)
                existing = spec
            return self._status(existing)

    def service_status(self, name: str) -> ServiceStatus | None:  # noqa: D102
        with self._lock:
            spec = self.services.get(name)
            return None if spec is None else self._status(spec)

    def service_address(self, name: str) -> str | None:  # noqa: D102
        status = self.service_status(name)
        return None if status is None else status.address

    def remove_service(self, name: str) -> bool:  # noqa: D102
        with self._lock:
            self._maybe_fail()
            existed = self.services.pop(name, None) is not None
            if existed:
                self.removed.append(name)
            return existed

    def list_clusters(self) -> list[Cluster]:  # noqa: D102
        return list(self._clusters)
