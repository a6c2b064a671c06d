from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings

from flops_manager.adapters.memory_orchestrator import MemoryOrchestrator
from flops_manager.adapters.memory_store import MemoryProjectStore
from flops_manager.app import create_app
from tests.manager.conftest import make_settings

APP = create_app(make_settings(sse_max_s=0.05), store=MemoryProjectStore(),
                 orchestrator=MemoryOrchestrator())
schema = schemathesis.openapi.from_wsgi("/openapi.json", APP)


@schema.parametrize()
@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case: schemathesis.Case) -> None:
    response = case.call(headers={"Authorization": "Bearer tok-alice"})
    assert response.status_code < 500, (case.method, case.path, response.text[:500])
