"""Per-login broker rules for the amqtt fallback broker: a policy file and the amqtt plugins.

The embedded stack runs amqtt when Mosquitto is not installed. Mosquitto enforces FLOps' broker
identities through its dynamic security plugin; amqtt gets the same rules from this module:

* the manager (:class:`flops_manager.adapters.file_broker_accounts.PolicyFileBrokerAccounts`)
  writes one JSON *policy file*: every login with a salted PBKDF2 digest of its password, whether
  it is the administrator, and the topic filters it may publish on;
* the broker loads :class:`FlopsAuthPlugin` (who may connect) and :class:`FlopsTopicPlugin`
  (who may publish, subscribe and receive what), which re-read the file whenever it changes, so
  a login added by the manager works at once and a removed login can neither connect nor
  publish any more (amqtt cannot drop a connected session from a plugin; what it sends after
  removal is discarded).

Nobody is anonymous. The administrator may do everything; any other login may publish only on
its filters, and may neither subscribe nor receive. This file is copied into amqtt's private
virtual environment as the top-level module ``flops_amqtt_policy``, so it imports nothing but
the standard library and amqtt (which the manager's own environment does not have: there only
the pure functions are used).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

POLICY_FORMAT = 1
PBKDF2_ITERATIONS = 20_000
"""Per connect; the passwords are random tokens (``secrets.token_urlsafe``), not user choices."""


def password_digest(password: str, salt: bytes, iterations: int = PBKDF2_ITERATIONS) -> str:
    """The stored form of ``password``: ``pbkdf2_sha256$<iterations>$<salt>$<digest>``."""
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return "$".join(["pbkdf2_sha256", str(iterations), base64.b64encode(salt).decode("ascii"),
                     base64.b64encode(digest).decode("ascii")])


def password_matches(stored: str, password: str) -> bool:
    """Whether ``password`` matches ``stored`` (constant time; ``False`` for a malformed entry)."""
    parts = stored.split("$") if isinstance(stored, str) else []
    if len(parts) != 4 or parts[0] != "pbkdf2_sha256" or not parts[1].isdigit():
        return False
    try:
        salt = base64.b64decode(parts[2], validate=True)
    except ValueError:
        return False
    return hmac.compare_digest(password_digest(password, salt, int(parts[1])), stored)


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT topic filter matching (``+`` one level, ``#`` the rest, both only as whole levels).

    A filter also matches a subscription filter that is narrower than or equal to it level by
    level (``flops/+/x`` covers a subscription to ``flops/p1/x``, not to ``flops/#``).
    """
    wanted, given = topic_filter.split("/"), topic.split("/")
    for index, level in enumerate(wanted):
        if level == "#":
            return index == len(wanted) - 1
        if index >= len(given):
            return False
        if given[index] in ("+", "#"):
            if level != "+" or given[index] == "#":
                return False
            continue
        if level not in ("+", given[index]):
            return False
    return len(given) == len(wanted)


def empty_policy() -> dict[str, Any]:
    """A policy with no login."""
    return {"format": POLICY_FORMAT, "logins": {}}


def login_entry(password: str, *, salt: bytes, publish: list[str] | None = None,
                admin: bool = False) -> dict[str, Any]:
    """One login of the policy file."""
    return {"password": password_digest(password, salt), "admin": admin,
            "publish": sorted(publish or [])}


def may_connect(policy: Mapping[str, Any], username: str | None, password: str | None) -> bool:
    """Whether ``username`` with ``password`` may connect (no login: never)."""
    entry = policy.get("logins", {}).get(username) if username else None
    if not entry or password is None:
        return False
    return password_matches(entry["password"], password)


def may(policy: Mapping[str, Any], username: str | None, topic: str, action: str) -> bool:
    """Whether ``username`` may ``action`` (publish, subscribe, receive) on ``topic``."""
    entry = policy.get("logins", {}).get(username) if username else None
    if not entry:
        return False
    if entry.get("admin"):
        return True
    return action == "publish" and any(topic_matches(f, topic) for f in entry["publish"])


class PolicyFile:
    """The policy file, re-read when its modification time or size changes."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int] | None = None
        self._policy: dict[str, Any] = empty_policy()

    def current(self) -> dict[str, Any]:
        """The policy now (no login when the file is missing or unreadable)."""
        try:
            stat = self.path.stat()
        except OSError:
            return empty_policy()
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            try:
                self._policy = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return empty_policy()
            self._stamp = stamp
        return self._policy


try:  # inside amqtt's environment: the plugins
    from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
except ImportError:  # the manager's environment: only the policy above is used
    pass
else:
    @dataclasses.dataclass
    class _Config:
        """Where the policy file is."""

        policy_file: str = ""

    class FlopsAuthPlugin(BaseAuthPlugin):  # type: ignore[misc,unused-ignore]
        """Connect only with a login of the policy file."""

        Config = _Config

        def __init__(self, context: Any) -> None:
            super().__init__(context)
            self.policy = PolicyFile(self.config.policy_file)

        async def authenticate(self, *, session: Any) -> bool:
            """Check the session's login against the policy file."""
            return may_connect(self.policy.current(), session.username, session.password)

    class FlopsTopicPlugin(BaseTopicPlugin):  # type: ignore[misc,unused-ignore]
        """Publish, subscribe and receive only what the login's entry allows."""

        Config = _Config

        def __init__(self, context: Any) -> None:
            super().__init__(context)
            self.policy = PolicyFile(self.config.policy_file)

        async def topic_filtering(self, *, session: Any = None, topic: str | None = None,
                                  action: Any = None) -> bool:
            """Check ``action`` on ``topic`` for the session's login."""
            if session is None or topic is None or action is None:
                return False
            return may(self.policy.current(), session.username, topic, str(action.value))
