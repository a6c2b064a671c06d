"""Trained models of a project and their inference deployments.

Deploying and undeploying only record what the user wants; the reconcile worker creates and
removes the inference servers (:mod:`flops_manager.lifecycle.deployments`).
"""

from __future__ import annotations

from typing import Any

from flops_manager.lifecycle.deployments import KIND, model_problem
from flops_manager.lifecycle.service_specs import served_model_uri
from flops_manager.ports.errors import InvalidTransitionError, NotFoundError
from flops_manager.ports.project_store import ProjectStore
from flops_manager.ports.records import ABSENT, ServiceRecord
from flops_manager.services.clock import Clock, IdFactory, new_record_id, system_clock
from flops_manager.services.projects import ProjectService


class ModelService:
    """List a project's models; request and withdraw inference servers for them."""

    def __init__(
        self,
        store: ProjectStore,
        projects: ProjectService,
        *,
        clock: Clock = system_clock,
        new_id: IdFactory = new_record_id,
    ) -> None:
        self.store = store
        self.projects = projects
        self.clock = clock
        self.new_id = new_id

    def list_models(self, project_id: str, *, owner: str) -> list[dict[str, Any]]:
        """Return the project's trained models (at most one: the selected model)."""
        project = self.projects.get(project_id, owner=owner)
        return [dict(project.model)] if project.model else []

    def deploy(
        self, project_id: str, *, owner: str, model_uri: str | None, instances: int
    ) -> ServiceRecord:
        """Record a wanted inference server for a model of the project (state ``requested``).

        Raises
        ------
        InvalidTransitionError
            If the project has no trained model yet, or ``model_uri`` is not the project's.
        """
        project = self.projects.get(project_id, owner=owner)
        uri = model_uri or served_model_uri(project)
        problem = model_problem(project, uri)
        if problem:
            raise InvalidTransitionError(problem)
        record_id = self.new_id()
        return self.store.put_service_record(ServiceRecord(
            id=record_id,
            owner=owner,
            kind=KIND,
            name=f"{project_id}-serve-{record_id[-8:]}",
            request={"model_uri": uri, "instances": instances},
            created_at=self.clock(),
            project_id=project_id,
        ))

    def list_deployments(self, project_id: str, *, owner: str) -> list[ServiceRecord]:
        """Return the project's inference deployments (not those being removed)."""
        self.projects.get(project_id, owner=owner)
        found = self.store.list_service_records(owner=owner, kind=KIND, project_id=project_id)
        return [r for r in found if r.desired != ABSENT]

    def get_deployment(self, project_id: str, deployment_id: str, *, owner: str) -> ServiceRecord:
        """Return one deployment of the project (``NotFoundError`` once removal was asked)."""
        self.projects.get(project_id, owner=owner)
        record = self.store.get_service_record(deployment_id, owner=owner, kind=KIND)
        if record.project_id != project_id or record.desired == ABSENT:
            raise NotFoundError(f"deployment {deployment_id} not found")
        return record

    def undeploy(self, project_id: str, deployment_id: str, *, owner: str) -> ServiceRecord:
        """Ask for the inference server's removal; the reconciler removes it, then the record."""
        record = self.get_deployment(project_id, deployment_id, owner=owner)
        self.store.request_service_removal(record.id)
        return record.replace(desired=ABSENT)
