"""The project record and its phases (pure data, no I/O)."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

SCHEMA_VERSION = 1


class Phase(enum.StrEnum):
    """Where a project is in its life."""

    SUBMITTED = "submitted"
    BUILDING = "building"
    DEPLOYING = "deploying"
    TRAINING = "training"
    POST_TRAINING = "post_training"
    SERVING = "serving"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_PHASES = frozenset({Phase.COMPLETED, Phase.FAILED, Phase.CANCELLED})


@dataclasses.dataclass(frozen=True)
class PendingAction:
    """An action waiting to be run by the reconcile worker, with its progress record."""

    action: dict[str, Any]
    attempts: int = 0
    next_attempt_at: float = 0.0
    last_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the stored form."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> PendingAction:
        """Build from the stored form."""
        return cls(
            action=dict(raw["action"]),
            attempts=int(raw.get("attempts", 0)),
            next_attempt_at=float(raw.get("next_attempt_at", 0.0)),
            last_error=raw.get("last_error"),
        )


@dataclasses.dataclass(frozen=True)
class ServiceWatch:
    """A role whose services the project expects to exist, with its drift record.

    ``missing_since`` is when the reconcile worker first saw the role's services (or some of
    their instances) gone without FLOps removing them (``None``: all present); ``repairs`` how
    many times it recreated them.
    """

    missing_since: float | None = None
    repairs: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return the stored form."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ServiceWatch:
        """Build from the stored form."""
        since = raw.get("missing_since")
        return cls(missing_since=None if since is None else float(since),
                   repairs=int(raw.get("repairs", 0)))


@dataclasses.dataclass(frozen=True)
class Project:
    """A project: desired state (spec, repository) plus observed state and progress.

    ``version`` is the optimistic-concurrency counter; stores bump it on every save.
    ``build`` is what the builder produced (the ``completed`` event's data: environment or
    images, commit); ``endpoints`` are URLs users reach (``inference``); ``secrets`` are
    per-project credentials handed to components (never shown by the API); ``grants`` are the
    enrollment grants of its services (:mod:`flops_manager.identity.grants`, never shown).
    ``services`` holds the roles whose services were created and not yet removed (role value
    -> :class:`ServiceWatch`): the desired state the reconcile worker compares with what the
    orchestrator observes. ``placement`` says which learner runs on which FLOps node when the
    project trains on node data (:mod:`flops_manager.nodes.placement`; empty otherwise).
    """

    id: str
    owner: str
    spec: dict[str, Any]
    repository: dict[str, Any]
    created_at: float
    updated_at: float
    phase: Phase = Phase.SUBMITTED
    phase_since: float = 0.0
    version: int = 0
    components: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    round: int = 0
    total_rounds: int = 0
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    model: dict[str, Any] | None = None
    build: dict[str, Any] | None = None
    clusters: tuple[str, ...] = ()
    placement: tuple[dict[str, Any], ...] = ()
    endpoints: dict[str, str] = dataclasses.field(default_factory=dict)
    secrets: dict[str, str] = dataclasses.field(default_factory=dict)
    grants: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    last_error: str | None = None
    pending: tuple[PendingAction, ...] = ()
    services: dict[str, ServiceWatch] = dataclasses.field(default_factory=dict)
    deleting: bool = False
    schema_version: int = SCHEMA_VERSION

    @property
    def terminal(self) -> bool:
        """Whether the project reached a final phase."""
        return self.phase in TERMINAL_PHASES

    @property
    def needs_work(self) -> bool:
        """Whether the reconcile worker must still look at this project."""
        return not self.terminal or bool(self.pending) or self.deleting

    def replace(self, **changes: Any) -> Project:
        """Return a copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    def to_doc(self) -> dict[str, Any]:
        """Return the stored document (``_id`` is the project id)."""
        return {
            "_id": self.id,
            "owner": self.owner,
            "spec": self.spec,
            "repository": self.repository,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "phase": str(self.phase),
            "phase_since": self.phase_since,
            "version": self.version,
            "components": self.components,
            "round": self.round,
            "total_rounds": self.total_rounds,
            "metrics": self.metrics,
            "model": self.model,
            "build": self.build,
            "clusters": list(self.clusters),
            "placement": list(self.placement),
            "endpoints": self.endpoints,
            "secrets": self.secrets,
            "grants": self.grants,
            "last_error": self.last_error,
            "pending": [p.to_dict() for p in self.pending],
            "services": {role: w.to_dict() for role, w in self.services.items()},
            "deleting": self.deleting,
            "needs_work": self.needs_work,
            "schema_version": self.schema_version,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Project:
        """Build from a stored document."""
        return cls(
            id=str(doc["_id"]),
            owner=str(doc["owner"]),
            spec=dict(doc["spec"]),
            repository=dict(doc["repository"]),
            created_at=float(doc["created_at"]),
            updated_at=float(doc["updated_at"]),
            phase=Phase(doc["phase"]),
            phase_since=float(doc.get("phase_since", 0.0)),
            version=int(doc.get("version", 0)),
            components=dict(doc.get("components") or {}),
            round=int(doc.get("round", 0)),
            total_rounds=int(doc.get("total_rounds", 0)),
            metrics=dict(doc.get("metrics") or {}),
            model=doc.get("model"),
            build=doc.get("build"),
            clusters=tuple(doc.get("clusters") or ()),
            placement=tuple(doc.get("placement") or ()),
            endpoints=dict(doc.get("endpoints") or {}),
            secrets=dict(doc.get("secrets") or {}),
            grants=dict(doc.get("grants") or {}),
            last_error=doc.get("last_error"),
            pending=tuple(PendingAction.from_dict(p) for p in doc.get("pending") or []),
            services={str(role): ServiceWatch.from_dict(w)
                      for role, w in (doc.get("services") or {}).items()},
            deleting=bool(doc.get("deleting", False)),
            schema_version=int(doc.get("schema_version", SCHEMA_VERSION)),
        )
