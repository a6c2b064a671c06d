from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.wrappers import Response

from flops_manager.adapters.memory_orchestrator import MemoryOrchestrator
from flops_manager.adapters.mongo_store import MongoProjectStore
from flops_manager.app import create_app
from flops_manager.settings import Settings
from tests.fixtures.servers import MosquittoServer, NxServer

TOKENS = {"tok-alice": "alice", "tok-bob": "bob"}
ALICE = {"Authorization": "Bearer tok-alice"}
BOB = {"Authorization": "Bearer tok-bob"}


def json_of(response: Response) -> Any:
    """The response's JSON body; werkzeug types it ``Any | None``, a test expects a body."""
    body = response.json
    assert body is not None, response.get_data(as_text=True)
    return body


@pytest.fixture(scope="session")
def nx_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NxServer]:
    server = NxServer(tmp_path_factory.mktemp("nx")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoServer]:
    server = MosquittoServer(tmp_path_factory.mktemp("mosquitto")).start()
    yield server
    server.stop()


@pytest.fixture()
def mongo_store(nx_server: NxServer) -> Iterator[MongoProjectStore]:
    store = MongoProjectStore(nx_server.url, db_name="t" + uuid.uuid4().hex[:12])
    yield store
    store.close()


@functools.cache
def _registry_key_dir() -> str:
    """One directory for the registry signing key per test process, removed at its exit."""
    path = tempfile.mkdtemp(prefix="flops-registry-key-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def make_settings(**overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "api_tokens": '{"tok-alice": "alice", "tok-bob": "bob"}',
        "store_uri": "memory://",
        "orchestrator_uri": "memory://",
        "mlflow_public_url": "http://mlflow.example:5000",
        "allow_local_repos": True,
        "sse_max_s": 0.5,
        "sse_keepalive_s": 0.1,
        "sse_poll_s": 0.05,
        # the registry signing key is made on first use: never in the real ~/.flops
        "registry_key_dir": _registry_key_dir(),
    }
    base.update(overrides)
    return Settings(**base)


@pytest.fixture()
def orchestrator() -> MemoryOrchestrator:
    return MemoryOrchestrator()


@pytest.fixture()
def app(mongo_store: MongoProjectStore, orchestrator: MemoryOrchestrator) -> Flask:
    return create_app(make_settings(), store=mongo_store, orchestrator=orchestrator)


@pytest.fixture()
def tmp(tmp_path: Path) -> Path:
    return tmp_path
