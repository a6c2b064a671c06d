"""RootOrchestratorClient against the contract server: tokens, retries, timeouts, errors."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest

from flops_manager.adapters.oakestra import sla
from flops_manager.adapters.oakestra.client import RootOrchestratorClient, token_expiry
from flops_manager.adapters.oakestra.errors import (
    OakestraAuthError,
    OakestraPermanentError,
    OakestraTemporaryError,
)
from flops_manager.adapters.oakestra.settings import OakestraSettings
from flops_manager.adapters.oakestra.versions import OakestraVersion
from flops_manager.ports.errors import PermanentError, TemporaryError
from tests.fixtures.servers import free_port
from tests.oakestra.conftest import make_settings


def app_sla(key: str = "proj1") -> dict[str, Any]:
    options = sla.SlaOptions(version=OakestraVersion.V0_4_411)
    return sla.application_sla(sla.application_ref(key, options))


def test_login_is_lazy_and_reused(server):
    client = RootOrchestratorClient(make_settings(server))
    assert server.state.requests == []
    client.create_application(app_sla())
    client.list_applications()
    assert server.state.logins == 1
    login = next(r for r in server.state.requests if r.path == "/api/auth/login")
    assert login.authorization is None
    others = [r for r in server.state.requests if r.path != "/api/auth/login"]
    assert all(r.authorization.startswith("Bearer ") for r in others)


def test_token_is_refreshed_before_expiry(start_server):
    server = start_server(access_lifetime_s=3.0)
    client = RootOrchestratorClient(make_settings(server, token_refresh_margin_s=2.5))
    client.list_applications()
    time.sleep(0.6)
    client.list_applications()
    assert server.state.refreshes == 1 and server.state.logins == 1


def test_refused_refresh_falls_back_to_login(start_server):
    server = start_server(access_lifetime_s=3.0)
    client = RootOrchestratorClient(make_settings(server, token_refresh_margin_s=2.5))
    client.list_applications()
    server.state.tokens.clear()  # a restarted v0.4.400 forgets every token
    time.sleep(0.6)
    client.list_applications()
    assert server.state.logins == 2


def test_bad_credentials_are_permanent(server):
    client = RootOrchestratorClient(make_settings(server, password="wrong"))
    with pytest.raises(OakestraAuthError, match="refused the credentials") as info:
        client.list_applications()
    assert isinstance(info.value, PermanentError)
    assert info.value.status == 401 and info.value.method == "POST"
    assert "wrong" not in str(info.value)


def test_exhausted_retries_give_a_temporary_error(server):
    server.state.inject_failure(503, times=10)
    client = RootOrchestratorClient(make_settings(server, retries=2))
    with pytest.raises(OakestraTemporaryError) as info:
        client.list_clusters()
    assert isinstance(info.value, TemporaryError)
    assert info.value.status == 503 and info.value.url.endswith("/api/clusters/active")
    assert "503 Service Unavailable" in info.value.body
    assert len(server.state.requests) == 3


def test_500_is_retried_for_reads_only(server):
    client = RootOrchestratorClient(make_settings(server, retries=2))
    client.list_applications()
    server.state.inject_failure(500, times=2, path_prefix="/api/applications/")
    assert client.list_applications() == []
    assert [r.path for r in server.state.requests].count("/api/applications/") == 4
    server.state.inject_failure(500, times=1, path_prefix="/api/application/", method="POST")
    with pytest.raises(OakestraTemporaryError) as info:
        client.create_application(app_sla())
    assert info.value.status == 500
    assert server.state.apps == {}


def test_connection_refused_is_retried_then_temporary():
    settings = OakestraSettings(base_url=f"http://127.0.0.1:{free_port()}", username="Admin",
                                password="Admin", retries=2, backoff_s=0.01)
    slept: list[float] = []
    client = RootOrchestratorClient(settings, sleep=slept.append)
    with pytest.raises(OakestraTemporaryError, match="connection failed") as info:
        client.list_applications()
    assert info.value.status is None and info.value.method == "POST"  # the login
    assert slept == [0.01, 0.02]


@pytest.fixture
def silent_port():
    """A port that accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept():
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(sock.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield sock.getsockname()[1]
    stop.set()
    thread.join(2)
    for conn in accepted:
        conn.close()
    sock.close()


def test_read_timeouts(silent_port):
    settings = OakestraSettings(base_url=f"http://127.0.0.1:{silent_port}", username="Admin",
                                password="Admin", retries=1, read_timeout_s=0.2,
                                backoff_s=0.0)
    client = RootOrchestratorClient(settings)
    started = time.monotonic()
    with pytest.raises(OakestraTemporaryError, match="timed out") as info:
        client.list_clusters()  # GET: retried once
    assert info.value.method == "GET"
    with pytest.raises(OakestraTemporaryError, match="timed out"):
        client.login()  # POST: not repeated after a read timeout
    assert time.monotonic() - started < 5


def test_non_admin_reads_its_applications_by_user_id(server):
    server.state.add_user("alice", "pw", ["Application_Provider"])
    client = RootOrchestratorClient(make_settings(server, username="alice", password="pw"))
    admin = RootOrchestratorClient(make_settings(server))
    admin.create_application(app_sla("adminproj"))
    client.create_application(app_sla("aliceproj"))
    apps = client.list_applications()
    assert [a.user_id for a in apps] == ["alice"]
    assert any(r.path.startswith("/api/user/alice") for r in server.state.requests)


def test_typed_errors_for_rejections(server):
    client = RootOrchestratorClient(make_settings(server))
    client.create_application(app_sla())
    with pytest.raises(OakestraPermanentError, match="409"):
        client.create_application(app_sla())
    bad = app_sla()
    bad["applications"][0]["application_name"] = "bad-name"
    with pytest.raises(OakestraPermanentError, match="422"):
        client.create_application(bad)
    with pytest.raises(OakestraPermanentError, match="400") as info:
        client.append_services(app_sla())
    assert info.value.body == '{"code":400,"status":"Bad Request"}'
    assert client.get_service("0123456789abcdef01234567") is None
    assert client.delete_service("0123456789abcdef01234567") is False
    assert client.delete_application("0123456789abcdef01234567") is False
    assert client.list_services("0123456789abcdef01234567") is None


def test_token_expiry_reads_exp():
    assert token_expiry("not-a-jwt") is None
    assert token_expiry("eyJhbGciOiJSUzI1...<jwt truncated>") is None
    assert token_expiry("a.eyJleHAiOiAxMjN9.c") == 123.0
