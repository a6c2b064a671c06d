"""Pure mapping of Oakestra status values to FLOps ``ServiceState``.

Per instance (``instance_list[i].status``; the service-level ``status`` is only "whatever was
written last" and is used when no instance exists yet):

====================================================================  ==============
Oakestra status                                                       ServiceState
====================================================================  ==============
(none yet), ``REQUESTED``, ``CLUSTER_SCHEDULED``, ``NODE_SCHEDULED``,  PENDING
``CREATING``, ``CREATED``, legacy ``"0"``/``"1"``, unknown values
``RUNNING``                                                           RUNNING
``COMPLETED`` (one-shot exited 0), ``DEAD`` (service exited 0),        STOPPED
``UNDEPLOYED``
``FAILED`` (non-zero exit)                                            FAILED
``TargetClusterNotFound``, ``TargetClusterNotActive``,                FAILED
``TargetClusterNoCapacity``, ``NoActiveClusterWithCapacity``,
``NO_WORKER_CAPACITY``, ``NO_QUALIFIED_WORKER_FOUND``,
``NO_NODE_FOUND`` (scheduling failed; Oakestra does not retry)
====================================================================  ==============

The service state: FAILED if any instance (or, for a negative scheduling status, the service)
failed; otherwise PENDING while fewer instances than wanted exist or any is pending; otherwise
RUNNING if any instance runs; otherwise STOPPED (all finished). A service with no instance
wanted and none left is STOPPED.
"""

from __future__ import annotations

from collections.abc import Sequence

from flops_manager.adapters.oakestra.models import Instance, Service
from flops_manager.ports.orchestrator import ServiceState

PENDING_STATUSES = frozenset(
    {"REQUESTED", "CLUSTER_SCHEDULED", "NODE_SCHEDULED", "CREATING", "CREATED", "0", "1"}
)
RUNNING_STATUSES = frozenset({"RUNNING"})
FINISHED_STATUSES = frozenset({"COMPLETED", "DEAD", "UNDEPLOYED"})
FAILED_STATUSES = frozenset({"FAILED"})
SCHEDULING_FAILURES = frozenset(
    {
        "TargetClusterNotFound",
        "TargetClusterNotActive",
        "TargetClusterNoCapacity",
        "NoActiveClusterWithCapacity",
        "NO_WORKER_CAPACITY",
        "NO_QUALIFIED_WORKER_FOUND",
        "NO_NODE_FOUND",
    }
)


def instance_state(status: str | None) -> ServiceState:
    """Map one instance status (see the module table)."""
    if status in RUNNING_STATUSES:
        return ServiceState.RUNNING
    if status in FINISHED_STATUSES:
        return ServiceState.STOPPED
    if status in FAILED_STATUSES or status in SCHEDULING_FAILURES:
        return ServiceState.FAILED
    return ServiceState.PENDING


def _failure_message(service: Service, failed: Sequence[Instance]) -> str:
    if failed:
        first = failed[0]
        detail = first.status_detail or ""
        logs = (first.logs or "").strip()[-500:]
        message = f"instance {first.number} is {first.status}"
        if detail:
            message += f": {detail}"
        if logs and logs not in detail:
            message += f"; last output: {logs}"
        return message
    detail = f": {service.status_detail}" if service.status_detail else ""
    return f"scheduling failed with {service.status}{detail}"


def service_state(service: Service, *, wanted: int) -> tuple[ServiceState, int, str | None]:
    """Return ``(state, running instances, message)`` of ``service`` with ``wanted`` instances.

    ``message`` explains a failure (status detail and last output of the first failed instance).
    """
    states = [instance_state(i.status) for i in service.instances]
    running = sum(s is ServiceState.RUNNING for s in states)
    failed = [i for i, s in zip(service.instances, states, strict=True)
              if s is ServiceState.FAILED]
    if failed or service.status in SCHEDULING_FAILURES:
        return ServiceState.FAILED, running, _failure_message(service, failed)
    if len(states) < wanted or any(s is ServiceState.PENDING for s in states):
        return ServiceState.PENDING, running, service.status_detail
    if running:
        return ServiceState.RUNNING, running, None
    return ServiceState.STOPPED, 0, None
