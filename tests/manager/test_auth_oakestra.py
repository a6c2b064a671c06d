from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator

import pytest
from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.serving import make_server

from flops_manager.adapters.memory_orchestrator import MemoryOrchestrator
from flops_manager.adapters.memory_store import MemoryProjectStore
from flops_manager.app import create_app
from tests.fixtures.servers import free_port
from tests.manager.conftest import json_of, make_settings


def jwt(sub: str) -> str:
    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256'})}.{part({'sub': sub, 'type': 'access'})}.sig"


VALID = {jwt("alice"): "alice", jwt("bob"): "bob"}
CALLS: list[str] = []


@pytest.fixture(scope="module")
def oakestra() -> Iterator[str]:
    stub = Flask("oakestra-stub")

    @stub.get("/api/permission/<username>")
    def permission(username: str) -> ResponseReturnValue:
        CALLS.append(username)
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return jsonify({"message": "Missing authentication token"}), 401
        if VALID.get(header.removeprefix("Bearer ")) != username:
            return jsonify({"message": "Missing authentication token"}), 401
        return jsonify({"roles": ["Application_Provider"]})

    port = free_port()
    server = make_server("127.0.0.1", port, stub, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()


def test_oakestra_tokens(oakestra: str) -> None:
    app = create_app(make_settings(auth_mode="oakestra", oakestra_url=oakestra),
                     store=MemoryProjectStore(), orchestrator=MemoryOrchestrator())
    client = app.test_client()
    alice = {"Authorization": f"Bearer {jwt('alice')}"}
    body = {"spec": {}, "repository": {"url": "https://h/u/r"}}
    pid = json_of(client.post("/api/v1/projects", json=body, headers=alice))["id"]
    calls = len(CALLS)
    assert client.get(f"/api/v1/projects/{pid}", headers=alice).status_code == 200
    assert len(CALLS) == calls  # cached
    bob = {"Authorization": f"Bearer {jwt('bob')}"}
    assert client.get(f"/api/v1/projects/{pid}", headers=bob).status_code == 404
    forged = {"Authorization": f"Bearer {jwt('mallory')}"}
    assert client.get("/api/v1/projects", headers=forged).status_code == 401
    assert client.get("/api/v1/projects", headers={"Authorization": "Bearer notajwt"}
                      ).status_code == 401


def test_oakestra_unreachable_is_503() -> None:
    app = create_app(make_settings(auth_mode="oakestra",
                                   oakestra_url=f"http://127.0.0.1:{free_port()}"),
                     store=MemoryProjectStore(), orchestrator=MemoryOrchestrator())
    r = app.test_client().get("/api/v1/projects", headers={"Authorization": f"Bearer {jwt('x')}"})
    assert r.status_code == 503 and json_of(r)["code"] == 503
