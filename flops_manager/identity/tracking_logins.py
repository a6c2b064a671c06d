"""MLflow logins of owners and of project components, applied through :class:`TrackingAccess`.

The rules (who gets which permission on what, how passwords are derived) are in
:mod:`.tracking_policy`; this class runs them against the tracking server. With an open
server (``OpenTracking``: the embedded stack, loopback only) every method does nothing.
"""

from __future__ import annotations

import logging

from flops_manager.identity import tracking_policy as policy
from flops_manager.lifecycle.service_specs import parsed_spec
from flops_manager.lifecycle.state import Project
from flops_manager.ports.errors import ForbiddenError, PermanentError
from flops_manager.ports.tracking_access import TrackingAccess
from flops_manager.settings import Settings

log = logging.getLogger(__name__)


class TrackingLogins:
    """Creates, grants and deletes the MLflow logins FLOps hands out."""

    def __init__(self, access: TrackingAccess, settings: Settings) -> None:
        self.access = access
        self.admin = settings.tracking_admin_username
        self._key = settings.tracking_admin_password or ""

    @property
    def managed(self) -> bool:
        """Whether the tracking server checks logins."""
        return self.access.managed

    def owner_login(self, owner: str) -> dict[str, str] | None:
        """Make sure ``owner`` has an MLflow login; return it (``None``: the server is open).

        Raises
        ------
        ForbiddenError
            If ``owner``'s name cannot be an MLflow login of its own (:func:`owner_refusal`).
        """
        if not self.managed:
            return None
        refusal = policy.owner_refusal(owner, admin=self.admin)
        if refusal is not None:
            raise ForbiddenError(f"no MLflow login for this owner: {refusal}")
        password = policy.derive_password(self._key, owner)
        self.access.ensure_user(owner, password)
        return {"username": owner, "password": password}

    def component_env(self, project_id: str, role: str) -> dict[str, str]:
        """The MLflow login variables of a service of ``role`` (empty: none or open server)."""
        if not self.managed:
            return {}
        return policy.login_env(project_id, role, key=self._key)

    def prepare(self, project: Project) -> None:
        """Create the project's experiment, registered model, logins and grants (idempotent).

        Runs before any of the project's services that talk to MLflow is created, so that
        they find their permissions in place.

        Raises
        ------
        PermanentError
            If the owner cannot have a login or the registered model name is another's.
        """
        if not self.managed:
            return
        spec = parsed_spec(project)
        plan = policy.access_plan(owner=project.owner, project_id=project.id,
                                  project_name=spec.name, model=spec.model.registered_model_name)
        refusal = policy.owner_refusal(plan.owner, admin=self.admin)
        if refusal is not None:
            raise PermanentError(f"no MLflow login for the project's owner: {refusal}")
        for username in plan.logins:
            self.access.ensure_user(username, policy.derive_password(self._key, username))
        ids = {(policy.EXPERIMENT, plan.experiment): self._owned(
            policy.EXPERIMENT, plan.experiment, plan.owner)}
        if plan.model is not None:
            ids[(policy.REGISTERED_MODEL, plan.model)] = self._owned(
                policy.REGISTERED_MODEL, plan.model, plan.owner)
        for grant in plan.grants:
            self.access.grant(username=grant.username, resource_type=grant.resource_type,
                              resource_id=ids[(grant.resource_type, grant.resource)],
                              permission=grant.permission)
        log.info("MLflow access of %s prepared (experiment %r)", project.id, plan.experiment)

    def _owned(self, resource_type: str, name: str, owner: str) -> str:
        """Create ``owner``'s resource if missing; return its id (a name for a model).

        Raises
        ------
        PermanentError
            If the resource exists but FLOps did not create it for ``owner``.
        """
        tags = policy.ownership_tags(self._key, resource_type, name, owner)
        if resource_type == policy.EXPERIMENT:
            resource_id, found = self.access.ensure_experiment(name, tags=tags)
        else:
            resource_id, found = name, self.access.ensure_registered_model(name, tags=tags)
        conflict = policy.ownership_conflict(self._key, resource_type, name, found, owner=owner)
        if conflict is not None:
            raise PermanentError(conflict)
        return resource_id

    def end(self, project_id: str, *, standalone: bool, service: str | None) -> None:
        """Delete the project's component logins that end with this revocation."""
        if self.managed:
            self.access.delete_users(policy.ended_logins(project_id, standalone=standalone,
                                                         service=service))
