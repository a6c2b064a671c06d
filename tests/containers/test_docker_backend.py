"""The Docker orchestrator backend against Podman's Docker-compatible API (real containers)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import docker  # type: ignore[import-untyped]
import pytest

from flops_manager.adapters.docker_orchestrator import (
    DockerOrchestrator,
    build_docker_orchestrator,
    network_name,
)
from flops_manager.ports.errors import NotFoundError
from flops_manager.ports.orchestrator import BuildTarget, Resources, ServiceSpec, ServiceState
from image_builder.platforms import read_binfmt_handlers

pytestmark = pytest.mark.integration

SERVER = ("import os, http.server as h\n"
          "host, port = os.environ['LISTEN'].split(':')\n"
          "class H(h.BaseHTTPRequestHandler):\n"
          "    def do_GET(self):\n"
          "        self.send_response(200); self.end_headers()\n"
          "        self.wfile.write(os.environ['FLOPS_INSTANCE'].encode())\n"
          "print('serving', flush=True)\n"
          "h.HTTPServer((host, int(port)), H).serve_forever()\n")


@pytest.fixture()
def engine(podman_socket: str) -> Iterator[docker.DockerClient]:
    client = docker.DockerClient(base_url=podman_socket)
    yield client
    client.close()


def wait_state(orch: DockerOrchestrator, name: str, states: set[ServiceState],
               timeout: float = 30) -> ServiceState:
    deadline = time.monotonic() + timeout
    while True:
        status = orch.service_status(name)
        assert status is not None
        if status.state in states or time.monotonic() > deadline:
            return status.state
        time.sleep(0.3)


def spec(name: str, image: str, command: tuple[str, ...], **extra: object) -> ServiceSpec:
    return ServiceSpec(name=name, role=name.rsplit("-", 1)[-1], image=image, command=command,
                       project_id="dockertest", **extra)  # type: ignore[arg-type]


def test_service_lifecycle_address_and_cleanup(orchestrator: DockerOrchestrator, base_image: str,
                                               engine: docker.DockerClient) -> None:
    assert orchestrator.build_target is BuildTarget.IMAGE
    web = spec("dockertest-web", base_image, ("python3", "-c", SERVER), ports=(8000,),
               listen_env="LISTEN", instances=2, public=True,
               resources=Resources(memory_mb=128, vcpus=0.5),
               env={"PLAIN": "1"}, secret_env={"TOKEN": "s3cret"})
    try:
        first = orchestrator.create_service(web)
        again = orchestrator.create_service(web)  # idempotent
        assert first.instances == again.instances == 2
        assert wait_state(orchestrator, "dockertest-web", {ServiceState.RUNNING}) \
            is ServiceState.RUNNING
        assert orchestrator.service_address("dockertest-web") == "dockertest-web:8000"
        containers = engine.containers.list(filters={"label": "io.flops.service=dockertest-web"})
        assert sorted(c.name for c in containers) == ["dockertest-web-0", "dockertest-web-1"]
        attrs = containers[0].attrs
        assert attrs["HostConfig"]["Memory"] == 128 * 1024 * 1024
        assert attrs["HostConfig"]["NanoCpus"] == 500_000_000
        assert "TOKEN" not in str(containers[0].labels)

        # Reach the service by its address from another container on the project network.
        client = spec("dockertest-client", base_image, (
            "python3", "-c",
            "import time, urllib.request\n"
            "for i in range(50):\n"
            "    try:\n"
            "        print(urllib.request.urlopen('http://dockertest-web:8000/').read().decode())\n"
            "        break\n"
            "    except OSError:\n"
            "        time.sleep(0.2)\n"
            "else:\n"
            "    raise SystemExit(1)\n"), one_shot=True)
        orchestrator.create_service(client)
        assert wait_state(orchestrator, "dockertest-client",
                          {ServiceState.STOPPED, ServiceState.FAILED}) is ServiceState.STOPPED
        logs = orchestrator.service_logs("dockertest-client")
        assert logs["dockertest-client-0"].strip().startswith("dockertest-web-")

        url = orchestrator.public_url("dockertest-web")
        assert url is not None and url.startswith("http://127.0.0.1:")
        import requests
        deadline = time.monotonic() + 15
        while True:
            try:
                assert requests.get(url, timeout=2).text.startswith("dockertest-web-")
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        assert set(orchestrator.service_logs("dockertest-web")) == {
            "dockertest-web-0", "dockertest-web-1"}
        assert len(engine.containers.list(
            all=True, filters={"label": "io.flops.service=dockertest-web"})) == 2
    finally:
        orchestrator.remove_service("dockertest-client")
        orchestrator.remove_service("dockertest-web")
    assert orchestrator.remove_service("dockertest-web") is False
    assert orchestrator.service_status("dockertest-web") is None
    assert engine.containers.list(all=True, filters={"label": "io.flops.project=dockertest"}) == []
    assert engine.networks.list(names=[network_name("dockertest")]) == []


def test_failed_container_is_failed_with_message(orchestrator: DockerOrchestrator,
                                                 base_image: str) -> None:
    bad = spec("dockertest-bad", base_image,
               ("python3", "-c", "import sys; print('boom'); sys.exit(3)"))
    try:
        orchestrator.create_service(bad)
        assert wait_state(orchestrator, "dockertest-bad", {ServiceState.FAILED}) \
            is ServiceState.FAILED
        status = orchestrator.service_status("dockertest-bad")
        assert status is not None and status.message is not None
        assert "exited with code 3" in status.message and "boom" in status.message
    finally:
        assert orchestrator.remove_service("dockertest-bad") is True
    with pytest.raises(NotFoundError):
        orchestrator.service_logs("dockertest-bad")


def test_a_reason_written_in_pieces_is_in_the_message_and_the_logs(
    orchestrator: DockerOrchestrator, base_image: str
) -> None:
    """A line written as text, then its newline (an unbuffered ``print``), is not lost.

    Podman records the pieces as a partial line; its ``logs?tail=N`` then answered a bare
    newline, so an aggregator that exited 2 with its configuration error showed no reason.
    """
    name = "dockertest-pieces"
    piecewise = ("import os, sys, time\n"
                 "os.write(2, b'flops-aggregator: the reason')\n"
                 "time.sleep(0.2)\n"
                 "os.write(2, b'\\n')\n"
                 "sys.exit(2)\n")
    try:
        orchestrator.create_service(spec(name, base_image, ("python3", "-c", piecewise)))
        assert wait_state(orchestrator, name, {ServiceState.FAILED}) is ServiceState.FAILED
        status = orchestrator.service_status(name)
        assert status is not None and status.message is not None
        assert "exited with code 2" in status.message, status.message
        assert "flops-aggregator: the reason" in status.message, status.message
        assert "flops-aggregator: the reason" in "".join(
            orchestrator.service_logs(name).values())
    finally:
        assert orchestrator.remove_service(name) is True


def test_components_reach_the_host(orchestrator: DockerOrchestrator, base_image: str) -> None:
    probe = spec("dockertest-host", base_image, (
        "python3", "-c",
        f"import socket; print(socket.gethostbyname({orchestrator.host_alias!r}))"),
        one_shot=True)
    try:
        orchestrator.create_service(probe)
        assert wait_state(orchestrator, "dockertest-host",
                          {ServiceState.STOPPED, ServiceState.FAILED}) is ServiceState.STOPPED
    finally:
        orchestrator.remove_service("dockertest-host")


def test_missing_image_is_permanent(orchestrator: DockerOrchestrator, registry: str) -> None:
    from flops_manager.ports.errors import PermanentError

    with pytest.raises(PermanentError):
        orchestrator.create_service(spec("dockertest-none", f"{registry}/flops/none:1", ()))
    assert orchestrator.service_status("dockertest-none") is None




class SilentRegistry:
    """A loopback 'registry' that accepts connections and never answers until closed.

    An image pull from it hangs (in the TLS handshake) for as long as the test wants.
    """

    def __init__(self) -> None:
        import socket
        import threading

        self.server = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.server.getsockname()[1]}"
        self.connected = threading.Event()
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.held.append(conn)
            self.connected.set()

    def still_waiting(self) -> bool:
        """Whether every held connection is still open from the client's side."""
        import socket

        for conn in self.held:
            try:
                if conn.recv(65536, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
                    return False  # the client gave up
            except BlockingIOError:
                continue
        return True

    def close(self) -> None:
        for conn in self.held:
            conn.close()
        self.server.close()


def test_a_hanging_pull_does_not_block_other_services(orchestrator: DockerOrchestrator,
                                                      base_image: str) -> None:
    """While one service's image pull hangs, another project's service is read and logged."""
    import threading

    steady = spec("dockertest-steady", base_image,
                  ("python3", "-c", "print('up', flush=True); import time; time.sleep(600)"))
    registry = SilentRegistry()
    slow = ServiceSpec(name="dockerslow-learners", role="learners", project_id="dockerslow",
                       image=f"{registry.address}/flops/never:1", command=("true",))
    errors: list[BaseException] = []

    def create_slow() -> None:
        try:
            orchestrator.create_service(slow)
        except BaseException as exc:  # noqa: BLE001 - the pull fails once released
            errors.append(exc)

    try:
        orchestrator.create_service(steady)
        pulling = threading.Thread(target=create_slow, daemon=True)
        pulling.start()
        assert registry.connected.wait(60), "the engine never contacted the registry"
        status = orchestrator.service_status("dockertest-steady")
        logs = orchestrator.service_logs("dockertest-steady")
        assert status is not None and status.state in (ServiceState.RUNNING,
                                                       ServiceState.PENDING)
        assert set(logs) == {"dockertest-steady-0"}
        # both answered while the pull was still waiting for the registry
        assert registry.still_waiting() and pulling.is_alive()
    finally:
        registry.close()
        orchestrator.remove_service("dockertest-steady")
    pulling.join(120)
    assert errors and orchestrator.service_status("dockerslow-learners") is None


def test_removed_or_killed_containers_are_missing_and_recreated(
        orchestrator: DockerOrchestrator, base_image: str, engine: docker.DockerClient) -> None:
    sleeper = spec("dockertest-drift", base_image,
                   ("python3", "-c", "import time; time.sleep(600)"), instances=2)
    try:
        orchestrator.create_service(sleeper)
        wait_state(orchestrator, "dockertest-drift", {ServiceState.RUNNING})
        engine.containers.get("dockertest-drift-1").remove(force=True)  # behind its back
        status = orchestrator.service_status("dockertest-drift")
        assert status is not None and status.missing == ("dockertest-drift-1",)
        assert orchestrator.create_service(sleeper).missing == ()
        engine.api.kill("dockertest-drift-0", signal=9)
        deadline = time.monotonic() + 60
        while (killed := orchestrator.service_status("dockertest-drift")) is None \
                or killed.missing != ("dockertest-drift-0",):
            assert time.monotonic() < deadline, "the killed container never showed as missing"
            time.sleep(0.3)
        assert killed.state is ServiceState.FAILED
        repaired = orchestrator.create_service(sleeper)
        assert repaired.missing == ()
        assert wait_state(orchestrator, "dockertest-drift", {ServiceState.RUNNING}) \
            is ServiceState.RUNNING
    finally:
        orchestrator.remove_service("dockertest-drift")


BUILDER_VIEW = ("import json, os, pathlib\n"
                "binfmt = pathlib.Path(os.environ['FLOPS_BINFMT_DIR'])\n"
                "handlers = {p.name: p.read_text().splitlines()[:1] == ['enabled']\n"
                "            for p in binfmt.iterdir() if p.name not in ('register', 'status')}\n"
                "pip = pathlib.Path(os.environ['PIP_CONFIG_FILE']).read_text()\n"
                "print(json.dumps({'handlers': handlers, 'pip': pip,\n"
                "                  'from_host': os.environ['FLOPS_PIP_FROM_HOST']}))\n")


def test_builders_see_the_engine_hosts_binfmt_handlers_and_pip_config(
        podman_socket: str, base_image: str, tmp_path: Path) -> None:
    """A privileged container (a builder) sees the host's binfmt_misc handlers, which its own
    /proc does not show, and the pip.conf given as builder_pip_config, both read-only."""
    pip_conf = tmp_path / "pip.conf"
    pip_conf.write_text("[global]\nindex-url = https://mirror.example/simple\n")
    uri = podman_socket.replace("unix://", "docker+unix://") + f"?builder_pip_config={pip_conf}"
    orch = build_docker_orchestrator(uri, None)
    assert isinstance(orch, DockerOrchestrator)
    probe = spec("dockertest-builder", base_image, ("python3", "-c", BUILDER_VIEW),
                 one_shot=True, privileged=True)
    try:
        orch.create_service(probe)
        assert wait_state(orch, "dockertest-builder",
                          {ServiceState.STOPPED, ServiceState.FAILED}) is ServiceState.STOPPED
        seen = json.loads(orch.service_logs("dockertest-builder")["dockertest-builder-0"])
        assert seen == {"handlers": read_binfmt_handlers(), "pip": pip_conf.read_text(),
                        "from_host": "true"}
    finally:
        orch.remove_service("dockertest-builder")
        orch.close()
