"""A real browser (headless chromium) renders ``/docs`` offline: only loopback is reachable.

The assertions are on the DOM Swagger UI builds in the browser (operation blocks with their
paths), which the HTML the manager sends does not contain.
"""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from flops_manager.adapters.memory_orchestrator import MemoryOrchestrator
from flops_manager.adapters.memory_store import MemoryProjectStore
from flops_manager.app import create_app
from tests.fixtures.browser import rendered_dom
from tests.manager.conftest import make_settings

pytestmark = pytest.mark.integration


@pytest.fixture
def manager_url() -> Iterator[str]:
    app = create_app(make_settings(), store=MemoryProjectStore(),
                     orchestrator=MemoryOrchestrator())
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_docs_render_the_operations_offline(manager_url: str, tmp_path: Path) -> None:
    with urllib.request.urlopen(f"{manager_url}/docs") as response:
        source = response.read().decode()
    assert "opblock" not in source  # what follows is rendered by Swagger UI in the browser
    dom = rendered_dom(f"{manager_url}/docs", tmp_path / "profile")
    assert 'class="swagger-ui' in dom
    assert "FLOps manager" in dom
    for path in ("/api/v1/projects", "/api/v1/projects/{project_id}/logs", "/health"):
        assert f'data-path="{path}"' in dom, path
    assert dom.count('class="opblock opblock-') >= 10  # one block per operation


def test_the_browser_is_really_offline(tmp_path: Path) -> None:
    """The same browser flags cannot load Swagger UI from its CDN (the former default)."""
    dom = rendered_dom("https://cdn.jsdelivr.net/npm/swagger-ui-dist/swagger-ui-bundle.js",
                       tmp_path / "profile")
    assert "SwaggerUIBundle" not in dom
