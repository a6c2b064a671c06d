"""The registry with the manager as its token server: real docker-registry, buildah, HTTP.

A docker-registry (CNCF distribution 2.8) is configured like the compose suite's: token
authentication whose realm is a running manager (the real Flask app on a loopback port,
in-memory store) and whose root certificate is the manager's. Logins are what FLOps hands
out: the admin login, a builder's enrollment login, a project's pull login.
"""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import docker  # type: ignore[import-untyped]
import docker.errors  # type: ignore[import-untyped]
import pytest
import requests
from werkzeug.serving import make_server

from flops_contracts.errors import FlopsError
from flops_manager.adapters.docker_orchestrator import DockerOrchestrator
from flops_manager.identity import registry_access as access
from flops_manager.identity.registry_server import PullLogins
from flops_manager.lifecycle.state import Project
from flops_manager.ports.orchestrator import ServiceSpec
from flops_manager.services.mutate import mutate_project
from image_builder.outcome import BuildError
from image_builder.registry_client import RegistryClient
from tests.fixtures.podman import podman_service, serve_registry, token_auth_config
from tests.fixtures.servers import free_port
from tests.manager.test_enrollment import REGISTRY_PASSWORD, World, deploy_data

pytestmark = pytest.mark.integration

ADMIN = ("admin", REGISTRY_PASSWORD)


class Stack:
    """A manager serving HTTP and a registry that trusts it."""

    def __init__(self, world: World, registry: str) -> None:
        self.world = world
        self.registry = registry
        self.alice = access.owner_namespace("flops", "alice")
        self.bob = access.owner_namespace("flops", "bob")

    def builder_login(self) -> tuple[str, tuple[str, str]]:
        pid = deploy_data(self.world)
        env = self.world.enroll(self.world.env(f"{pid}-builder")).get_json()["env"]
        return pid, (env["FLOPS_REGISTRY_USERNAME"], env["FLOPS_REGISTRY_PASSWORD"])


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("token-registry")
    manager_port, registry_port = free_port(), free_port()
    world = World(clock=time.time, build_target="image", registry=f"127.0.0.1:{registry_port}",
                  registry_key_dir=str(root / "keys"))
    keys = world.enrollment.registry_keys.get()
    server = make_server("127.0.0.1", manager_port, world.client.application, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    auth = token_auth_config(realm=f"http://127.0.0.1:{manager_port}/api/v1/registry/token",
                             cert=keys.cert_path)
    try:
        with serve_registry(root, port=registry_port, auth=auth) as address:
            yield Stack(world, address)
    finally:
        server.shutdown()
        thread.join()


def push(image: str, ref: str, login: tuple[str, str] | None,
         tmp: Path) -> subprocess.CompletedProcess[str]:
    """``buildah push`` with ``login`` (``None``: anonymous) in a private auth file."""
    argv = ["buildah", "push", "--tls-verify=false"]
    if login is not None:
        auth = tmp / "auth.json"
        token = base64.b64encode(f"{login[0]}:{login[1]}".encode()).decode()
        auth.write_text(json.dumps({"auths": {ref.split("/", 1)[0]: {"auth": token}}}))
        argv += ["--authfile", str(auth)]
    else:
        argv += ["--authfile", str(tmp / "none.json")]
        (tmp / "none.json").write_text('{"auths": {}}')
    return subprocess.run([*argv, image, f"docker://{ref}"], capture_output=True, text=True,
                          timeout=300)


def digest_of(stack: Stack, login: tuple[str, str], path: str) -> str | None:
    client = RegistryClient(tls_verify=False, credentials=login)
    try:
        found = client.variants(f"{stack.registry}/{path}:1")
    finally:
        client.close()
    return None if found is None else next(iter(found.values()))


def test_anonymous_push_pull_and_delete_are_refused(stack: Stack, tiny_image: str,
                                                    tmp_path: Path) -> None:
    out = push(tiny_image, f"{stack.registry}/{stack.alice}/anon/learner:1", None, tmp_path)
    assert out.returncode != 0 and "unauthorized" in (out.stderr + out.stdout).lower()
    base = f"http://{stack.registry}/v2/{stack.alice}/anon/learner"
    assert requests.post(f"{base}/blobs/uploads/", timeout=10).status_code == 401
    assert requests.delete(f"{base}/manifests/sha256:{'0' * 64}", timeout=10).status_code == 401
    assert requests.get(f"{base}/manifests/1", timeout=10).status_code == 401
    # the token endpoint itself refuses anonymous requests, whatever they ask for
    realm = requests.get(f"http://{stack.registry}/v2/", timeout=10).headers["WWW-Authenticate"]
    assert "/api/v1/registry/token" in realm


def test_builder_pushes_its_owner_s_images_only_and_cannot_delete(
        stack: Stack, tiny_image: str, tmp_path: Path) -> None:
    _, login = stack.builder_login()
    mine = f"{stack.alice}/repo-1/learner"
    assert push(tiny_image, f"{stack.registry}/{mine}:1", login, tmp_path).returncode == 0
    assert digest_of(stack, login, mine)
    foreign = push(tiny_image, f"{stack.registry}/{stack.bob}/repo-1/learner:1", login,
                   tmp_path)
    assert foreign.returncode != 0
    shared = push(tiny_image, f"{stack.registry}/flops/python:1", login, tmp_path)
    assert shared.returncode != 0, "only the admin login pushes shared images"
    # delete: the builder's token never carries the action, so the registry refuses
    assert _delete(stack, login, mine) == 401
    assert _delete(stack, ADMIN, mine) == 202


def _delete(stack: Stack, login: tuple[str, str], path: str) -> int:
    """DELETE the manifest of ``path:1`` with a token for ``login`` (scope with delete)."""
    admin = RegistryClient(tls_verify=False, credentials=ADMIN)
    try:
        found = admin.variants(f"{stack.registry}/{path}:1") or {}
    finally:
        admin.close()
    digest = next(iter(found.values()))
    realm = requests.get(f"http://{stack.registry}/v2/", timeout=10).headers["WWW-Authenticate"]
    url = realm.split('realm="', 1)[1].split('"', 1)[0]
    answer = requests.get(url, params={"service": "flops-registry",
                                       "scope": f"repository:{path}:delete"},
                          auth=login, timeout=10)
    assert answer.status_code == 200, answer.text
    token = answer.json()["token"]
    return requests.delete(f"http://{stack.registry}/v2/{path}/manifests/{digest}",
                           headers={"Authorization": f"Bearer {token}"},
                           timeout=10).status_code


def test_a_pull_login_pulls_its_project_s_images_only_and_never_pushes(
        stack: Stack, tiny_image: str, tmp_path: Path) -> None:
    pid, _ = stack.builder_login()
    other_pid, _ = stack.builder_login()
    mine, theirs = f"{stack.alice}/p-mine/learner", f"{stack.alice}/p-theirs/learner"
    for path in (mine, theirs):
        assert push(tiny_image, f"{stack.registry}/{path}:1", ADMIN, tmp_path).returncode == 0
    for project, path in ((pid, mine), (other_pid, theirs)):
        record_image(stack, project, f"{stack.registry}/{path}:1")
    pull = PullLogins(stack.world.enrollment.registry_keys, stack.world.settings)(
        f"{stack.registry}/{mine}:1", pid)
    assert pull is not None
    login = (pull["username"], pull["password"])
    assert digest_of(stack, login, mine)
    with pytest.raises(BuildError, match="401"):
        digest_of(stack, login, theirs)
    out = push(tiny_image, f"{stack.registry}/{mine}:2", login, tmp_path)
    assert out.returncode != 0


def record_image(stack: Stack, project_id: str, ref: str) -> None:
    """Record ``ref`` as the project's learner image (as its builder's completion does)."""

    def change(project: Project) -> Project:
        return project.replace(build={"images": {"learner": ref}})

    mutate_project(stack.world.store, project_id, change, now=1.0)


def test_the_logins_of_an_ended_project_are_refused(stack: Stack, tiny_image: str,
                                                    tmp_path: Path) -> None:
    pid, login = stack.builder_login()
    path = f"{stack.alice}/ended/learner"
    assert push(tiny_image, f"{stack.registry}/{path}:1", login, tmp_path).returncode == 0
    stack.world.projects.cancel(pid, owner="alice")
    stack.world.run(pid)
    with pytest.raises(BuildError, match="token request answered 401"):
        digest_of(stack, login, path)
    assert push(tiny_image, f"{stack.registry}/{path}:2", login, tmp_path).returncode != 0


def test_the_docker_backend_pulls_with_a_pull_login_of_the_project(
        stack: Stack, base_image: str, tmp_path_factory: pytest.TempPathFactory,
        tmp_path: Path) -> None:
    """Podman's Docker API pulls with the X-Registry-Auth the backend gives; anonymous fails."""
    pid, _ = stack.builder_login()
    ref = f"{stack.registry}/{stack.alice}/pulled/learner:1"
    assert push(base_image, ref, ADMIN, tmp_path).returncode == 0
    record_image(stack, pid, ref)
    service = ServiceSpec(name=f"{pid}-learners", role="learners", image=ref, project_id=pid,
                          command=("python3", "-c", "print('pulled')"), one_shot=True)
    with podman_service(tmp_path_factory.mktemp("podman-token"), stack.registry) as sock:
        client = docker.DockerClient(base_url=f"unix://{sock}")
        try:
            with pytest.raises(FlopsError):
                DockerOrchestrator(client).create_service(service)
            backend = DockerOrchestrator(client, pull_login=PullLogins(
                stack.world.enrollment.registry_keys, stack.world.settings))
            backend.create_service(service)
            assert client.images.get(ref)
            backend.remove_service(service.name)
        finally:
            with contextlib.suppress(docker.errors.APIError):
                client.images.remove(ref, force=True)
            client.close()
