"""Who may do what in MLflow when its basic-auth app guards the tracking server (pure).

With ``FLOPS_TRACKING_ACCESS=mlflow-basic-auth`` the server denies everything by default
(``default_permission = NO_PERMISSIONS``) and the manager, the only holder of the admin login,
grants per resource:

* each FLOps owner has an MLflow login named after them and ``MANAGE`` on the experiments and
  registered models of their projects (nothing else);
* each project's aggregator gets, through enrollment, a login of that project with ``EDIT`` on
  the project's experiment and registered model; it is deleted when the project ends;
* the project's model builder and inference servers get a read-only login of that project
  (``READ``), deleted when the project is deleted (inference servers outlive the project).

Passwords are derived (HMAC-SHA256 keyed by the manager's MLflow admin password), so the
manager stores none and a component that learns its own cannot compute another.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
from collections.abc import Mapping

from flops_contracts.enrollment import TRACKING_PASSWORD_VAR, TRACKING_USERNAME_VAR

EXPERIMENT = "experiment"
REGISTERED_MODEL = "registered_model"
OWNER_PERMISSION = "MANAGE"
WRITER_PERMISSION = "EDIT"
READER_PERMISSION = "READ"
OWNER_TAG = "flops.owner"
"""Tag of an experiment or registered model naming the FLOps owner it was created for."""
PROOF_TAG = "flops.owner_proof"
"""Tag proving the manager created the resource for that owner (:func:`ownership_proof`).

Any MLflow login may create experiments and registered models (and manages what it
creates), so a name found in MLflow is trusted only with this tag: a resource another login
created first under an owner's future name is refused, never granted to the owner."""
TRACKING_USERNAME = TRACKING_USERNAME_VAR
TRACKING_PASSWORD = TRACKING_PASSWORD_VAR
COMPONENT_PREFIX = "flops-project-"
"""Prefix of every component login; no owner may have a name starting with it."""
WRITER_ROLES = frozenset({"aggregator"})
READER_ROLES = frozenset({"model_builder", "inference_server"})


@dataclasses.dataclass(frozen=True)
class Grant:
    """``permission`` for ``username`` on one experiment (by name) or registered model."""

    username: str
    resource_type: str
    resource: str
    permission: str


@dataclasses.dataclass(frozen=True)
class ProjectAccess:
    """What must exist in MLflow before a project's components talk to it."""

    experiment: str
    model: str | None
    owner: str
    logins: tuple[str, ...]
    """Logins to create (owner first), each with the password :func:`password_of` derives."""
    grants: tuple[Grant, ...]


def experiment_name(owner: str, project_name: str | None, project_id: str) -> str:
    """The experiment of an owner's projects named ``project_name`` (unnamed: per project).

    Like the aggregator's own default (``flops-<name>``) but qualified by the owner, so two
    owners' projects of the same name never share an experiment.
    """
    return f"{owner}/flops-{project_name or project_id}"


def writer_username(project_id: str) -> str:
    """The login of ``project_id``'s aggregator (``EDIT``)."""
    return f"{COMPONENT_PREFIX}{project_id}-aggregator"


def reader_username(project_id: str) -> str:
    """The read-only login of ``project_id``'s model builder and inference servers."""
    return f"{COMPONENT_PREFIX}{project_id}-reader"


def owner_refusal(owner: str, *, admin: str) -> str | None:
    """Why ``owner`` cannot have an MLflow login of their own (``None``: they can)."""
    if owner == admin:
        return f"the owner name {owner!r} is MLflow's administrator login"
    if owner.startswith(COMPONENT_PREFIX):
        return f"owner names starting with {COMPONENT_PREFIX!r} are reserved for components"
    if ":" in owner or not owner.strip():
        return f"{owner!r} cannot be an HTTP basic-auth user name"
    return None


def derive_password(key: str, username: str) -> str:
    """The password of ``username``: HMAC-SHA256 of it keyed by ``key`` (43 characters)."""
    mac = hmac.new(key.encode(), b"flops-mlflow-login:" + username.encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")


def access_plan(*, owner: str, project_id: str, project_name: str | None,
                model: str | None) -> ProjectAccess:
    """The logins and grants of one project (owner ``MANAGE``, writer ``EDIT``, reader ``READ``)."""
    experiment = experiment_name(owner, project_name, project_id)
    people = ((owner, OWNER_PERMISSION), (writer_username(project_id), WRITER_PERMISSION),
              (reader_username(project_id), READER_PERMISSION))
    resources = [(EXPERIMENT, experiment)] + ([(REGISTERED_MODEL, model)] if model else [])
    return ProjectAccess(
        experiment=experiment, model=model, owner=owner,
        logins=tuple(name for name, _ in people),
        grants=tuple(Grant(name, kind, resource, permission)
                     for name, permission in people for kind, resource in resources),
    )


def login_of_role(project_id: str, role: str) -> str | None:
    """The MLflow login a service of ``role`` gets (``None``: it does not talk to MLflow)."""
    if role in WRITER_ROLES:
        return writer_username(project_id)
    if role in READER_ROLES:
        return reader_username(project_id)
    return None


def login_env(project_id: str, role: str, *, key: str) -> dict[str, str]:
    """``MLFLOW_TRACKING_USERNAME``/``PASSWORD`` of a service of ``role`` (empty if none)."""
    username = login_of_role(project_id, role)
    if username is None:
        return {}
    return {TRACKING_USERNAME: username, TRACKING_PASSWORD: derive_password(key, username)}


def ended_logins(project_id: str, *, standalone: bool, service: str | None) -> list[str]:
    """Logins to delete when enrollment revokes a project's grants.

    At the project's end (``standalone`` false) only the writer goes; when the project is
    deleted (``standalone``) the reader goes too. Revoking one service's grant deletes none
    (the project's other services still use the logins).
    """
    if service is not None:
        return []
    ended = [writer_username(project_id)]
    return [*ended, reader_username(project_id)] if standalone else ended


def ownership_proof(key: str, resource_type: str, name: str, owner: str) -> str:
    """The :data:`PROOF_TAG` value of ``owner``'s resource ``name`` (HMAC, bound to all three)."""
    return derive_password(key, f"{resource_type}\n{name}\n{owner}")


def ownership_tags(key: str, resource_type: str, name: str, owner: str) -> dict[str, str]:
    """The tags the manager creates ``owner``'s resource ``name`` with."""
    return {OWNER_TAG: owner, PROOF_TAG: ownership_proof(key, resource_type, name, owner)}


def ownership_conflict(key: str, resource_type: str, name: str, tags: Mapping[str, str], *,
                       owner: str) -> str | None:
    """Why the resource ``name`` found with ``tags`` cannot be ``owner``'s (``None``: it is)."""
    if hmac.compare_digest(tags.get(PROOF_TAG, ""),
                           ownership_proof(key, resource_type, name, owner)):
        return None
    what, field = ((EXPERIMENT, "project name") if resource_type == EXPERIMENT
                   else ("registered model", "model.registered_model_name"))
    return (f"the {what} name {name!r} was created in MLflow by someone else than FLOps for "
            f"this owner; choose another {field}")
