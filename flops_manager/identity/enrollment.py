"""Enrollment: seal services with a grant, exchange grants for working credentials, revoke.

* :meth:`Enrollment.seal` runs just before a project's service is created, on every backend:
  the service's secrets (``ServiceSpec.secret_env``) are taken out of the spec, and in their
  place it gets an enrollment token (``grants``) in its plain environment, usable once per
  instance.
* :meth:`Enrollment.exchange` (``POST /api/v1/enroll``) checks a token and returns that
  instance's working credentials: the secrets its role needs, looked up now, and, when the
  broker is managed, a broker login of its own that can publish only its project's topics
  of its role (:mod:`.broker_policy`). Every refusal is stored as a rejected event of the
  project, so the owner sees it.
* :meth:`Enrollment.revoke` runs when the project ends: no grant can be exchanged any more
  and every broker login handed out is deleted from the broker, as is the aggregator's MLflow
  login (:mod:`.tracking_logins`; the read-only one when the project is deleted).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import secrets
import uuid
from collections.abc import Mapping
from typing import Any, NoReturn

from flops_contracts.enrollment import (
    ENROLL_PROJECT_VAR,
    ENROLL_ROLE_VAR,
    ENROLL_TOKEN_VAR,
    ENROLL_URL_VAR,
)
from flops_manager import registry
from flops_manager.identity import broker_policy, grants
from flops_manager.identity.registry_server import REGISTRY_PASSWORD, keyring, project_login
from flops_manager.identity.registry_tokens import Keyring
from flops_manager.identity.tracking_logins import TrackingLogins
from flops_manager.lifecycle.service_specs import (
    LEARNER_DATA_TOKEN,
    MOCK_WRITE_TOKEN,
)
from flops_manager.lifecycle.state import Project
from flops_manager.ports.broker_accounts import BrokerAccounts, SharedBrokerLogin
from flops_manager.ports.errors import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    TemporaryError,
    UnauthorizedError,
)
from flops_manager.ports.orchestrator import ServiceSpec
from flops_manager.ports.project_store import ProjectStore
from flops_manager.ports.records import RejectedEvent
from flops_manager.services.clock import Clock, system_clock
from flops_manager.services.mutate import mutate_project
from flops_manager.settings import Settings

log = logging.getLogger(__name__)

ENROLL_TOPIC = "api:POST /api/v1/enroll"
"""The ``topic`` of rejected enrollments in the rejected-event log."""
MQTT_USERNAME = "FLOPS_MQTT_USERNAME"
MQTT_PASSWORD = "FLOPS_MQTT_PASSWORD"  # noqa: S105 - the variable's name, not a secret
LOOPBACK_HOSTS = frozenset({"", "0.0.0.0",  # noqa: S104 - names compared, not bound
                             "::", "127.0.0.1", "localhost"})


class _Refused(Exception):
    def __init__(self, refusal: grants.Refusal) -> None:
        super().__init__(refusal.reason)
        self.refusal = refusal


def default_api_url(settings: Settings, port: int | None = None) -> str:
    """The manager URL components enroll at when ``FLOPS_COMPONENT_API_URL`` is unset."""
    if settings.component_api_url:
        return settings.component_api_url.rstrip("/")
    host = "127.0.0.1" if settings.host in LOOPBACK_HOSTS else settings.host
    return f"http://{host}:{port if port is not None else settings.port}"


def secret_values(project: Project, settings: Settings, service: str | None = None,
                  tracking: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every secret a service of ``project`` may be handed (by variable name).

    A learner placed on a FLOps node gets its own data token for that node (stored under
    ``LEARNER_DATA_TOKEN + service``), and a mock data provider writing to one its write token
    there (``MOCK_WRITE_TOKEN + service``); no other service gets a data token.
    ``tracking`` is the service's MLflow login (:meth:`TrackingLogins.component_env`).
    """
    own = next((project.secrets[key + service] for key in (LEARNER_DATA_TOKEN, MOCK_WRITE_TOKEN)
                if service and key + service in project.secrets), None)
    values = {
        "FLOPS_DATA_TOKEN": own,
        MQTT_USERNAME: settings.component_mqtt_username,
        MQTT_PASSWORD: settings.component_mqtt_password,
        **(tracking or {}),
    }
    return {k: v for k, v in values.items() if v}


class Enrollment:
    """Grants and working credentials of the services of every project."""

    def __init__(
        self,
        store: ProjectStore,
        settings: Settings,
        *,
        broker: BrokerAccounts | None = None,
        tracking: TrackingLogins | None = None,
        clock: Clock = system_clock,
        registry_keys: Keyring | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.broker = broker or SharedBrokerLogin()
        self.tracking = tracking or TrackingLogins(registry.build_tracking_access(settings),
                                                   settings)
        self.registry_keys = registry_keys or keyring(settings)
        self.clock = clock
        self.api_url = default_api_url(settings)

    # ------------------------------------------------------------------ sealing

    def seal_standalone(self, spec: ServiceSpec) -> ServiceSpec:
        """:meth:`seal` for a service that outlives its project (ended by :meth:`revoke`)."""
        return self.seal(spec, standalone=True)

    def seal(self, spec: ServiceSpec, *, standalone: bool = False) -> ServiceSpec:
        """Replace ``spec``'s secrets by an enrollment token (project services only)."""
        if spec.project_id is None:
            return spec
        grant_id, secret = secrets.token_hex(6), secrets.token_urlsafe(24)
        now = self.clock()
        record = grants.new_grant(
            project_id=spec.project_id, role=spec.role, service=spec.name,
            secret_keys=list(spec.secret_env), uses=spec.instances,
            secret_digest=grants.digest(secret), now=now, ttl_s=self.settings.enroll_ttl_s,
            standalone=standalone,
        )
        mutate_project(self.store, spec.project_id,
                       lambda p: p.replace(grants={**p.grants, grant_id: record}), now=now)
        token = grants.token_text(grants.TokenParts(spec.project_id, grant_id, secret))
        env = {**spec.env, ENROLL_TOKEN_VAR: token, ENROLL_URL_VAR: self.api_url,
               ENROLL_ROLE_VAR: spec.role, ENROLL_PROJECT_VAR: spec.project_id}
        return dataclasses.replace(spec, env=env, secret_env={})

    # ------------------------------------------------------------------ exchange

    def exchange(self, token: str, *, project_id: str, role: str, instance: str) -> dict[str, str]:
        """Return the working credentials of one instance (as variables).

        Raises
        ------
        UnauthorizedError
            For an unknown, malformed, expired, revoked or already used token.
        ForbiddenError
            For a token presented for another project or role, or of an ended project.
        """
        parts = grants.parse_token(token)
        if parts is None:
            self._refuse(project_id, grants.Refusal(401, "malformed enrollment token"),
                         role=role, instance=instance)
        try:
            project = self.store.get_project(parts.project_id)
        except NotFoundError:
            self._refuse(project_id, grants.Refusal(401, "unknown enrollment token"),
                         role=role, instance=instance)
        now = self.clock()
        grant = project.grants.get(parts.grant_id)

        def decide(p: Project) -> grants.Refusal | None:
            return grants.refusal(p.grants.get(parts.grant_id), secret=parts.secret,
                                  project_id=project_id, role=role,
                                  project_active=not p.terminal and not p.deleting, now=now)

        found = decide(project)
        if found is not None:
            self._refuse(parts.project_id, found, role=role, instance=instance)
        if grant is None:  # decide() refuses a missing grant; this keeps the type checker sure
            self._refuse(parts.project_id, grants.Refusal(401, "unknown enrollment grant"),
                         role=role, instance=instance)
        env = {k: v for k, v in secret_values(
            project, self.settings, str(grant.get("service") or ""),
            self.tracking.component_env(project.id, role)).items()
               if k in grant["secret_keys"]}
        if REGISTRY_PASSWORD in grant["secret_keys"]:  # a builder: push to its owner's images
            env.update(project_login(self.registry_keys, self.settings, project_id=parts.project_id,
                                     role=role, kind="builder", now=now))
        username = self._broker_login(parts, role, env)

        def use(p: Project) -> Project:
            refused = decide(p)
            if refused is not None:
                raise _Refused(refused)
            spent = grants.used(p.grants[parts.grant_id], instance=instance, username=username,
                                now=now)
            return p.replace(grants={**p.grants, parts.grant_id: spent})

        try:
            mutate_project(self.store, parts.project_id, use, now=now)
        except _Refused as exc:  # lost a race (a concurrent use, the project ended)
            self._forget(username)
            self._refuse(parts.project_id, exc.refusal, role=role, instance=instance)
        except ConflictError:  # too many concurrent exchanges: the component retries
            self._forget(username)
            raise TemporaryError("enrollment is busy; retry") from None
        log.info("enrolled %s of %s/%s", instance or "an instance", parts.project_id, role)
        return env

    def _forget(self, username: str | None) -> None:
        """Delete a broker login that was created for an exchange that did not happen."""
        if username:
            self.broker.remove([username])

    def _broker_login(self, parts: grants.TokenParts, role: str, env: dict[str, str]) -> str | None:
        """Create the instance's own broker login when the broker is managed."""
        if not self.broker.managed or role not in broker_policy.ROLE_PUBLISHES:
            return None
        username = broker_policy.username(parts.project_id, role, parts.grant_id,
                                          secrets.randbelow(1 << 30))
        password = secrets.token_urlsafe(24)
        self.broker.add(username, password, role=broker_policy.role_name(parts.project_id, role),
                        topics=broker_policy.publish_topics(parts.project_id, role))
        env.update({MQTT_USERNAME: username, MQTT_PASSWORD: password})
        return username

    def _refuse(self, project_id: str, refusal: grants.Refusal, *, role: str,
                instance: str) -> NoReturn:
        """Record ``refusal`` against the project and raise the matching API error."""
        claim = json.dumps({"project_id": project_id, "role": role, "instance": instance})
        self.store.add_rejected_event(RejectedEvent(
            uuid.uuid4().hex, ENROLL_TOPIC, claim[:4096], refusal.reason, self.clock(),
            project_id or None,
        ))
        log.warning("enrollment refused for %s/%s: %s", project_id, role, refusal.reason)
        if refusal.status == 403:
            raise ForbiddenError(refusal.reason)
        raise UnauthorizedError(refusal.reason)

    # ------------------------------------------------------------------ revocation

    def revoke(self, project_id: str, *, service: str | None = None,
               standalone: bool = False) -> int:
        """Revoke grants of ``project_id``, delete their broker (and MLflow) logins; count them.

        Every grant of the project's own services, plus those of services deployed on their
        own (:meth:`seal_standalone`) with ``standalone``; only ``service``'s when given.
        """
        try:
            project = self.store.get_project(project_id)
        except NotFoundError:
            return 0

        def chosen(grant: Mapping[str, Any]) -> bool:
            if service is not None:
                return bool(grant.get("service") == service)
            return standalone or not grant.get("standalone")

        picked = {k: g for k, g in project.grants.items() if chosen(g)}
        self.tracking.end(project_id, standalone=standalone, service=service)
        usernames = grants.broker_usernames(picked)
        if usernames:
            self.broker.remove(usernames)
        if any(not g.get("revoked") for g in picked.values()):
            mutate_project(self.store, project_id, lambda p: p.replace(grants={
                k: grants.revoked(g) if k in picked else g for k, g in p.grants.items()
            }), now=self.clock())
        return len(usernames)
