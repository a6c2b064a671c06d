"""The TrackingAccess port: logins and per-resource permissions on the MLflow server."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence


class TrackingAccess(abc.ABC):
    """Administers the tracking server's logins and grants (as its administrator).

    Every method may raise ``TemporaryError`` (the server is unreachable or failing).

    Constraints: every method is idempotent, so an interrupted reconcile pass can redo it.
    """

    managed: bool = True
    """Whether the server checks logins (``False``: it is open, nothing is administered)."""

    @abc.abstractmethod
    def ensure_user(self, username: str, password: str) -> None:
        """Create ``username`` with ``password``, or set that password if it exists."""

    @abc.abstractmethod
    def delete_users(self, usernames: Sequence[str]) -> None:
        """Delete ``usernames`` and their permissions (missing ones are ignored)."""

    @abc.abstractmethod
    def ensure_experiment(self, name: str, *,
                          tags: Mapping[str, str]) -> tuple[str, dict[str, str]]:
        """Create the experiment ``name`` with ``tags`` if missing; return its id and tags."""

    @abc.abstractmethod
    def ensure_registered_model(self, name: str, *, tags: Mapping[str, str]) -> dict[str, str]:
        """Create the registered model ``name`` with ``tags`` if missing; return its tags."""

    @abc.abstractmethod
    def grant(self, *, username: str, resource_type: str, resource_id: str,
              permission: str) -> None:
        """Give ``username`` ``permission`` on one experiment (id) or registered model (name)."""


class OpenTracking(TrackingAccess):
    """An open tracking server (the embedded stack, loopback only): nothing to administer."""

    managed = False

    def ensure_user(self, username: str, password: str) -> None:
        """Do nothing."""

    def delete_users(self, usernames: Sequence[str]) -> None:
        """Do nothing."""

    def ensure_experiment(self, name: str, *,
                          tags: Mapping[str, str]) -> tuple[str, dict[str, str]]:
        """Return ``""`` and ``tags`` (the aggregator creates its experiment itself)."""
        return "", dict(tags)

    def ensure_registered_model(self, name: str, *, tags: Mapping[str, str]) -> dict[str, str]:
        """Return ``tags`` unchanged."""
        return dict(tags)

    def grant(self, *, username: str, resource_type: str, resource_id: str,
              permission: str) -> None:
        """Do nothing."""
