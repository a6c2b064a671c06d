"""TrackingAccess through the REST API of MLflow's basic-auth app, as its administrator.

The server runs ``mlflow server --app-name basic-auth``; only the manager holds the admin login.

Users: ``/api/2.0/mlflow/users/{create,update-password,delete}``; permissions:
``/api/3.0/mlflow/users/permissions/grant`` (resource type ``experiment`` by id,
``registered_model`` by name). MLflow answers ``RESOURCE_ALREADY_EXISTS`` and
``RESOURCE_DOES_NOT_EXIST`` for what is already done, which makes every call idempotent.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import requests

from flops_manager.ports.errors import PermanentError, TemporaryError
from flops_manager.ports.tracking_access import TrackingAccess

log = logging.getLogger(__name__)

EXISTS = "RESOURCE_ALREADY_EXISTS"
MISSING = "RESOURCE_DOES_NOT_EXIST"


class MlflowAuthAccess(TrackingAccess):
    """Administers logins and grants of one MLflow server running the basic-auth app."""

    def __init__(self, base_url: str, *, username: str, password: str,
                 timeout_s: float = 15.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._auth = (username, password)

    def _call(self, method: str, path: str, *, ok: tuple[str, ...] = (),
              **kwargs: Any) -> dict[str, Any] | None:
        """Send one admin request; ``None`` when MLflow answered one of the ``ok`` error codes.

        Raises
        ------
        TemporaryError
            The server is unreachable, failing (5xx) or refused the administrator login.
        PermanentError
            MLflow refused the request itself (its message is kept).
        """
        try:
            resp = requests.request(method, self.base_url + path, auth=self._auth,
                                    timeout=self.timeout_s, **kwargs)
        except requests.RequestException as exc:
            raise TemporaryError(f"MLflow at {self.base_url} is unreachable: {exc}") from exc
        if resp.status_code < 300:
            return dict(resp.json()) if resp.content else {}
        try:
            body = resp.json()
        except ValueError:
            body = {"message": resp.text[:300]}
        if body.get("error_code") in ok:
            return None
        message = f"MLflow {method} {path}: {resp.status_code} {body.get('message', '')}"
        if resp.status_code >= 500 or resp.status_code in (401, 403):
            raise TemporaryError(message + (" (check FLOPS_TRACKING_ADMIN_USERNAME/PASSWORD)"
                                            if resp.status_code in (401, 403) else ""))
        raise PermanentError(message)

    def ensure_user(self, username: str, password: str) -> None:
        """Create ``username``, or reset its password to ``password`` if it exists."""
        user = {"username": username, "password": password}
        if self._call("POST", "/api/2.0/mlflow/users/create", json=user, ok=(EXISTS,)) is None:
            self._call("PATCH", "/api/2.0/mlflow/users/update-password", json=user)

    def delete_users(self, usernames: Sequence[str]) -> None:
        """Delete each of ``usernames`` (MLflow drops their permissions with them)."""
        for username in usernames:
            self._call("DELETE", "/api/2.0/mlflow/users/delete", json={"username": username},
                       ok=(MISSING,))

    def ensure_experiment(self, name: str, *,
                          tags: Mapping[str, str]) -> tuple[str, dict[str, str]]:
        """Create the experiment with ``tags`` if missing; return its id and tags."""
        self._call("POST", "/api/2.0/mlflow/experiments/create", ok=(EXISTS,),
                   json={"name": name, "tags": _tag_list(tags)})
        found = (self._call("GET", "/api/2.0/mlflow/experiments/get-by-name",
                            params={"experiment_name": name}) or {})["experiment"]
        return str(found["experiment_id"]), _tag_dict(found)

    def ensure_registered_model(self, name: str, *, tags: Mapping[str, str]) -> dict[str, str]:
        """Create the registered model with ``tags`` if missing; return its tags."""
        self._call("POST", "/api/2.0/mlflow/registered-models/create", ok=(EXISTS,),
                   json={"name": name, "tags": _tag_list(tags)})
        found = self._call("GET", "/api/2.0/mlflow/registered-models/get",
                           params={"name": name}) or {}
        return _tag_dict(found["registered_model"])

    def grant(self, *, username: str, resource_type: str, resource_id: str,
              permission: str) -> None:
        """Grant ``permission`` (an existing grant is left as it is: FLOps' plan is fixed)."""
        self._call("POST", "/api/3.0/mlflow/users/permissions/grant", ok=(EXISTS,), json={
            "username": username, "resource_type": resource_type,
            "resource_id": resource_id, "permission": permission})


def _tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in tags.items()]


def _tag_dict(resource: Mapping[str, Any]) -> dict[str, str]:
    return {str(t["key"]): str(t.get("value", "")) for t in resource.get("tags", [])}
