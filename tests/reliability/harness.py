"""A restartable FLOps stack for fault injection: every component is a real process.

Mosquitto, nx-27017 and the MLflow server each keep their port across restarts, so the
manager and the FL components reconnect to the same addresses. The manager runs the local
orchestrator backend (``local://``) in its own session, as ``flops up`` starts it;
:class:`DockerStack` runs the same stack with the Docker backend (Podman's Docker API), the
components as containers.

Faults are injected into a project's service instances through the stack, whatever the
backend: :meth:`Stack.instances` lists them (instance name -> a handle), :meth:`Stack.signal`
signals one, :meth:`Stack.remove` makes one disappear behind FLOps' back.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import requests

from flops_manager.cli.stack import SINGLE_CLUSTER, node_command, node_name, node_token
from tests.fixtures.repos import commit_all, output_paths, processes_mentioning
from tests.fixtures.servers import free_port, port_open
from tracking_server.__main__ import mlflow_executable
from tracking_server.settings import SERVER_ENV, TrackingServerSettings, server_argv

ROOT = Path(__file__).resolve().parents[2]
HOST_ALIAS = "host.containers.internal"
"""The host as containers see it (Podman adds the name)."""
DIGITS = ROOT / "examples" / "digits_sklearn"
TOKENS = {"tok-alice": "alice", "tok-bob": "bob"}
ALICE_TOKEN = "tok-alice"
ALICE = {"Authorization": f"Bearer {ALICE_TOKEN}"}
BOB = {"Authorization": "Bearer tok-bob"}


def wait_until(condition: Callable[[], Any], *, timeout: float, what: str,
               interval: float = 0.2) -> Any:
    """Poll ``condition`` until truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = condition()
        except Exception as exc:  # noqa: BLE001 - keep polling, report the last error
            value, last = None, exc
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}"
                                 + (f" (last error: {last!r})" if last else ""))
        time.sleep(interval)


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


processes_of = processes_mentioning


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0")
                if "=" in item)


def service_pids(project_id: str, instance_prefix: str) -> list[int]:
    """Pids of a project's component processes whose ``FLOPS_INSTANCE`` starts with the prefix.

    ``instance_prefix`` is e.g. ``<pid>-learners`` or ``<pid>-aggregator``.
    """
    pids = []
    for pid in processes_of(project_id):
        with contextlib.suppress(OSError):
            # the service's own process (session leader), not helper children
            if instance_of(pid).startswith(instance_prefix) and os.getsid(pid) == pid:
                pids.append(pid)
    return sorted(pids)


def instance_of(pid: int) -> str:
    """The ``FLOPS_INSTANCE`` of a component process (``""``: none).

    From its environment, or for a component forked from a warm interpreter (whose ``/proc``
    environment is the interpreter's), from its log file ``<instance>.log``.
    """
    instance = environ_of(pid).get("FLOPS_INSTANCE", "")
    if instance:
        return instance
    logs = [Path(path) for path in output_paths(pid) if path.endswith(".log")]
    return logs[0].stem if logs and logs[0].parent.parent.name == "services" else ""


def kill_project_processes(project_id: str) -> None:
    for pid in processes_of(project_id):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGKILL)


SLOW_FIT = '''
    def fit_model(self, config: RoundConfig) -> int:
        import time as _time
        _time.sleep(float(config.extra.get("sleep_s", 0)))
        return self._fit_model(config)

    def _fit_model(self, config: RoundConfig) -> int:
'''


def slow_digits_repo(path: Path) -> Path:
    """The digits example whose ``fit_model`` first sleeps ``learner_config.extra.sleep_s``."""
    shutil.copytree(DIGITS, path, ignore=shutil.ignore_patterns("__pycache__"))
    source = path / "model_manager.py"
    text = source.read_text(encoding="utf-8")
    marker = "\n    def fit_model(self, config: RoundConfig) -> int:\n"
    assert marker in text
    source.write_text(text.replace(marker, SLOW_FIT, 1), encoding="utf-8")
    return commit_all(path)


def spec(*, rounds: int = 3, learners: int = 3, sleep_s: float = 0.0, name: str = "rel",
         **training: Any) -> dict[str, Any]:
    return {
        "name": name,
        "training": {"rounds": rounds, "learners": learners,
                     "learner_config": {"extra": {"sleep_s": sleep_s}}, **training},
        "mock_data": {"partitioner": "iid", "seed": 0},
        "model": {"registered_model_name": f"{name}-model"},
        "post_training_steps": [],
    }


class Proc:
    """One restartable server process on a fixed port."""

    def __init__(self, name: str, argv: list[str], port: int, log: Path,
                 env: dict[str, str] | None = None, health: str | None = None) -> None:
        self.name, self.argv, self.port, self.log = name, argv, port, log
        self.env = {**os.environ, **(env or {})}
        self.health = health
        self.popen: subprocess.Popen[bytes] | None = None

    def ready(self) -> bool:
        if self.health is None:
            return port_open(self.port)
        try:
            return requests.get(self.health, timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def start(self, timeout: float = 60) -> Proc:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(self.argv, env=self.env, stdout=out,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          start_new_session=True)
        popen = self.popen
        wait_until(lambda: popen.poll() is not None or self.ready(), timeout=timeout,
                   what=f"{self.name} ready on port {self.port}")
        assert popen.poll() is None, f"{self.name} exited: {self.log.read_text()[-2000:]}"
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        popen, self.popen = self.popen, None
        if popen is None or popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, sig)
        try:
            popen.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGKILL)
            popen.wait(10)
        wait_until(lambda: not port_open(self.port), timeout=15,
                   what=f"{self.name} port {self.port} closed")

    def kill(self) -> None:
        popen, self.popen = self.popen, None
        if popen is not None and popen.poll() is None:
            os.kill(popen.pid, signal.SIGKILL)  # only the process itself, not its group
            popen.wait(10)

    def restart(self, timeout: float = 60) -> None:
        self.stop()
        self.start(timeout)


class Stack:
    """Broker, database, MLflow server and manager (local backend), each restartable.

    ``listen_host`` is where the broker and MLflow listen (``0.0.0.0`` when containers must
    reach them); ``manager_settings`` (``FLOPS_*``) add to or override the manager's;
    ``{mqtt_url}`` in a value is replaced by the broker's URL.
    """

    backend = "local"
    node_count = 3
    """Simulated FLOps nodes of alice (mock data is written to them, as on ``flops up``)."""

    def __init__(self, directory: Path, cache_dir: Path,
                 manager_settings: dict[str, str] | None = None, *,
                 listen_host: str = "127.0.0.1") -> None:
        self.dir = directory
        logs = directory / "logs"
        broker_dir = directory / "broker"
        broker_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(broker_dir, 0o777)
        bport = free_port()
        self.broker_port = bport
        lines = [f"listener {bport} {listen_host}", "allow_anonymous true", "persistence true",
                 f"persistence_location {broker_dir}/", "max_queued_messages 100000",
                 "autosave_interval 1", f"log_dest file {broker_dir}/mosquitto.log"]
        if os.geteuid() == 0:
            lines.append("user root")
        (broker_dir / "mosquitto.conf").write_text("\n".join(lines) + "\n")
        mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.broker = Proc("mosquitto", [mosquitto, "-c", str(broker_dir / "mosquitto.conf")],
                           bport, logs / "broker.log")
        dport = free_port()
        nx = shutil.which("nx-27017") or str(Path(sys.executable).with_name("nx-27017"))
        (directory / "db").mkdir(exist_ok=True)
        self.db = Proc("nx-27017", [nx, "--db", str(directory / "db" / "flops.db"),
                                    "--host", "127.0.0.1", "-p", str(dport),
                                    "--log-file", str(logs / "nx.log"),
                                    # its own pid file: the default one is shared machine-wide
                                    "--pid-file", str(directory / "db" / "nx.pid")],
                       dport, logs / "db.log")
        mport = free_port()
        tracking = TrackingServerSettings(listen_address=f"{listen_host}:{mport}",
                                          data_dir=directory / "mlflow",
                                          allowed_hosts=[HOST_ALIAS])
        self.mlflow_port = mport
        self.mlflow_url = f"http://127.0.0.1:{mport}"
        self.mlflow = Proc("mlflow", server_argv(mlflow_executable(), tracking), mport,
                           logs / "mlflow.log", SERVER_ENV, f"{self.mlflow_url}/health")
        aport = free_port()
        self.api_url = f"http://127.0.0.1:{aport}"
        self.base = self.api_url + "/api/v1"
        self.mqtt_url = f"mqtt://127.0.0.1:{bport}"
        manager_env = {
            "FLOPS_HOST": "127.0.0.1", "FLOPS_PORT": str(aport),
            "FLOPS_DATA_DIR": str(directory / "data"),
            "FLOPS_MONGO_URL": f"mongodb://127.0.0.1:{dport}",
            "FLOPS_MQTT_URL": self.mqtt_url,
            "FLOPS_MQTT_CLIENT_ID": "rel-manager-" + directory.name[-12:],
            "FLOPS_ORCHESTRATOR_URI": "local://",
            "FLOPS_API_TOKENS": json.dumps(TOKENS),
            "FLOPS_MLFLOW_PUBLIC_URL": self.mlflow_url,
            "FLOPS_TRACKING_URI": self.mlflow_url,
            "FLOPS_BUILDER_CACHE_DIR": str(cache_dir),
            "FLOPS_ALLOW_LOCAL_REPOS": "true",
            "FLOPS_RECONCILE_INTERVAL_S": "0.5",
            "FLOPS_ACTION_BACKOFF_S": "0.5",
            "FLOPS_DRIFT_GRACE_S": "2",
            "FLOPS_SSE_MAX_S": "2",  # event streams end quickly under the fuzzer
        }
        manager_env.update({k: v.replace("{mqtt_url}", self.mqtt_url)
                            for k, v in (manager_settings or {}).items()})
        self.manager = Proc("manager", [sys.executable, "-m", "flops_manager"], aport,
                            logs / "manager.log", manager_env, f"{self.api_url}/health")
        self.nodes = [self._node(node_name(i), logs) for i in range(self.node_count)]

    def _node(self, name: str, logs: Path) -> Proc:
        port = free_port()
        return Proc(name, node_command(name, SINGLE_CLUSTER, self.dir / "nodes" / name,
                                       self.api_url, port), port, logs / f"{name}.log")

    def start(self) -> Self:
        for proc in (self.broker, self.db, self.mlflow, self.manager):
            proc.start(timeout=120)
        for node in self.nodes:
            node.env["FLOPS_NODE_TOKEN"] = node_token(self.api_url, ALICE_TOKEN, node.name)
            node.start(timeout=60)
        self.wait_nodes_online(timeout=60)
        return self

    def wait_nodes_online(self, *, timeout: float) -> None:
        """Wait until every node of the stack is online (reporting, with an address)."""
        names = sorted(node.name for node in self.nodes)
        wait_until(lambda: sorted(n["name"] for n in self.get("nodes")["items"]
                                  if n["status"] == "online" and n["location"]) == names,
                   timeout=timeout, what=f"nodes {names} online")

    def stop(self) -> None:
        for proc in (*self.nodes, self.manager, self.mlflow, self.db, self.broker):
            with contextlib.suppress(Exception):
                proc.stop()

    # -- the project's service instances (local processes) -------------------------------
    def spec(self, **kw: Any) -> dict[str, Any]:
        """A project spec for this backend (see :func:`spec`)."""
        return spec(**kw)

    def instances(self, project_id: str, prefix: str) -> dict[str, str]:
        """Running instances whose name starts with ``prefix``: name -> handle (a pid)."""
        return {instance_of(pid): str(pid) for pid in service_pids(project_id, prefix)}

    def signal(self, handle: str, sig: int) -> None:
        """Send ``sig`` to the instance ``handle`` names."""
        os.kill(int(handle), sig)

    def remove(self, handle: str) -> None:
        """Make the instance disappear behind FLOps' back (a process: SIGKILL)."""
        os.kill(int(handle), signal.SIGKILL)

    def leftovers(self, project_id: str) -> list[str]:
        """What of the project still runs (processes)."""
        return [str(pid) for pid in service_pids(project_id, project_id)]

    def cleanup(self, project_id: str) -> None:
        """Kill whatever of the project is left, after a test."""
        kill_project_processes(project_id)

    # -- REST helpers -------------------------------------------------------------------
    def post(self, path: str, body: Any = None, headers: dict[str, str] = ALICE
             ) -> requests.Response:
        return requests.post(f"{self.base}/{path}", json=body, headers=headers, timeout=30)

    def get(self, path: str, headers: dict[str, str] = ALICE, **params: Any) -> Any:
        response = requests.get(f"{self.base}/{path}", params=params, headers=headers,
                                timeout=30)
        assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
        return response.json()

    def create(self, repo: str, body_spec: dict[str, Any]) -> str:
        if body_spec.get("mock_data") and self.nodes:
            # a fault injected by the test before (the manager or database restarted) can
            # leave a node's report a few seconds late; mock data needs them all online
            self.wait_nodes_online(timeout=30)
        response = self.post("projects", {"repository": {"url": repo}, "spec": body_spec})
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def project(self, pid: str) -> dict[str, Any]:
        return dict(self.get(f"projects/{pid}"))

    def events(self, pid: str) -> list[dict[str, Any]]:
        return list(self.get(f"projects/{pid}/events", limit=1000)["items"])

    def wait(self, pid: str, done: Callable[[dict[str, Any]], bool], *, timeout: float,
             what: str, allow_terminal: bool = False) -> dict[str, Any]:
        """Wait until ``done(project)``; a terminal phase that is not ``done`` fails at once."""
        deadline = time.monotonic() + timeout
        project: dict[str, Any] = {}
        while True:
            with contextlib.suppress(requests.RequestException, AssertionError):
                project = self.project(pid)
                if done(project):
                    return project
            # outside the suppression: a project that ended otherwise (and has nothing left
            # to do) fails the wait at once
            if not allow_terminal and project.get("phase") in (
                    "completed", "failed", "cancelled") and not project.get("pending_actions"):
                raise AssertionError(
                    f"waiting for {what}: project {pid} ended {project['phase']}: "
                    f"{project.get('last_error')}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{what} not reached within {timeout:.0f} s: phase "
                    f"{project.get('phase')}, round {project.get('progress', {}).get('round')}, "
                    f"error {project.get('last_error')}")
            time.sleep(0.3)

    def wait_final(self, pid: str, *, timeout: float, what: str = "a final phase"
                   ) -> dict[str, Any]:
        return self.wait(pid, lambda p: p["phase"] in ("completed", "failed", "cancelled")
                         and not p["pending_actions"], timeout=timeout, what=what,
                         allow_terminal=True)


def check_event_log(stack: Stack, pid: str) -> list[dict[str, Any]]:
    """No duplicate event ids, increasing sequence numbers, phase changes in order.

    (A manager killed while storing an event may leave a gap in the sequence numbers; the
    event itself is recorded again after the restart.)
    """
    items = stack.events(pid)
    ids = [item["event"]["event_id"] for item in items]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    assert not duplicates, f"duplicate event ids in project {pid}: {duplicates}"
    seqs = [item["seq"] for item in items]
    assert seqs == sorted(set(seqs)), f"event seq numbers not increasing: {seqs}"
    order = ["submitted", "building", "deploying", "training", "post_training", "serving"]
    changes = [(e["event"]["data"].get("from"), e["event"]["data"]["to"]) for e in items
               if e["event"]["event"] == "phase_changed"]
    last = -1
    for index, (_, to) in enumerate(changes):
        if to in order:
            assert order.index(to) > last, f"phase changes out of order: {changes}"
            last = order.index(to)
        else:  # terminal: the last phase change
            assert index == len(changes) - 1, f"phase change after {to}: {changes}"
    rounds = [e["event"]["data"]["round"] for e in items
              if e["event"]["event"] == "round_completed"
              and e["event"]["component"] == "aggregator"]
    assert rounds == sorted(set(rounds)), f"round_completed events lost/duplicated: {rounds}"
    return items


def registered_versions(stack: Stack, name: str, project_id: str) -> list[Any]:
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=stack.mlflow_url, registry_uri=stack.mlflow_url)
    versions = client.search_model_versions(f"name = '{name}'")

    def of_project(version: ModelVersion) -> bool:
        if (version.tags or {}).get("flops.project_id") == project_id:
            return True
        assert version.run_id is not None, version  # a registered FLOps model has its run
        return client.get_run(version.run_id).data.tags.get("flops.project_id") == project_id

    return [v for v in versions if of_project(v)]


class DockerStack(Stack):
    """The same stack with the Docker backend: every component runs as a container.

    The broker and MLflow listen on all addresses (containers reach them as
    ``host.containers.internal``); builders run on the host network, with the repository,
    the build cache and a layer-cache volume mounted, and push to ``registry``.
    Mock data is left out of specs: the dataplane has no image here, and the digits example
    loads its own data.
    """

    backend = "docker"
    node_count = 0  # no mock data: no nodes

    def __init__(self, directory: Path, cache_dir: Path, *, socket: str, registry: str,
                 base_image: str, builder_image: str, mounts: list[str],
                 extra_env: dict[str, str]) -> None:
        import docker  # type: ignore[import-untyped]

        query = "&".join(["builder_network=host", *(f"builder_mount={m}" for m in mounts)])
        super().__init__(directory, cache_dir, listen_host="0.0.0.0", manager_settings={
            "FLOPS_ORCHESTRATOR_URI": socket.replace("unix://", "docker+unix://") + "?" + query,
            "FLOPS_REGISTRY": registry, "FLOPS_REGISTRY_TLS_VERIFY": "false",
            "FLOPS_BASE_IMAGE": base_image, "FLOPS_BUILDER_IMAGE": builder_image,
            "FLOPS_BUILDER_MEMORY_MB": "16384",  # a cold build: >8 GB seen (page cache)
            **extra_env,
        })
        self.manager.env.update({
            "FLOPS_EVENTS_URI": f"mqtt://{HOST_ALIAS}:{self.broker_port}",
            "FLOPS_TRACKING_URI": f"http://{HOST_ALIAS}:{self.mlflow_port}",
            # containers enroll at the manager through the host alias
            "FLOPS_HOST": "0.0.0.0",
            "FLOPS_COMPONENT_API_URL": f"http://{HOST_ALIAS}:{self.manager.port}",
        })
        self.engine = docker.DockerClient(base_url=socket)

    def spec(self, **kw: Any) -> dict[str, Any]:
        body = spec(**kw)
        del body["mock_data"]
        return body

    def _containers(self, project_id: str, *, running: bool) -> list[dict[str, Any]]:
        return list(self.engine.api.containers(
            all=not running, filters={"label": f"io.flops.project={project_id}"}))

    def instances(self, project_id: str, prefix: str) -> dict[str, str]:
        """Running containers whose name starts with ``prefix``: name -> container id."""
        found = {}
        for c in self._containers(project_id, running=True):
            name = (c.get("Names") or ["?"])[0].lstrip("/")
            if name.startswith(prefix):
                found[name] = str(c["Id"])
        return found

    def signal(self, handle: str, sig: int) -> None:
        """Signal the container; SIGSTOP/SIGCONT pause/unpause it (cgroup freezer).

        Images run tini as PID 1, which forwards signals but would itself be the only
        process stopped by a SIGSTOP.
        """
        if sig == signal.SIGSTOP:
            self.engine.api.pause(handle)
        elif sig == signal.SIGCONT:
            self.engine.api.unpause(handle)
        else:
            self.engine.api.kill(handle, signal=int(sig))

    def remove(self, handle: str) -> None:
        """Remove the container (``podman rm -f``)."""
        self.engine.api.remove_container(handle, force=True)

    def leftovers(self, project_id: str) -> list[str]:
        return [str(c["Id"]) for c in self._containers(project_id, running=False)]

    def cleanup(self, project_id: str) -> None:
        for handle in self.leftovers(project_id):
            with contextlib.suppress(Exception):
                self.engine.api.remove_container(handle, force=True)
        for network in self.engine.networks.list(names=[f"flops-{project_id}"]):
            with contextlib.suppress(Exception):
                network.remove()

    def stop(self) -> None:
        super().stop()
        self.engine.close()
