"""The BrokerAccounts port: per-project, per-role broker logins the broker itself enforces."""

from __future__ import annotations

import abc
from collections.abc import Sequence


class BrokerAccounts(abc.ABC):
    """Creates and removes broker logins limited to publishing on given topics.

    Every method may raise ``TemporaryError`` (the broker is unreachable).
    """

    managed: bool = True
    """Whether this broker gets one login per enrolled instance (``False``: components use
    the shared login configured for them, if any)."""

    @abc.abstractmethod
    def add(self, username: str, password: str, *, role: str, topics: Sequence[str]) -> None:
        """Create ``username`` able to publish only on ``topics`` (grouped as ``role``)."""

    @abc.abstractmethod
    def remove(self, usernames: Sequence[str]) -> None:
        """Delete ``usernames`` (missing ones are ignored) and disconnect their sessions."""


class SharedBrokerLogin(BrokerAccounts):
    """No per-project logins: the broker is anonymous or has one component login."""

    managed = False

    def add(self, username: str, password: str, *, role: str, topics: Sequence[str]) -> None:
        """Do nothing."""

    def remove(self, usernames: Sequence[str]) -> None:
        """Do nothing."""
