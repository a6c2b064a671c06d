from __future__ import annotations

import pytest

from flops_manager.adapters.oakestra import status
from flops_manager.adapters.oakestra.models import Instance, Service
from flops_manager.ports.orchestrator import Orchestrator, ServiceState
from flops_manager.registry import Registry
from flops_manager.settings import Settings

P, R, S, F = ServiceState.PENDING, ServiceState.RUNNING, ServiceState.STOPPED, ServiceState.FAILED
TABLE = {
    None: P, "REQUESTED": P, "CLUSTER_SCHEDULED": P, "NODE_SCHEDULED": P, "CREATING": P,
    "CREATED": P, "0": P, "1": P, "RUNNING": R, "COMPLETED": S, "DEAD": S, "UNDEPLOYED": S,
    "FAILED": F, "TargetClusterNotFound": F, "TargetClusterNotActive": F,
    "TargetClusterNoCapacity": F, "NoActiveClusterWithCapacity": F, "NO_WORKER_CAPACITY": F,
    "NO_QUALIFIED_WORKER_FOUND": F, "NO_NODE_FOUND": F,
}


@pytest.mark.parametrize(("value", "expected"), TABLE.items())
def test_instance_state_table(value, expected):
    assert status.instance_state(value) is expected


def service(service_status, *instances, detail=None):
    return Service("id", "n", "ns", "app", "img", service_status, detail,
                   tuple(Instance(i, s, status_detail="d", logs="out") for i, s in
                         enumerate(instances)), "10.30.200.1", None, False, {})


@pytest.mark.parametrize(("doc", "wanted", "expected", "running"), [
    (service(None), 0, S, 0),
    (service(None), 1, P, 0),
    (service("REQUESTED"), 2, P, 0),
    (service("CLUSTER_SCHEDULED", "CLUSTER_SCHEDULED"), 1, P, 0),
    (service("RUNNING", "RUNNING"), 2, P, 1),
    (service("RUNNING", "RUNNING", "RUNNING"), 2, R, 2),
    (service("RUNNING", "RUNNING", "COMPLETED"), 2, R, 1),
    (service("COMPLETED", "COMPLETED", "DEAD"), 2, S, 0),
    (service("FAILED", "RUNNING", "FAILED"), 2, F, 1),
    (service("NoActiveClusterWithCapacity", "RUNNING"), 2, F, 1),
    (service("TargetClusterNotFound", detail="no such cluster"), 1, F, 0),
])
def test_service_state(doc, wanted, expected, running):
    state, count, message = status.service_state(doc, wanted=wanted)
    assert (state, count) == (expected, running)
    if state is F:
        assert message and ("FAILED" in message or "scheduling failed" in message)


def test_builder_registers_for_both_schemes(monkeypatch):
    from flops_manager.adapters.oakestra import build_oakestra_orchestrator

    monkeypatch.setenv("FLOPS_OAKESTRA_USERNAME", "u")
    monkeypatch.setenv("FLOPS_OAKESTRA_PASSWORD", "p")
    registry: Registry[Orchestrator] = Registry("orchestrator", "FLOPS_ORCHESTRATOR_URI")
    registry.register("oakestra", build_oakestra_orchestrator)
    registry.register("oakestra+https", build_oakestra_orchestrator)
    for uri in ("oakestra://root:10000", "oakestra+https://root:10000"):
        built = registry.build(uri, Settings())
        assert isinstance(built, Orchestrator)
        built.close()
