"""Trained models of a project and their inference deployments."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flops_manager.lifecycle.actions import Role
from flops_manager.lifecycle.placement import placement
from flops_manager.lifecycle.service_specs import (
    inference_spec,
    served_model_uri,
    with_broker_login,
)
from flops_manager.ports.errors import InvalidTransitionError, NotFoundError
from flops_manager.ports.orchestrator import Orchestrator, ServiceSpec
from flops_manager.ports.project_store import ProjectStore
from flops_manager.ports.records import ServiceRecord
from flops_manager.services.clock import Clock, IdFactory, new_record_id, system_clock
from flops_manager.services.projects import ProjectService
from flops_manager.settings import Settings

KIND = Role.INFERENCE_SERVER.value


class ModelService:
    """List a project's models; deploy and undeploy inference servers for them."""

    def __init__(
        self,
        store: ProjectStore,
        orchestrator: Orchestrator,
        projects: ProjectService,
        *,
        settings: Settings,
        clock: Clock = system_clock,
        new_id: IdFactory = new_record_id,
        seal: Callable[[ServiceSpec], ServiceSpec] = lambda spec: spec,
        unseal: Callable[[str, str], object] = lambda project_id, service: None,
    ) -> None:
        self.store = store
        self.orchestrator = orchestrator
        self.projects = projects
        self.settings = settings
        self.clock = clock
        self.new_id = new_id
        self.seal = seal
        """Hands a deployment its credentials (``Enrollment.seal_standalone``)."""
        self.unseal = unseal
        """Revokes them: (project id, service name) (``Enrollment.revoke``)."""

    def list_models(self, project_id: str, *, owner: str) -> list[dict[str, Any]]:
        """Return the project's trained models (at most one: the selected model)."""
        project = self.projects.get(project_id, owner=owner)
        return [dict(project.model)] if project.model else []

    def deploy(
        self, project_id: str, *, owner: str, model_uri: str | None, instances: int
    ) -> ServiceRecord:
        """Create an inference server for a model of the project.

        Raises
        ------
        InvalidTransitionError
            If the project has no trained model yet.
        """
        project = self.projects.get(project_id, owner=owner)
        known = served_model_uri(project)
        if not known:
            raise InvalidTransitionError(f"project {project_id} has no trained model yet")
        uri = model_uri or known
        model = project.model or {}
        if uri not in (model.get("registry_uri"), model.get("model_uri")):
            raise InvalidTransitionError(f"model {uri!r} does not belong to project {project_id}")
        record_id = self.new_id()
        record = ServiceRecord(
            id=record_id,
            owner=owner,
            kind=KIND,
            name=f"{project_id}-serve-{record_id[-8:]}",
            request={"model_uri": uri, "instances": instances},
            created_at=self.clock(),
            project_id=project_id,
        )
        self.store.put_service_record(record)
        place = placement(self.orchestrator, self.settings, project, tracking=True)
        spec = self.seal(with_broker_login(inference_spec(
            project, self.settings, place, model_uri=uri, name=record.name, instances=instances
        ), self.settings))
        status = self.orchestrator.create_service(spec)
        url = self.orchestrator.public_url(spec.name)
        deployed = ServiceRecord(
            **{**record.__dict__, "state": status.state.value, "message": url}
        )
        return self.store.put_service_record(deployed)

    def list_deployments(self, project_id: str, *, owner: str) -> list[ServiceRecord]:
        """Return the project's inference deployments."""
        self.projects.get(project_id, owner=owner)
        return self.store.list_service_records(owner=owner, kind=KIND, project_id=project_id)

    def undeploy(self, project_id: str, deployment_id: str, *, owner: str) -> None:
        """Remove the inference server and its record."""
        self.projects.get(project_id, owner=owner)
        record = self.store.get_service_record(deployment_id, owner=owner, kind=KIND)
        if record.project_id != project_id:
            raise NotFoundError(f"deployment {deployment_id} not found")
        self.orchestrator.remove_service(record.name)
        self.unseal(project_id, record.name)
        self.store.delete_service_record(record.id)
