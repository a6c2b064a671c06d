"""Mock data provider use cases: store the request and ask the orchestrator for the service."""

from __future__ import annotations

from typing import Any

from flops_manager.lifecycle.actions import Role
from flops_manager.lifecycle.service_specs import mock_provider_spec
from flops_manager.ports.orchestrator import Orchestrator
from flops_manager.ports.project_store import ProjectStore
from flops_manager.ports.records import ServiceRecord
from flops_manager.services.clock import Clock, IdFactory, new_record_id, system_clock
from flops_manager.settings import Settings

KIND = Role.MOCK_DATA_PROVIDER.value


class MockDataService:
    """Create, list and read mock data providers."""

    def __init__(
        self,
        store: ProjectStore,
        orchestrator: Orchestrator,
        *,
        settings: Settings,
        clock: Clock = system_clock,
        new_id: IdFactory = new_record_id,
    ) -> None:
        self.store = store
        self.orchestrator = orchestrator
        self.settings = settings
        self.clock = clock
        self.new_id = new_id

    def create(self, *, owner: str, request: dict[str, Any]) -> ServiceRecord:
        """Record the request, then create the provider service (named ``mdp-<id>``)."""
        record_id = self.new_id()
        record = ServiceRecord(
            id=record_id,
            owner=owner,
            kind=KIND,
            name=f"mdp-{record_id}",
            request=dict(request),
            created_at=self.clock(),
        )
        self.store.put_service_record(record)
        spec = mock_provider_spec(
            name=record.name, owner=owner, request=record.request, settings=self.settings
        )
        status = self.orchestrator.create_service(spec)
        created = ServiceRecord(**{**record.__dict__, "state": status.state.value})
        return self.store.put_service_record(created)

    def get(self, record_id: str, *, owner: str) -> ServiceRecord:
        """Return one of the owner's providers."""
        return self.store.get_service_record(record_id, owner=owner, kind=KIND)

    def list_providers(self, *, owner: str) -> list[ServiceRecord]:
        """Return the owner's providers."""
        return self.store.list_service_records(owner=owner, kind=KIND)
