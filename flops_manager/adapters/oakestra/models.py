"""Pure parsing of root-orchestrator answers into typed records.

The system manager answers several endpoints with double-encoded JSON (a JSON string holding
JSON), renders ids as ``{"$oid": ...}`` or plain strings, and changed instance field names
between versions (``cpu``/``memory`` on v0.4.400, ``cpu_percent``/``memory_percent`` later).
Everything here accepts every form.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any


class MalformedAnswerError(ValueError):
    """The body does not have the documented shape."""


def decode(text: str) -> Any:
    """Decode a response body, decoding a second time when the first pass gives a string.

    Raises
    ------
    MalformedAnswerError
        If ``text`` (or the inner string) is not JSON.
    """
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise MalformedAnswerError(f"body is not JSON: {exc}") from None
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] in ("[", "{", '"') or stripped == "null":
            try:
                return json.loads(stripped)
            except ValueError as exc:
                raise MalformedAnswerError(f"inner body is not JSON: {exc}") from None
    return value


def object_id(raw: object) -> str:
    """Return an id given as ``"<hex>"`` or ``{"$oid": "<hex>"}`` (``""`` if absent)."""
    if isinstance(raw, str):
        return raw
    if isinstance(raw, Mapping):
        oid = raw.get("$oid")
        if isinstance(oid, str):
            return oid
    return ""


def _str(raw: Mapping[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = raw.get(key)
        if value is not None:
            return str(value)
    return None


def _float(raw: Mapping[str, Any], *keys: str) -> float | None:
    for key in keys:
        value = raw.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def _mapping(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise MalformedAnswerError(f"{what} is not an object: {str(value)[:100]}")
    return value


def _list(value: object, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise MalformedAnswerError(f"{what} is not a list: {str(value)[:100]}")
    return value


@dataclasses.dataclass(frozen=True)
class Application:
    """An Oakestra application."""

    app_id: str
    name: str
    namespace: str
    services: tuple[str, ...]
    user_id: str | None = None


def parse_application(raw: object) -> Application:
    """Parse one application document."""
    doc = _mapping(raw, "application")
    app_id = _str(doc, "applicationID") or object_id(doc.get("_id"))
    if not app_id:
        raise MalformedAnswerError("application without id")
    services = doc.get("microservices") or []
    return Application(
        app_id=app_id,
        name=_str(doc, "application_name") or "",
        namespace=_str(doc, "application_namespace") or "",
        services=tuple(str(s) for s in _list(services, "microservices")),
        user_id=_str(doc, "userId"),
    )


def parse_applications(raw: object) -> list[Application]:
    """Parse a list of application documents."""
    return [parse_application(item) for item in _list(raw, "applications")]


@dataclasses.dataclass(frozen=True)
class Instance:
    """One instance of a service."""

    number: int
    status: str | None
    status_detail: str | None = None
    cluster_id: str | None = None
    public_ip: str | None = None
    host_port: int | None = None
    cpu_percent: float | None = None
    memory_percent: float | None = None
    logs: str | None = None


def parse_instance(raw: object) -> Instance:
    """Parse one ``instance_list`` entry (either version's field names)."""
    doc = _mapping(raw, "instance")
    number = doc.get("instance_number")
    if isinstance(number, bool) or not isinstance(number, int):
        raise MalformedAnswerError(f"instance without instance_number: {str(doc)[:100]}")
    port = doc.get("host_port")
    return Instance(
        number=number,
        status=_str(doc, "status"),
        status_detail=_str(doc, "status_detail"),
        cluster_id=_str(doc, "cluster_id"),
        public_ip=_str(doc, "publicip", "host_ip") or None,
        host_port=port if isinstance(port, int) and not isinstance(port, bool) else None,
        cpu_percent=_float(doc, "cpu_percent", "cpu"),
        memory_percent=_float(doc, "memory_percent", "memory"),
        logs=_str(doc, "logs"),
    )


def _environment(raw: object) -> dict[str, str]:
    env: dict[str, str] = {}
    if isinstance(raw, list):
        for entry in raw:
            if isinstance(entry, str) and "=" in entry:
                key, value = entry.split("=", 1)
                env[key] = value
    return env


@dataclasses.dataclass(frozen=True)
class Service:
    """An Oakestra service ("job") document."""

    service_id: str
    name: str
    namespace: str
    app_id: str
    image: str
    status: str | None
    status_detail: str | None
    instances: tuple[Instance, ...]
    rr_ip: str | None
    port: str | None
    one_shot: bool
    environment: Mapping[str, str]
    command: tuple[str, ...] = ()

    def belongs_to(self, app_id: str) -> bool:
        """Whether this service is one of application ``app_id``'s."""
        return self.app_id == app_id


def parse_service(raw: object) -> Service:
    """Parse one service document."""
    doc = _mapping(raw, "service")
    service_id = _str(doc, "microserviceID") or object_id(doc.get("_id"))
    if not service_id:
        raise MalformedAnswerError("service without id")
    addresses = doc.get("addresses")
    rr_ip = _str(doc, "RR_ip")
    if rr_ip is None and isinstance(addresses, Mapping):
        rr_ip = _str(addresses, "rr_ip")
    cmd = doc.get("cmd")
    return Service(
        service_id=service_id,
        name=_str(doc, "microservice_name", "service_name") or "",
        namespace=_str(doc, "microservice_namespace", "service_ns") or "",
        app_id=_str(doc, "applicationID") or "",
        image=_str(doc, "code", "image") or "",
        status=_str(doc, "status"),
        status_detail=_str(doc, "status_detail"),
        instances=tuple(parse_instance(i) for i in _list(doc.get("instance_list") or [],
                                                         "instance_list")),
        rr_ip=rr_ip,
        port=_str(doc, "port"),
        one_shot=bool(doc.get("one_shot", False)),
        environment=_environment(doc.get("environment")),
        command=tuple(str(c) for c in cmd) if isinstance(cmd, list) else (),
    )


def parse_services(raw: object) -> list[Service]:
    """Parse a list of service documents."""
    return [parse_service(item) for item in _list(raw, "services")]


def services_of(services: list[Service], app_id: str) -> list[Service]:
    """The services of application ``app_id`` among ``services``.

    v0.4.400's listing of one application holds every application's services.
    """
    return [service for service in services if service.belongs_to(app_id)]


@dataclasses.dataclass(frozen=True)
class AppendResult:
    """Answer of ``POST /api/service/``."""

    job_id: str
    deployed: tuple[str, ...]
    failed: tuple[tuple[str, str], ...]
    """``(service_name, message)`` of services Oakestra dropped again."""


def parse_append_result(raw: object) -> AppendResult:
    """Parse ``{"job_id", "deployed_services", "failed_services"}``."""
    doc = _mapping(raw, "service creation answer")
    deployed = tuple(
        str(_mapping(item, "deployed service").get("service_name", ""))
        for item in _list(doc.get("deployed_services") or [], "deployed_services")
    )
    failed = []
    for item in _list(doc.get("failed_services") or [], "failed_services"):
        entry = _mapping(item, "failed service")
        message = entry.get("message") or f"status {entry.get('status')}"
        failed.append((str(entry.get("service_name", "")), str(message)))
    return AppendResult(job_id=str(doc.get("job_id") or ""), deployed=deployed,
                        failed=tuple(failed))


@dataclasses.dataclass(frozen=True)
class ClusterInfo:
    """A registered cluster."""

    cluster_id: str
    name: str
    active: bool
    location: str | None = None


def parse_cluster(raw: object, *, default_active: bool) -> ClusterInfo:
    """Parse a cluster entry (``cluster_name`` in every version, ``candidate_name`` later).

    ``default_active`` applies when the entry has no ``active`` flag (clusters that have not
    reported yet lack it).
    """
    doc = _mapping(raw, "cluster")
    cluster_id = object_id(doc.get("_id"))
    name = _str(doc, "cluster_name", "candidate_name")
    if not cluster_id or not name:
        raise MalformedAnswerError(f"cluster without id or name: {str(doc)[:100]}")
    active = doc.get("active")
    return ClusterInfo(
        cluster_id=cluster_id,
        name=name,
        active=default_active if active is None else bool(active),
        location=_str(doc, "cluster_location", "candidate_location"),
    )


def parse_clusters(raw: object, *, default_active: bool) -> list[ClusterInfo]:
    """Parse a cluster list."""
    return [parse_cluster(item, default_active=default_active)
            for item in _list(raw, "clusters")]


@dataclasses.dataclass(frozen=True)
class Tokens:
    """Tokens of a login."""

    access: str
    refresh: str | None


def parse_tokens(raw: object) -> Tokens:
    """Parse ``{"token", "refresh_token"?}``."""
    doc = _mapping(raw, "login answer")
    token = doc.get("token")
    if not isinstance(token, str) or not token:
        raise MalformedAnswerError("login answer without token")
    refresh = doc.get("refresh_token")
    return Tokens(access=token, refresh=refresh if isinstance(refresh, str) else None)


@dataclasses.dataclass(frozen=True)
class ErrorBody:
    """One of the three error shapes.

    ``kind`` is ``"smorest"`` (``{"code", "status"}``), ``"jwt"`` (``{"msg"}``), ``"message"``
    (``{"message"}``) or ``"other"``.
    """

    kind: str
    text: str


def parse_error(text: str) -> ErrorBody:
    """Classify an error body."""
    try:
        doc = json.loads(text)
    except ValueError:
        return ErrorBody("other", text.strip()[:300])
    if isinstance(doc, Mapping):
        if "msg" in doc:
            return ErrorBody("jwt", str(doc["msg"]))
        if "message" in doc:
            return ErrorBody("message", str(doc["message"]))
        if "code" in doc and "status" in doc:
            return ErrorBody("smorest", f"{doc['code']} {doc['status']}")
    return ErrorBody("other", text.strip()[:300])
