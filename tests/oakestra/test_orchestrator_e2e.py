"""OakestraOrchestrator end to end against the contract server (instances are real processes)."""

from __future__ import annotations

import functools
import socket
import sys
from pathlib import Path

import pytest

from flops_manager.adapters.oakestra import addresses, sla
from flops_manager.adapters.oakestra.client import RootOrchestratorClient
from flops_manager.adapters.oakestra.errors import InvalidSpecError
from flops_manager.adapters.oakestra.orchestrator import OakestraOrchestrator
from flops_manager.ports.errors import NotFoundError, PermanentError
from flops_manager.ports.orchestrator import BuildTarget, ServiceSpec, ServiceState
from tests.fixtures.servers import free_port, wait_for
from tests.oakestra.conftest import loopback_rr_subnet, make_settings

POOL = addresses.AddressPool()  # the default round-robin pool

LISTENER = (
    "import os, socket, time\n"
    "host, port = os.environ['FLOPS_LISTEN'].rsplit(':', 1)\n"
    "s = socket.socket()\n"
    "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind((host, int(port)))\n"
    "s.listen()\n"
    "print('listening', flush=True)\n"
    "time.sleep(600)\n"
)
SLEEPER = ("python", "-c", "import time; time.sleep(600)")
SECRET = "p4ssw0rd-never-in-an-sla"


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def accepts(host: str, port: int) -> bool:
    """Connect to ``host:port`` (raising when nothing listens there) and hang up."""
    socket.create_connection((host, port), timeout=1).close()
    return True


def spec(name: str, **kw) -> ServiceSpec:
    kw.setdefault("image", "registry.example/flops/test:1")
    kw.setdefault("command", SLEEPER)
    kw.setdefault("role", "aggregator")
    return ServiceSpec(name=name, project_id="proj1", owner="Admin", **kw)


def wait_state(orch, name, state, *, running=None, timeout=15.0):
    def check():
        status = orch.service_status(name)
        ok = status is not None and status.state is state
        return status if ok and (running is None or status.running == running) else None
    return wait_for(check, timeout=timeout, what=f"{name} {state}")


def requests_to(server, method, path):
    return [r for r in server.state.requests if r.method == method and r.path == path]


@pytest.mark.parametrize("options", [
    {"version": "v0.4.411"},
    {"version": "v0.4.400"},
    {"version": "v0.4.411", "fixed_encoding": True},
], ids=["develop", "v0.4.400", "fixed-encoding"])
def test_listener_service_runs_and_is_idempotent(start_server, options):
    server = start_server(**options)
    server.state.add_cluster("clusterA")
    settings = make_settings(server)
    orch = OakestraOrchestrator(RootOrchestratorClient(settings), settings)
    assert orch.build_target is BuildTarget.IMAGE
    port = free_port()
    service = spec("proj1-aggregator", command=("python", "-c", LISTENER), ports=(port,),
                   listen_env="FLOPS_LISTEN")
    first = orch.create_service(service)
    assert first.name == "proj1-aggregator" and first.instances == 1
    status = wait_state(orch, "proj1-aggregator", ServiceState.RUNNING, running=1)
    assert status.role == "aggregator"
    host, _, main_port = status.address.partition(":")
    assert POOL.contains(host) and main_port == str(port)
    assert orch.service_address("proj1-aggregator") == status.address
    wait_for(functools.partial(accepts, "127.0.0.1", port), what="listener")
    again = orch.create_service(service)
    assert again.state is ServiceState.RUNNING
    assert len(requests_to(server, "POST", "/api/application/")) == 1
    assert len(requests_to(server, "POST", "/api/service/")) == 1
    assert "listening" in "".join(orch.service_logs("proj1-aggregator").values())
    assert orch.public_url("proj1-aggregator") is None  # not public
    assert orch.remove_service("proj1-aggregator") is True
    orch.close()


def test_instances_run_and_remove_stops_processes(server, orchestrator):
    orchestrator.create_service(spec("proj1-learners", role="learners", instances=3))
    status = wait_state(orchestrator, "proj1-learners", ServiceState.RUNNING, running=3)
    assert status.instances == 3
    job = next(iter(server.state.jobs))
    pids = server.state.instance_pids(job)
    assert len(pids) == 3 and all(alive(p) for p in pids)


    assert orchestrator.remove_service("proj1-learners") is True
    assert not any(alive(p) for p in pids)
    assert orchestrator.service_status("proj1-learners") is None
    assert orchestrator.remove_service("proj1-learners") is False
    assert server.state.apps == {}  # the empty application was deleted too
    with pytest.raises(NotFoundError):
        orchestrator.service_logs("proj1-learners")


def test_crashing_command_is_failed_with_message(orchestrator):
    crash = ("python", "-c", "import sys; print('boom: bad config', flush=True); sys.exit(3)")
    orchestrator.create_service(spec("proj1-builder", role="builder", command=crash,
                                     one_shot=True))
    status = wait_state(orchestrator, "proj1-builder", ServiceState.FAILED)
    assert "boom: bad config" in status.message
    assert "FAILED" in status.message


def test_one_shot_success_is_stopped(orchestrator):
    done = ("python", "-c", "print('done')")
    orchestrator.create_service(spec("proj1-builder", role="builder", command=done,
                                     one_shot=True))
    status = wait_state(orchestrator, "proj1-builder", ServiceState.STOPPED)
    assert status.running == 0


def test_relogin_on_401_mid_session(server, orchestrator):
    orchestrator.create_service(spec("proj1-aggregator"))
    assert server.state.logins == 1
    server.state.expire_tokens()
    status = orchestrator.service_status("proj1-aggregator")
    assert status is not None
    assert server.state.logins == 2
    assert orchestrator.service_status("proj1-aggregator") is not None
    assert server.state.logins == 2


def test_transient_503_are_retried(server, orchestrator):
    orchestrator.create_service(spec("proj1-aggregator"))
    server.state.inject_failure(503, times=2)
    assert orchestrator.service_status("proj1-aggregator") is not None
    server.state.inject_failure(503, times=2, path_prefix="/api/clusters/")
    assert [c.name for c in orchestrator.list_clusters()] == ["clusterA"]
    server.state.inject_failure(502, times=1, path_prefix="/api/service/", method="POST")
    orchestrator.create_service(spec("proj1-learners", role="learners"))
    assert len(requests_to(server, "POST", "/api/service/")) == 3  # 2 + 1 retried


def test_list_clusters_only_active(server, orchestrator):
    server.state.add_cluster("clusterB", active=False)
    server.state.add_cluster("clusterC")
    assert sorted(c.name for c in orchestrator.list_clusters()) == ["clusterA", "clusterC"]
    assert all(c.active and len(c.id) == 24 for c in orchestrator.list_clusters())


def test_env_image_is_refused_before_any_request(server, orchestrator):
    with pytest.raises(PermanentError, match="container builder"):
        orchestrator.create_service(spec("proj1-aggregator", image="env:///tmp/venv"))
    assert server.state.requests == []


def test_unknown_cluster_fails_scheduling(orchestrator):
    orchestrator.create_service(spec("proj1-learners", role="learners", cluster="nowhere"))
    status = wait_state(orchestrator, "proj1-learners", ServiceState.FAILED)
    assert "TargetClusterNotFound" in status.message


def test_pinned_cluster_and_public_url(server, orchestrator):
    server.state.add_cluster("clusterB")
    port = free_port()
    orchestrator.create_service(spec("proj1-inference-server", role="inference_server",
                                     command=("python", "-c", LISTENER), ports=(port,),
                                     listen_env="FLOPS_LISTEN", public=True,
                                     cluster="clusterB"))
    wait_state(orchestrator, "proj1-inference-server", ServiceState.RUNNING, running=1)
    assert orchestrator.public_url("proj1-inference-server") == f"http://127.0.0.1:{port}"
    (job,) = server.state.jobs.values()
    cluster_b = next(c for c in server.state.clusters if c["name"] == "clusterB")
    assert job["instance_list"][0]["cluster_id"] == cluster_b["_id"]


def test_address_collision_is_retried_with_the_next_address(server, orchestrator):
    # another application already holds the address the service would get first
    client = orchestrator._client
    options = sla.SlaOptions(version=server.state.version)
    other = sla.application_ref("otherproj", options)
    app_id = client.create_application(sla.application_sla(other))[0].app_id
    first = POOL.allocate(app="proj1", service="proj1-aggregator", taken=[])
    squatter = ServiceSpec(name="otherproj-x", role="x", image="r/x:1", command=SLEEPER,
                           project_id="otherproj")
    client.append_services(sla.service_sla(
        squatter, app=sla.ApplicationRef(other.key, other.name, other.namespace, app_id),
        rr_ip=first, options=options))
    orchestrator.create_service(spec("proj1-aggregator", ports=(8080,)))
    status = wait_state(orchestrator, "proj1-aggregator", ServiceState.RUNNING)
    assert not status.address.startswith(first + ":")
    assert len(requests_to(server, "POST", "/api/service/")) == 3


def test_secrets_are_refused_before_anything_is_created(start_server):
    server = start_server()
    server.state.add_cluster("clusterA")
    settings = make_settings(server)
    orch = OakestraOrchestrator(RootOrchestratorClient(settings), settings)
    with pytest.raises(InvalidSpecError, match="enrollment"):
        orch.create_service(spec("proj1-aggregator", secret_env={"FLOPS_TOKEN": SECRET}))
    assert SECRET not in server.state.bodies()
    assert not requests_to(server, "POST", "/api/service/")
    orch.close()


def test_status_survives_a_restart_of_the_manager(server, orchestrator):
    orchestrator.create_service(spec("proj1-learners", role="learners", instances=2))
    wait_state(orchestrator, "proj1-learners", ServiceState.RUNNING, running=2)
    settings = make_settings(server)
    fresh = OakestraOrchestrator(RootOrchestratorClient(settings), settings)
    status = fresh.service_status("proj1-learners")
    assert status is not None
    assert status.state is ServiceState.RUNNING and status.instances == 2
    assert fresh.create_service(spec("proj1-learners", role="learners", instances=2)).running == 2
    assert len(requests_to(server, "POST", "/api/service/")) == 1
    assert fresh.remove_service("proj1-learners")
    fresh.close()


def test_loopback_round_robin_addresses_are_listened_on(server, tmp_path):
    settings = make_settings(server, rr_subnet=loopback_rr_subnet(), allow_environment_images=True)
    orch = OakestraOrchestrator(RootOrchestratorClient(settings), settings)
    show = ("python", "-c", "import sys; print(sys.executable, flush=True); " + LISTENER)
    venv = Path(sys.executable).parent.parent
    for name in ("proj1-aggregator", "proj1-inference-server"):  # same port, two addresses
        orch.create_service(spec(name, command=show, image=f"env://{venv}", ports=(18080,),
                                 listen_env="FLOPS_LISTEN", public=True))
    for name in ("proj1-aggregator", "proj1-inference-server"):
        status = wait_state(orch, name, ServiceState.RUNNING, running=1)
        host = status.address.removesuffix(":18080")
        assert settings.address_pool().contains(host)
        wait_for(functools.partial(accepts, host, 18080), what=f"{name} listening on {host}")
        assert orch.public_url(name) == f"http://{host}:18080"
        logs = "".join(orch.service_logs(name).values())
        assert f"{venv}/bin/python" in logs and "listening" in logs
    assert orch.remove_service("proj1-aggregator") and orch.remove_service("proj1-inference-server")
    orch.close()
