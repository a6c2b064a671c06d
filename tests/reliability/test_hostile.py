"""Hostile input against the real manager: repository URLs, event topics, authentication."""

from __future__ import annotations

import base64
import json
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import requests
from paho.mqtt.enums import CallbackAPIVersion

from flops_contracts.events import Component, Event, EventType
from flops_manager.adapters.mongo_store import MongoProjectStore
from flops_manager.identity import registry_access as access
from flops_manager.identity.registry_tokens import RegistryKeys
from flops_manager.ports.errors import PermanentError
from flops_manager.services.repo_url import check_repository_url
from tests.fixtures.mlflow_auth import PREFIXES, World, start_auth_mlflow
from tests.fixtures.podman import serve_registry, token_auth_config
from tests.fixtures.repos import git_repo
from tests.fixtures.tools import require_tools
from tests.reliability.conftest import Scenario
from tests.reliability.harness import (
    ALICE,
    BOB,
    Stack,
    spec,
    wait_until,
)

pytestmark = pytest.mark.integration

DANGEROUS_URLS = [
    "ext::sh -c touch% /tmp/pwned",
    "ext::sh -c 'id > /tmp/pwned'",
    "fd::17",
    "--upload-pack=touch /tmp/pwned",
    "-u touch /tmp/pwned",
    "https://example.com/repo.git --upload-pack=touch /tmp/pwned",
    "ssh://-oProxyCommand=touch%20/tmp/pwned/x",
    "ssh://host/repo;touch /tmp/pwned",
    "git@-oProxyCommand=touch:/x",
    "http://example.com/repo.git",
    "ftp://example.com/repo.git",
    "file:///tmp/../etc",
    "/tmp/../etc/passwd",
    "https://user:secret@example.com/r.git",
    "https://example.com/r.git\n--upload-pack=x",
    "",
]
DANGEROUS_REFS = ["-x", "--upload-pack=touch /tmp/pwned", "--output=/tmp/x", "main..other",
                  "refs/heads/../../x", "a b", "main.lock", "@{-1}", "HEAD~1^{/x}"]


def create(stack: Stack, url: str, ref: str | None = None) -> requests.Response:
    repository: dict[str, Any] = {"url": url}
    if ref is not None:
        repository["ref"] = ref
    return stack.post("projects", {"repository": repository,
                                   "spec": {"training": {"rounds": 1}}})


def test_dangerous_repository_urls_rejected(stack: Stack, scenario: Scenario) -> None:
    scenario.declare("H9a", "repository URLs: ext::/fd:: transports, option injection "
                     "(--upload-pack, ssh://-o...), http/ftp, traversal, credentials, "
                     "refs starting with '-'",
                     "422 at submission naming the repository field; no project, no process")
    before = stack.get("projects", limit=100)["total"] if "total" in stack.get(
        "projects", limit=1) else None
    for url in DANGEROUS_URLS:
        response = create(stack, url)
        assert response.status_code == 422, (url, response.status_code, response.text)
        assert "repository" in response.text, (url, response.text)
    for ref in DANGEROUS_REFS:
        response = create(stack, "https://example.com/r.git", ref)
        assert response.status_code == 422, (ref, response.status_code, response.text)
    assert not Path("/tmp/pwned").exists()
    if before is not None:
        assert stack.get("projects", limit=1)["total"] == before
    # this manager allows local paths (embedded); one that does not rejects them
    for url in ("/srv/repo", "file:///srv/repo"):
        assert check_repository_url(url, allow_local=False) is not None
        assert check_repository_url(url, allow_local=True) is None
    scenario.observe(f"{len(DANGEROUS_URLS)} URLs and {len(DANGEROUS_REFS)} refs answered 422; "
                     "local paths refused when not allowed")


def test_symlink_escaping_checkout_fails_naming_builder(stack: Stack, tmp_path: Path,
                                                        scenario: Scenario) -> None:
    scenario.declare("H9b", "a repository with a symlink escaping the checkout",
                     "failed within 60 s; last_error names the builder and the symlink")
    repo = git_repo(tmp_path / "evil", {"model_manager.py": "class ModelManager: pass\n",
                                        "requirements.txt": ""})
    os.symlink("/etc/passwd", repo / "data.csv")
    import subprocess

    subprocess.run(["git", "add", "data.csv"], cwd=repo, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid", "commit",
                    "-qm", "link"], cwd=repo, check=True)
    started = time.monotonic()
    pid = create(stack, repo.as_uri()).json()["id"]
    project = stack.wait_final(pid, timeout=60)
    assert project["phase"] == "failed"
    assert "builder" in project["last_error"] and "symlink" in project["last_error"], project
    scenario.observe(f"failed in {time.monotonic() - started:.1f} s: "
                     f"{project['last_error'][:200]}")


def test_code_at_import_is_contained_in_the_builder(stack: Stack, tmp_path: Path,
                                                    scenario: Scenario) -> None:
    scenario.declare("H9c", "model_manager.py runs code at import (writes a file, exits hard)",
                     "runs only in the builder's smoke process; project failed naming the "
                     "builder within 120 s; the manager keeps answering")
    marker = tmp_path / "imported.txt"
    code = (f"import os\nopen({str(marker)!r}, 'a').write(str(os.getpid()) + ' ' + "
            "str(os.getppid()) + '\\n')\nos._exit(7)\n")
    repo = git_repo(tmp_path / "hostile", {"model_manager.py": code, "requirements.txt": ""})
    manager_pid = stack.manager.popen.pid if stack.manager.popen else -1
    started = time.monotonic()
    pid = create(stack, repo.as_uri()).json()["id"]
    project = stack.wait_final(pid, timeout=120)
    assert project["phase"] == "failed", project
    assert "builder" in project["last_error"], project["last_error"]
    runs = [line.split() for line in marker.read_text().splitlines()]
    assert runs and all(int(p) != manager_pid for p, _ in runs), runs
    assert requests.get(f"{stack.api_url}/ready", headers=ALICE, timeout=10).status_code == 200
    assert stack.manager.popen is not None and stack.manager.popen.poll() is None
    scenario.observe(f"failed in {time.monotonic() - started:.1f} s: "
                     f"{project['last_error'][:160]}; import ran in {len(runs)} builder "
                     "process(es), never in the manager")


# -- events ------------------------------------------------------------------------------

def _publish(stack: Stack, messages: list[tuple[str, bytes]]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="hostile-" + uuid.uuid4().hex[:6],
                         protocol=mqtt.MQTTv311)
    client.connect("127.0.0.1", stack.broker.port)
    client.loop_start()
    try:
        for topic, payload in messages:
            info = client.publish(topic, payload, qos=1)
            info.wait_for_publish(timeout=30)
            assert info.is_published(), f"broker did not acknowledge {topic[:80]}"
    finally:
        client.disconnect()
        client.loop_stop()


def test_hostile_events_rejected_and_listener_survives(stack: Stack, scenario: Scenario,
                                                      cleanup_projects: list[str]) -> None:
    scenario.declare("H10", "event topics: traversal/wildcard names, 8 MB messages, garbage, "
                     "an event naming project A on project B's topic, another user's project",
                     "each rejected and recorded as a rejected event; the listener keeps "
                     "ingesting valid events; neither project changes")
    # two projects of different users that stay in 'building' (the repository never resolves)
    a = stack.create("https://invalid.invalid/a/repo.git", {"training": {"rounds": 1}})
    b = stack.post("projects", {"repository": {"url": "https://invalid.invalid/b/repo.git"},
                                "spec": {"training": {"rounds": 1}}}, headers=BOB).json()["id"]
    cleanup_projects.extend([a, b])
    store = MongoProjectStore(f"mongodb://127.0.0.1:{stack.db.port}", db_name="flops")
    try:
        before = len(store.list_rejected_events(limit=10000))
        evil = Event(project_id=a, component=Component.AGGREGATOR, instance="x0",
                     event=EventType.COMPLETED, data={"model_uri": "models:/stolen/1"})
        big = Event(project_id=b, component=Component.AGGREGATOR, instance="x0",
                    event=EventType.ROUND_COMPLETED, data={"round": 1, "pad": "x" * 8_000_000})
        messages = [
            (f"flops/v1/projects/../{a}/aggregator/x0/events", evil.to_json().encode()),
            (f"flops/v1/projects/{a}/aggregator/..%2F..%2Fx/events", evil.to_json().encode()),
            (f"flops/v1/projects/{b}/aggregator/x0/events", evil.to_json().encode()),
            (f"flops/v1/projects/{b}/aggregator/x0/events", b"\x00\xff{not json" * 1000),
            (f"flops/v1/projects/{b}/aggregator/x0/events", b"{" * 8_000_000),
            (f"flops/v1/projects/{b}/aggregator/x0/events", big.to_json().encode()),
            (f"flops/v1/projects/{b}/nosuch/x0/events", b"{}"),
        ]
        _publish(stack, messages)
        # a valid event afterwards is still ingested: the listener survived
        ok = Event(project_id=b, component=Component.BUILDER, instance=f"{b}-builder-9",
                   event=EventType.LOG, data={"message": "after the hostile ones"})
        _publish(stack, [(f"flops/v1/projects/{b}/builder/{b}-builder-9/events",
                          ok.to_json().encode())])
        wait_until(lambda: any(e["event"]["event_id"] == ok.event_id for e in stack.get(
                   f"projects/{b}/events", headers=BOB, limit=1000)["items"]),
                   timeout=30, what="the valid event after the hostile ones to be stored")
        # events arrive over the shared subscription: only the manager's list is checked
        rejected = wait_until(
            lambda: (len(r := store.list_rejected_events(limit=10000)) - before
                     >= len(messages) - 1) and r, timeout=30,
            what="the hostile messages recorded as rejected events")
        new = rejected[before:]
        reasons = [r.reason for r in new]
        assert any("does not match" in r for r in reasons), reasons
        for pid, headers in ((a, ALICE), (b, BOB)):
            project = stack.get(f"projects/{pid}", headers=headers)
            assert project["phase"] in ("submitted", "building", "failed"), project
            assert project["model"] is None, project
            ids = [e["event"]["event_id"] for e in stack.get(
                f"projects/{pid}/events", headers=headers, limit=1000)["items"]]
            assert evil.event_id not in ids
        big_ids = [e["event"]["event_id"] for e in stack.get(
            f"projects/{b}/events", headers=BOB, limit=1000)["items"]]
        stored_big = big.event_id in big_ids
        assert requests.get(f"{stack.api_url}/ready", headers=ALICE, timeout=10).ok
        assert all(len(r.payload) <= 4096 for r in new)
    finally:
        store.close()
    kinds = "; ".join(sorted(set(reasons)))[:300]
    scenario.observe(f"{len(new)} rejected events recorded ({kinds}); "
                     f"8 MB well-formed event {'stored' if stored_big else 'rejected'}; "
                     "valid event after them ingested")


def test_forged_steering_events_and_enrollments_are_rejected_and_shown_to_the_owner(
    stack: Stack, scenario: Scenario, cleanup_projects: list[str]
) -> None:
    scenario.declare("H12", "a learner claims the builder's result (a 'completed' with images "
                     "of its choosing) on its own topic; enrollment with a garbage token, a "
                     "token of an unknown grant and a claim for another project",
                     "each stored as rejected with the reason; enrollments answer 401; the "
                     "project does not move; its owner (only) reads them with "
                     "events?rejected=true")
    a = stack.create("https://invalid.invalid/a/repo.git", {"training": {"rounds": 1}})
    cleanup_projects.append(a)
    forged = Event(project_id=a, component=Component.LEARNER, instance="l0",
                   event=EventType.COMPLETED,
                   data={"images": {"learner": "attacker/learner:1",
                                    "aggregator": "attacker/aggregator:1"}})
    _publish(stack, [(f"flops/v1/projects/{a}/learner/l0/events", forged.to_json().encode())])
    answers = [requests.post(f"{stack.base}/enroll", timeout=10, json=body).status_code
               for body in ({"token": "garbage", "project_id": a, "role": "learners"},
                            {"token": f"fe1.{a}.nosuchgrant.x", "project_id": a,
                             "role": "builder"})]
    assert answers == [401, 401], answers
    rejected = wait_until(lambda: len(r := stack.get(f"projects/{a}/events", rejected="true",
                                                     limit=100)["rejected"]) >= 3 and r,
                          timeout=30, what="the forged event and enrollments recorded")
    reasons = [r["reason"] for r in rejected]
    assert any("learner may not send 'images'" in r for r in reasons), reasons
    assert sum(r["topic"] == "api:POST /api/v1/enroll" for r in rejected) == 2, rejected
    project = stack.get(f"projects/{a}")
    assert project["phase"] in ("submitted", "building", "failed"), project
    assert not (project.get("build") or {}).get("images"), project
    other = requests.get(f"{stack.base}/projects/{a}/events", params={"rejected": "true"},
                         headers=BOB, timeout=10)
    assert other.status_code == 404
    scenario.observe(f"{len(rejected)} refusals shown to the owner ({'; '.join(reasons)[:200]}); "
                     f"enrollments answered {answers}; another user gets 404")


def test_mlflow_of_another_owner_or_project_is_refused(
    scenario: Scenario, tmp_path: Path
) -> None:
    scenario.declare("H14", "MLflow with the compose suite's basic-auth app: bob's login reads "
                     "alice's experiment, run and model (client API and the UI's /ajax-api); "
                     "anonymous reads; alice's aggregator writes bob's experiment and model; "
                     "alice's aggregator squats the names of bob's next project (forged owner "
                     "tag); an ended project's aggregator login",
                     "403 for another owner's or project's resources, 401 anonymous and after "
                     "the project's end; squatted names refused to bob with a clear message, "
                     "never granted")
    server = start_auth_mlflow(tmp_path)
    try:
        world = World(server)
        a = world.project("alice", "h13", "alice-h13")
        b = world.project("bob", "h13", "bob-h13")
        writer = world.component_login(a, "aggregator")
        made = world.run(writer, world.experiment_id(a)).json()["run"]
        assert world.version(writer, "alice-h13", made).status_code == 200
        bob = world.owner_login("tok-bob")
        reads = [("/experiments/get", {"experiment_id": world.experiment_id(a)}),
                 ("/runs/get", {"run_id": made["info"]["run_id"]}),
                 ("/model-versions/get", {"name": "alice-h13", "version": "1"})]
        codes = {(who, prefix, path): world.call("GET", path, login, prefix=prefix,
                                                  params=params).status_code
                 for who, login in (("bob", bob), ("anonymous", None))
                 for prefix in PREFIXES for path, params in reads}
        assert {c for (who, _, _), c in codes.items() if who == "bob"} == {403}, codes
        assert {c for (who, _, _), c in codes.items() if who == "anonymous"} == {401}, codes
        cross = [world.run(writer, world.experiment_id(b)).status_code,
                 world.version(writer, "bob-h13", made).status_code]
        assert cross == [403, 403], cross
        forged = [{"key": "flops.owner", "value": "bob"}]
        world.call("POST", "/experiments/create", writer,
                   json={"name": "bob/flops-next", "tags": forged})
        with pytest.raises(PermanentError) as refused:
            world.project("bob", "next", None)
        world.enrollment.revoke(a.id)
        ended = world.run(writer, world.experiment_id(a)).status_code
        assert ended == 401
    finally:
        server.stop()
    scenario.observe(f"bob: {len(reads) * len(PREFIXES)} reads of alice's resources answered "
                     f"403, anonymous 401; alice's aggregator on bob's experiment and model: "
                     f"{cross}; squatted name: {refused.value.message}; after the end: {ended}")


# -- authentication -----------------------------------------------------------------------

def _operations(stack: Stack) -> list[tuple[str, str, dict[str, Any]]]:
    document = requests.get(f"{stack.api_url}/openapi.json", timeout=10).json()
    default = document.get("security")
    found = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                found.append((method, path, {**operation,
                                             "security": operation.get("security", default)}))
    return found


def test_every_endpoint_requires_a_valid_token(stack: Stack, scenario: Scenario,
                                               cleanup_projects: list[str]) -> None:
    scenario.declare("H11", "missing, malformed, unknown tokens and another user's token on "
                     "every operation of the OpenAPI document",
                     "401 without a valid token, 404 (never data) for another user's resources")
    secret_name = "alice-secret-" + uuid.uuid4().hex[:6]
    alice_url = f"https://invalid.invalid/{secret_name}/r.git"
    project = stack.post("projects", {"repository": {"url": alice_url},
                                      "spec": spec(name=secret_name)}).json()
    cleanup_projects.append(project["id"])
    ids = {"project_id": project["id"], "deployment_id": "d" + uuid.uuid4().hex[:15],
           "job_id": "j" + uuid.uuid4().hex[:15], "name": "x", "version": "1"}
    bad_headers = {
        "missing": {},
        "not bearer": {"Authorization": "Basic dG9rLWFsaWNlOng="},
        "empty bearer": {"Authorization": "Bearer "},
        "lowercase scheme": {"Authorization": "bearer tok-alice"},
        "unknown token": {"Authorization": "Bearer tok-mallory"},
        "token with junk": {"Authorization": "Bearer tok-alice\u0000x"},
        "huge token": {"Authorization": "Bearer " + "A" * 60_000},
    }
    operations = _operations(stack)
    checked = 0
    for method, path, operation in operations:
        url = stack.api_url + re.sub(r"\{(\w+)\}", lambda m: ids.get(m.group(1), "x"), path)
        open_operation = operation.get("security") == []
        for label, headers in bad_headers.items():
            try:
                response = requests.request(method, url, headers=headers, json={},
                                            timeout=30, stream=True)
            except requests.exceptions.InvalidHeader:
                continue  # the client refuses to send it: nothing reaches the server
            status = response.status_code
            response.close()
            if open_operation:
                assert status < 500, (method, path, label, status)
            elif label == "token with junk":
                # a control character makes the header itself invalid HTTP: the server
                # refuses the request before any handler (or the authenticator) sees it
                assert status in (400, 401), (method, path, label, status)
            else:
                assert status in (401, 431), (method, path, label, status)
            checked += 1
        if open_operation:
            continue
        response = requests.request(method, url, headers=BOB, json={}, timeout=30, stream=True)
        body = response.raw.read(200_000, decode_content=True).decode(errors="replace")
        response.close()
        assert response.status_code < 500, (method, path, response.status_code, body[:300])
        leaked = [s for s in (secret_name, '"alice"', alice_url) if s in body]
        assert not leaked, (method, path, leaked, body[:300])
        if "{project_id}" in path:
            assert response.status_code in (404, 422), (method, path, response.status_code)
        checked += 1
    # alice still sees her project unchanged (bob's POST/DELETE did nothing)
    mine = stack.project(project["id"])
    assert mine["phase"] not in ("cancelled",) and not mine.get("deleting"), mine
    scenario.observe(f"{len(operations)} operations x {len(bad_headers) + 1} credentials: "
                     f"{checked} requests; 401 without a valid token, 404 for bob on alice's "
                     "project, nothing of alice's in bob's answers")


def test_data_server_process_rejects_traversal_and_foreign_tokens(
        tmp_path: Path, scenario: Scenario) -> None:
    scenario.declare("H10b", "data server process: traversal tag and data set names, no token, "
                     "another project's token, a 64 MB upload",
                     "every request refused with a clear error; nothing written outside its "
                     "root; the server keeps serving")
    import subprocess
    import sys

    import pyarrow as pa

    from flops_dataplane.client import DataClient
    from flops_dataplane.errors import DataPlaneError
    from tests.fixtures.servers import free_port, port_open

    port = free_port()
    root = tmp_path / "root"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOPS_")}
    env.update({"FLOPS_DATA_ROOT_DIR": str(root), "FLOPS_DATA_PORT": str(port),
                "FLOPS_DATA_TOKEN": "project-a-token"})
    log = (tmp_path / "data.log").open("wb")
    server = subprocess.Popen([sys.executable, "-m", "flops_dataplane.server"], env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    location = f"grpc://127.0.0.1:{port}"
    try:
        wait_until(lambda: port_open(port), timeout=30, what="the data server's port")
        table = pa.table({"x": [1, 2, 3]})
        refused: list[str] = []
        for token in (None, "", "project-b-token"):
            with DataClient(location, token=token or "") as client:
                with pytest.raises(DataPlaneError) as info:
                    client.upload(table, "tag", "name")
                refused.append(str(info.value)[:80])
        with DataClient(location, token="project-a-token") as client:
            for tag, name in (("../escape", "n"), ("t", "../../escape"), ("/abs", "n"),
                              ("t", "a/b"), ("t\x00", "n"), ("..", "n")):
                with pytest.raises(DataPlaneError, match="invalid"):
                    client.upload(table, tag, name)
            big = pa.table({"x": pa.array([b"x" * 1024] * 65536, type=pa.binary())})
            client.upload(big, "tag", "big")  # a large upload is streamed, not held in memory
            client.upload(table, "tag", "small")
            assert {m["name"] for m in client.list(["tag"])} == {"big", "small"}
        escaped = list(tmp_path.rglob("*escape*"))
        assert not escaped, escaped
        assert server.poll() is None, "the data server died"
    finally:
        server.terminate()
        server.wait(10)
        log.close()
    scenario.observe(f"refused without/with a foreign token ({refused[0]}...), 6 traversal "
                     "names refused, 64 MB upload stored, server alive")


def test_very_large_repository_times_out_with_a_clear_message(
        tmp_path: Path, scenario: Scenario) -> None:
    scenario.declare("H9d", "a very large repository (96 MB of incompressible data); the image "
                     "builder run directly with FLOPS_GIT_TIMEOUT_S=0.2",
                     "the builder fails within 60 s with a 'timed out' message naming the git "
                     "step, reported as a failed event; nothing left in its cache")
    import subprocess
    import sys

    repo = tmp_path / "big"
    repo.mkdir()
    for index in range(3):
        (repo / f"blob{index}.bin").write_bytes(os.urandom(32 * 1024 * 1024))
    git_repo_files = {"model_manager.py": "class ModelManager: pass\n", "requirements.txt": ""}
    for name, text in git_repo_files.items():
        (repo / name).write_text(text)
    base = ["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid",
            "-c", "core.compression=0"]
    subprocess.run([*base, "init", "-q"], cwd=repo, check=True)
    subprocess.run([*base, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*base, "commit", "-qm", "big"], cwd=repo, check=True)
    events = tmp_path / "events.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOPS_")}
    env.update({"FLOPS_PROJECT_ID": "pbig0000000000001", "FLOPS_REPOSITORY_URL": repo.as_uri(),
                "FLOPS_ALLOW_LOCAL": "true", "FLOPS_CACHE_DIR": str(tmp_path / "cache"),
                "FLOPS_TARGET": "environment", "FLOPS_GIT_TIMEOUT_S": "0.2",
                "FLOPS_EVENTS_URI": events.as_uri()})
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "image_builder"], env=env, timeout=60,
                          capture_output=True, text=True, check=False)
    took = time.monotonic() - started
    assert done.returncode != 0, done.stdout[-2000:]
    failed = [json.loads(line) for line in events.read_text().splitlines()
              if json.loads(line)["event"] == "failed"]
    assert failed, events.read_text()[-2000:]
    message = str(failed[-1]["data"].get("message") or failed[-1]["data"])
    assert "timed out" in message and "git" in message, message
    checkouts = list((tmp_path / "cache").rglob("blob0.bin"))
    assert not checkouts, checkouts
    scenario.observe(f"builder exited {done.returncode} after {took:.1f} s: {message[:160]}; "
                     "no size cap exists, only the per-command git timeout (default 300 s, "
                     "not settable through the manager)")


# -- the registry ---------------------------------------------------------------------------

def test_registry_refuses_anonymous_forged_and_foreign_logins(
    stack: Stack, scenario: Scenario, tmp_path: Path
) -> None:
    require_tools(("docker-registry",), "run scripts/setup_containers.sh")
    scenario.declare("H13", "the registry (docker-registry with the manager as its token "
                     "server): anonymous push, pull and delete; a forged and a foreign-signed "
                     "project login; malformed scopes; user B's API token asking for user A's "
                     "images; an API token asking to delete",
                     "the registry answers 401 to anonymous requests and the token endpoint "
                     "refuses them; forged logins 401 (recorded as rejected events); malformed "
                     "scope 422; B's token grants nothing of A's, so the registry refuses B's "
                     "push and pull; no user token carries delete")
    token_url = f"{stack.base}/registry/token"
    forged = requests.get(token_url, params={"service": "flops-registry"}, timeout=10,
                          auth=("flops-builder.p0", "garbage"))  # also makes the key, if new
    assert forged.status_code == 401, forged.text
    cert = stack.dir / "data" / "registry-token" / "cert.pem"
    alice = access.owner_namespace("flops", "alice")
    with serve_registry(tmp_path, auth=token_auth_config(realm=token_url, cert=cert)) as address:
        repo = f"http://{address}/v2/{alice}/r/learner"
        anonymous = [requests.post(f"{repo}/blobs/uploads/", timeout=10).status_code,
                     requests.get(f"{repo}/manifests/1", timeout=10).status_code,
                     requests.delete(f"{repo}/manifests/sha256:{'0' * 64}",
                                     timeout=10).status_code,
                     requests.get(token_url, timeout=10, params={
                         "service": "flops-registry",
                         "scope": f"repository:{alice}/r/learner:pull"}).status_code]
        assert anonymous == [401, 401, 401, 401], anonymous
        evil = RegistryKeys(tmp_path / "evil", issuer="flops-manager")
        foreign = evil.login(project_id="p0", role="builder", kind="builder", now=time.time(),
                             ttl_s=600)
        foreign_status = requests.get(token_url, params={"service": "flops-registry"},
                                      auth=foreign, timeout=10).status_code
        assert foreign_status == 401
        bad_scope = requests.get(token_url, auth=("bob", "tok-bob"), timeout=10, params={
            "service": "flops-registry", "scope": "repository:../../etc:pull"})
        assert bad_scope.status_code == 422 and "invalid repository name" in bad_scope.text

        def token(user: str, password: str, scope: str) -> tuple[str, list[Any]]:
            answer = requests.get(token_url, auth=(user, password), timeout=10, params={
                "service": "flops-registry", "scope": scope})
            assert answer.status_code == 200, answer.text
            text = answer.json()["token"]
            claims = json.loads(base64.urlsafe_b64decode(text.split(".")[1] + "=="))
            return text, claims["access"]

        bob_token, bob_access = token("bob", "tok-bob", f"repository:{alice}/r/learner:pull,push")
        assert bob_access == []
        with_bob = {"Authorization": f"Bearer {bob_token}"}
        bob_statuses = [requests.post(f"{repo}/blobs/uploads/", headers=with_bob,
                                      timeout=10).status_code,
                        requests.get(f"{repo}/manifests/1", headers=with_bob,
                                     timeout=10).status_code]
        assert bob_statuses == [401, 401], bob_statuses
        _, alice_delete = token("alice", "tok-alice", f"repository:{alice}/r/learner:delete")
        assert alice_delete == []
        _, alice_pull = token("alice", "tok-alice", f"repository:{alice}/r/learner:pull,push")
        assert alice_pull == [{"type": "repository", "name": f"{alice}/r/learner",
                               "actions": ["pull"]}]
    store = MongoProjectStore(f"mongodb://127.0.0.1:{stack.db.port}", db_name="flops")
    recorded = [r for r in store.list_rejected_events(project_id="p0")
                if r.topic == "api:GET /api/v1/registry/token"]
    assert len(recorded) >= 2, recorded  # the forged and the foreign-signed login
    scenario.observe(f"anonymous registry/token requests {anonymous}; forged login 401, "
                     f"foreign-signed login {foreign_status}; malformed scope 422; bob's token "
                     f"on alice's images grants {bob_access}, registry answers {bob_statuses}; "
                     f"alice may pull, not push or delete her own; {len(recorded)} rejected "
                     "events stored for the named project")
