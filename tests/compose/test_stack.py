"""The management suite for real: every image built with Buildah, started and healthy, and the
compose stack up with podman-compose, running a project to completion on the Docker backend.

Nothing can be pulled here, so MongoDB, Mosquitto and the registry come from the stand-ins in
``containers/offline/`` through ``deploy/compose/offline.yml``; projects run on this host's
Podman (``deploy/compose/docker-backend.yml``) because Oakestra cannot run here. Each image is
tagged under a test prefix and the stack runs as its own compose project on free ports, with
its own external "Oakestra" network; everything is removed afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.fixtures.podman import BUILDER_STORAGE_VOLUME, podman_service, remove_local_images
from tests.fixtures.repos import git_repo
from tests.fixtures.servers import free_port, wait_for
from tests.fixtures.tools import missing, require_tools

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE = "localhost/flops-python:3.11-bookworm"
PREFIX = "localhost/flops-test"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
BOB_TOKEN = "tok-bob-" + secrets.token_hex(8)
_BESIDE = Path(sys.executable).with_name("podman-compose")
PODMAN_COMPOSE = str(_BESIDE) if _BESIDE.exists() else shutil.which("podman-compose")
# containers/build.sh names, in build order (offline-mongo is built on the runtime image)
IMAGES = ("runtime", "manager", "tracking-server", "inference-server", "image-builder",
          "offline-mongo", "offline-mosquitto", "offline-registry")


@pytest.fixture(autouse=True)
def _tools() -> None:
    require_tools(("buildah", "podman"), "scripts/setup_containers.sh installs them")
    if PODMAN_COMPOSE is None:
        missing("podman-compose", "the dev extra installs it")


def run(argv: list[str], *, timeout: float = 300, check: bool = True,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                          check=False, cwd=ROOT)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(argv[:4])}... exited {done.returncode}:\n"
                             f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def healthy(container: str) -> bool:
    """Run the container's health check once (Podman runs none on its own without systemd)."""
    return run(["podman", "healthcheck", "run", container], check=False, timeout=60
               ).returncode == 0


@pytest.fixture(scope="module")
def images() -> dict[str, str]:
    """Every FLOps image, built from this tree with containers/build.sh (layers cached)."""
    run(["bash", str(ROOT / "scripts" / "build_base_image.sh"), BASE_IMAGE], timeout=900)
    env = {**os.environ, "FLOPS_BASE_IMAGE": BASE_IMAGE, "FLOPS_PYTHON": sys.executable,
           "FLOPS_RUNTIME_IMAGE": f"{PREFIX}/runtime:latest"}
    built: dict[str, str] = {}
    for name in IMAGES:
        ref = f"{PREFIX}/{name}:latest"
        run(["bash", str(ROOT / "containers" / "build.sh"), name, ref], env=env, timeout=1800)
        built[name] = ref
    return built


@pytest.fixture
def containers() -> Iterator[list[str]]:
    started: list[str] = []
    yield started
    if started:
        run(["podman", "rm", "-f", "-t", "2", *started], check=False, timeout=120)


def start(containers: list[str], image: str, *options: str,
          env: dict[str, str] | None = None, command: tuple[str, ...] = ()) -> str:
    name = "flops-test-" + uuid.uuid4().hex[:8]
    env_args = [f"--env={k}={v}" for k, v in (env or {}).items()]
    run(["podman", "run", "-d", "--name", name, *env_args, *options, image, *command],
        timeout=120)
    containers.append(name)
    return name


def wait_healthy(name: str, timeout: float) -> None:
    try:
        wait_for(lambda: healthy(name), timeout=timeout, interval=2.0)
    except TimeoutError:
        done = run(["podman", "logs", "--tail", "40", name], check=False)
        logs = done.stdout + done.stderr
        raise AssertionError(f"{name} not healthy after {timeout:.0f} s; its log:\n{logs}"
                             ) from None


def test_every_service_image_starts_and_answers_its_health_check(
    images: dict[str, str], containers: list[str], tmp_path: Path
) -> None:
    # images carry their health checks (docker format), so any engine runs them
    for name in ("manager", "tracking-server", "inference-server", "offline-mongo",
                 "offline-mosquitto", "offline-registry"):
        config = json.loads(run(["podman", "image", "inspect", images[name]]).stdout)[0]
        check = config.get("Healthcheck") or (config.get("Config") or {}).get("Healthcheck")
        assert check and check.get("Test"), f"{name} has no HEALTHCHECK"
        assert config["Config"].get("User") in (None, "", "10001") or name.startswith(
            "offline-"), f"{name} runs as {config['Config'].get('User')}"
    manager = start(containers, images["manager"],
                    env={"FLOPS_API_TOKENS": json.dumps({"t-" + uuid.uuid4().hex: "u"}),
                         "FLOPS_ORCHESTRATOR_URI": "local://"})
    tracking = start(containers, images["tracking-server"])
    mongo = start(containers, images["offline-mongo"])
    registry = start(containers, images["offline-registry"])
    # with the compose file's entrypoint, configuration and password variables
    mosquitto = start(containers, images["offline-mosquitto"], "--entrypoint", "/bin/sh",
                      "-v", f"{ROOT / 'deploy' / 'mosquitto'}:/flops:ro",
                      env={"MQTT_MANAGER_PASSWORD": "pw-" + uuid.uuid4().hex},
                      command=("/flops/entrypoint.sh",))
    # the inference server needs a model: a tiny scikit-learn model logged to a file store
    model_dir = tmp_path / "model"
    run([sys.executable, "-c",
         "import sys, mlflow.sklearn; from sklearn.linear_model import LogisticRegression; "
         "mlflow.sklearn.save_model(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), "
         "sys.argv[1])", str(model_dir)], timeout=300)
    model_dir.chmod(0o755)
    inference = start(containers, images["inference-server"], "-v",
                      f"{model_dir}:/models/tiny:ro", env={"FLOPS_MODEL_URI": "/models/tiny"})
    for name in (manager, tracking, mongo, registry, mosquitto, inference):
        wait_healthy(name, timeout=180)
    # the runtime image runs the FL components; the builder image runs one-shot builds and
    # says what is missing when it is not configured
    imports = run(["podman", "run", "--rm", images["runtime"], "python", "-c",
                   "import aggregator, learner_base, flops_dataplane; print('ok')"])
    assert imports.stdout.strip() == "ok"
    unconfigured = run(["podman", "run", "--rm", images["image-builder"]], check=False)
    assert unconfigured.returncode != 0
    assert "FLOPS_" in unconfigured.stdout + unconfigured.stderr


# ---------------------------------------------------------------------------------------------
# The stack


class Api:
    def __init__(self, base: str, token: str) -> None:
        self.base = base + "/api/v1"
        self.headers = {"Authorization": f"Bearer {token}"}

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(method, f"{self.base}/{path}", headers=self.headers,
                                timeout=30, **kwargs)

    def project(self, pid: str) -> dict[str, Any]:
        response = self.call("GET", f"projects/{pid}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def project_ids(self) -> list[str]:
        """The ids of every project of this token's user (all pages; empty if unreachable)."""
        ids: list[str] = []
        params: dict[str, Any] = {"page_size": 200, "cursor": ""}
        while True:
            try:
                page = self.call("GET", "projects", params=params).json()
            except (requests.RequestException, ValueError):
                return ids
            ids += [item["id"] for item in page.get("items") or []]
            if not page.get("next_cursor"):
                return ids
            params = {"page_size": 200, "cursor": page["next_cursor"]}


class Stack:
    """One podman-compose project: ``compose(...)`` runs podman-compose with its files."""

    def __init__(self, name: str, env_file: Path, files: list[Path]) -> None:
        self.name = name
        self.env_file = env_file
        self.files = files

    def compose(self, *args: str, timeout: float = 600, check: bool = True
                ) -> subprocess.CompletedProcess[str]:
        argv = [str(PODMAN_COMPOSE), "-p", self.name, "--env-file", str(self.env_file)]
        for path in self.files:
            argv += ["-f", str(path)]
        return run([*argv, *args], timeout=timeout, check=check)

    def container(self, service: str) -> str:
        out = run(["podman", "ps", "-a", "--format", "{{.Names}}", "--filter",
                   f"label=io.podman.compose.project={self.name}", "--filter",
                   f"label=com.docker.compose.service={service}"]).stdout.split()
        assert len(out) == 1, f"containers of {service}: {out}"
        return out[0]


@pytest.fixture(scope="module")
def stack(images: dict[str, str],
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Api, dict[str, Any]]]:
    root = tmp_path_factory.mktemp("stack")
    repo = git_repo(root / "digits", ROOT / "examples" / "digits_sklearn")
    suffix = uuid.uuid4().hex[:6]
    network = f"flops-test-oakestra-{suffix}"
    run(["podman", "network", "create", network])
    token = "tok-" + secrets.token_hex(8)
    ports = {k: str(free_port()) for k in ("api", "mlflow", "mqtt", "registry")}
    registry = f"localhost:{ports['registry']}"
    engine = contextlib.ExitStack()
    engine_sock = engine.enter_context(podman_service(root, registry))
    ca = "/run/flops/ca-bundle.pem"
    # buildah's layer cache is the one the Docker suites' builders keep between runs (the
    # dependency layers); the build cache (wheels, checkouts, logs) is this stack's own
    mounts = [f"{BUILDER_STORAGE_VOLUME}:/var/lib/containers",
              f"flops-test-cache-{suffix}:/var/cache/flops", f"{repo}:{repo}:ro"]
    if CA_BUNDLE.is_file():
        mounts.append(f"{CA_BUNDLE}:{ca}:ro")
    docker_uri = ("docker+unix:///run/flops/engine.sock?builder_network=host&"
                  + "&".join(f"builder_mount={m}" for m in mounts))
    values = {
        "OAKESTRA_NETWORK": network,
        "MONGO_USERNAME": "flops", "MONGO_PASSWORD": secrets.token_hex(12),
        "MQTT_MANAGER_PASSWORD": secrets.token_hex(12),
        "MLFLOW_ADMIN_PASSWORD": secrets.token_hex(12),
        "FLOPS_PUBLIC_HOST": "host.containers.internal",
        "FLOPS_API_PORT": ports["api"], "FLOPS_MLFLOW_PORT": ports["mlflow"],
        "FLOPS_MQTT_PORT": ports["mqtt"], "FLOPS_REGISTRY_PORT": ports["registry"],
        "FLOPS_REGISTRY": registry, "FLOPS_REGISTRY_TLS_VERIFY": "false",
        # the host's engine and the host-network builders reach the manager on loopback
        "FLOPS_REGISTRY_AUTH_REALM": f"http://localhost:{ports['api']}/api/v1/registry/token",
        "REGISTRY_USERNAME": "flops-admin", "REGISTRY_PASSWORD": secrets.token_hex(12),
        "FLOPS_IMAGE_PREFIX": PREFIX,
        "FLOPS_ENGINE_SOCKET": str(engine_sock), "FLOPS_DOCKER_URI": docker_uri,
        "FLOPS_API_TOKENS": json.dumps({token: "alice", BOB_TOKEN: "bob"}),
        "FLOPS_BASE_IMAGE": f"{registry}/flops/python:3.11-bookworm",
        "FLOPS_EXTRA_CA_BUNDLE": ca if CA_BUNDLE.is_file() else "",
        "FLOPS_ALLOW_LOCAL_REPOS": "true",  # the test's repository, mounted into builders
    }
    env_file = root / ".env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    env_file.chmod(0o600)
    # the manager checks a local repository at submission: it sees the same path as builders
    local_repos = root / "local-repos.yml"
    local_repos.write_text(f"services:\n  manager:\n    volumes:\n      - {repo}:{repo}:ro\n")
    stack = Stack(f"flops-test-{suffix}", env_file, [
        ROOT / "docker-compose.yml", ROOT / "deploy" / "compose" / "offline.yml",
        ROOT / "deploy" / "compose" / "docker-backend.yml", local_repos])
    api = Api(f"http://127.0.0.1:{ports['api']}", token)
    infrastructure = ("mongo", "mqtt", "mlflow", "registry")
    try:
        # podman-compose ignores depends_on health conditions before Podman 4.6: start the
        # services the manager depends on first and wait for their health checks
        stack.compose("up", "-d", "registry-key", timeout=600)  # the registry's certificate
        stack.compose("up", "-d", *infrastructure, timeout=900)
        for service in infrastructure:
            wait_healthy(stack.container(service), timeout=240)
        # the manager's preflight runs before it serves registry tokens: its image must be on
        # the engine already (README: Docker-backend override)
        run(["podman", "tag", BASE_IMAGE, values["FLOPS_BASE_IMAGE"]])
        stack.compose("up", "-d", "manager", timeout=600)
        wait_healthy(stack.container("manager"), timeout=240)
        # the builder's base image and the builder itself, pushed to the stack's registry with
        # the manager's admin login (the registry asks the manager for a token)
        admin = f"--creds={values['REGISTRY_USERNAME']}:{values['REGISTRY_PASSWORD']}"
        for local, remote in ((BASE_IMAGE, values["FLOPS_BASE_IMAGE"]),
                              (images["image-builder"],
                               f"{registry}/flops/image-builder:latest")):
            run(["podman", "push", "--quiet", "--tls-verify=false", admin, local, remote],
                timeout=600)
        yield stack, api, {"repo": repo, "registry": registry, "ports": ports,
                           "network": network, "admin": admin}
    finally:
        logs = stack.compose("logs", "--tail", "60", "manager", check=False, timeout=120)
        print(logs.stdout[-6000:])
        # only this stack's projects: other stacks on the machine run projects of their own
        ours = {pid for t in (token, BOB_TOKEN)
                for pid in Api(api.base.removesuffix("/api/v1"), t).project_ids()}
        stack.compose("down", "-v", "-t", "5", check=False, timeout=600)
        project_containers = [
            c for pid in sorted(ours)
            for c in run(["podman", "ps", "-aq", "--filter", f"label=io.flops.project={pid}"],
                         check=False).stdout.split()]
        if project_containers:
            run(["podman", "rm", "-f", *project_containers], check=False, timeout=300)
        run(["podman", "network", "rm", "-f", network], check=False)
        run(["podman", "untag", BASE_IMAGE, values["FLOPS_BASE_IMAGE"]], check=False)
        run(["podman", "volume", "rm", "-f", f"flops-test-cache-{suffix}"], check=False)
        engine.close()
        remove_local_images([f"{registry}/", f"127.0.0.1:{ports['registry']}/"])


def tracking_login(api: Api) -> tuple[str, str]:
    """The caller's MLflow login, as ``GET /api/v1/tracking`` hands it out."""
    got = api.call("GET", "tracking")
    assert got.status_code == 200, got.text
    return got.json()["username"], got.json()["password"]


def wait_phase(api: Api, pid: str, phase: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        project = api.project(pid)
        if project["phase"] == phase:
            return project
        if project["phase"] in ("failed", "cancelled"):
            raise AssertionError(f"project {pid} {project['phase']}: {project['last_error']}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{pid} still {project['phase']} after {timeout:.0f} s "
                                 f"({project['last_error']})")
        time.sleep(2)


@pytest.mark.timeout(3000)
def test_stack_comes_up_and_a_project_completes_on_the_docker_backend(
    stack: tuple[Stack, Api, dict[str, Any]],
) -> None:
    compose, api, info = stack
    # authenticated API behind the published port, its docs, and the MLflow UI
    assert requests.get(api.base + "/projects", timeout=10).status_code == 401
    assert requests.get(f"http://127.0.0.1:{info['ports']['api']}/openapi.json",
                        timeout=10).status_code == 200
    ready = requests.get(f"http://127.0.0.1:{info['ports']['api']}/ready", timeout=10,
                         headers=api.headers)  # database and broker reachable
    assert ready.status_code == 200, ready.text
    mlflow = f"http://127.0.0.1:{info['ports']['mlflow']}"
    assert requests.get(f"{mlflow}/health", timeout=10).status_code == 200

    spec = {"name": "digits-compose", "training": {"rounds": 2, "learners": 2},
            "model": {"registered_model_name": "digits-compose"}}
    created = api.call("POST", "projects",
                       json={"repository": {"url": info["repo"].as_uri()}, "spec": spec})
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    project = wait_phase(api, pid, "completed", timeout=1800)
    assert all(ref.startswith(f"{info['registry']}/flops/")
               for ref in project["build"]["images"].values())
    model = project["model"]
    # MLflow answers only the host names it was configured with (DNS rebinding protection)
    public = {"Host": f"host.containers.internal:{info['ports']['mlflow']}"}
    assert requests.get(f"{mlflow}/api/2.0/mlflow/experiments/search", timeout=10,
                        params={"max_results": 1}).status_code == 403
    # MLflow's basic-auth app: no anonymous access; each owner reads only their own runs and
    # models, through the client API and the UI's REST calls alike
    alice, bob = (tracking_login(Api(api.base.removesuffix("/api/v1"), t)) for t in
                  (api.headers["Authorization"].removeprefix("Bearer "), BOB_TOKEN))
    query = {"name": model["registered_model"], "version": model["model_version"]}
    run_query = {"run_id": model["mlflow_run_id"]}
    for prefix in ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow"):
        for path, params in (("/model-versions/get", query), ("/runs/get", run_query)):
            url = f"{mlflow}{prefix}{path}"
            assert requests.get(url, params=params, headers=public, timeout=10,
                                auth=bob).status_code == 403, url
            assert requests.get(url, params=params, headers=public,
                                timeout=10).status_code == 401, url
    version = requests.get(f"{mlflow}/api/2.0/mlflow/model-versions/get", timeout=10,
                           params=query, headers=public, auth=alice).json()
    assert version["model_version"]["status"] == "READY", version
    events = api.call("GET", f"projects/{pid}/events", params={"limit": 1000}).json()["items"]
    components = {e["event"]["component"] for e in events}
    assert {"builder", "aggregator", "learner"} <= components, components  # over the broker

    # the database is on a volume: restarting MongoDB and the manager loses nothing
    for service in ("mongo", "manager"):
        run(["podman", "restart", "-t", "5", compose.container(service)], timeout=120)
    wait_healthy(compose.container("manager"), timeout=240)
    again = api.project(pid)
    assert again["phase"] == "completed" and again["model"] == model
    assert len(api.call("GET", f"projects/{pid}/events", params={"limit": 1000}
                        ).json()["items"]) == len(events)


def test_the_registry_refuses_anonymous_pushes_and_deletes_and_foreign_tags_are_rebuilt(
    stack: tuple[Stack, Api, dict[str, Any]], tmp_path: Path,
) -> None:
    """Anonymous writes are refused; a tag another login pushed is no cache hit."""
    _, api, info = stack
    registry = info["registry"]
    (tmp_path / "none.json").write_text('{"auths": {}}')  # no login at all
    anonymous = run(["podman", "push", "--quiet", "--tls-verify=false",
                     f"--authfile={tmp_path / 'none.json'}", BASE_IMAGE,
                     f"{registry}/flops/owners/anyone/x/learner:1"], check=False, timeout=300)
    assert anonymous.returncode != 0
    assert "unauthorized" in (anonymous.stdout + anonymous.stderr).lower()
    base = f"http://127.0.0.1:{info['ports']['registry']}/v2/flops/python"
    assert requests.delete(f"{base}/manifests/sha256:{'0' * 64}", timeout=10).status_code == 401
    assert requests.post(f"{base}/blobs/uploads/", timeout=10).status_code == 401

    done = [p for p in api.call("GET", "projects").json()["items"] if p["phase"] == "completed"]
    assert done, "runs after the completing project"
    learner = api.project(done[0]["id"])["build"]["images"]["learner"]
    # another login (here the admin's) pushes some image under the project's expected tag
    run(["podman", "push", "--quiet", "--tls-verify=false", info["admin"], BASE_IMAGE, learner],
        timeout=600)
    spec = {"name": "digits-foreign-tag", "training": {"rounds": 1, "learners": 2}}
    created = api.call("POST", "projects",
                       json={"repository": {"url": info["repo"].as_uri()}, "spec": spec})
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    deadline = time.monotonic() + 1800
    while not (api.project(pid).get("build") or {}).get("images"):
        assert api.project(pid)["phase"] not in ("failed", "cancelled"), api.project(pid)
        assert time.monotonic() < deadline, api.project(pid)
        time.sleep(2)
    build = api.project(pid)["build"]
    assert build["cache_hit"] is False, "the foreign tag must not be a cache hit"
    assert build["images"]["learner"] == learner  # the same inputs, the same tag: rebuilt
    api.call("POST", f"projects/{pid}/cancel")
