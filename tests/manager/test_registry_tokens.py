"""The registry's token server: scope rules (pure), token claims, logins through the API.

The API tests run the real Flask app with the in-memory store and orchestrator (the worker
creates the builder, enrollment hands out its login); tokens are decoded with the manager's
certificate as the registry does. The real registry's side:
tests/containers/test_registry_auth.py.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509

from flops_manager.identity import registry_access as access
from flops_manager.identity.registry_server import TOKEN_TOPIC, PullLogins
from flops_manager.identity.registry_tokens import RegistryKeys, libtrust_key_id
from flops_manager.services.mutate import mutate_project
from tests.manager.test_enrollment import REGISTRY_PASSWORD, SPEC, World, deploy_data

NS = "flops"
ALICE = access.owner_namespace(NS, "alice")
BOB = access.owner_namespace(NS, "bob")


def scope(name: str, actions: str = "pull,push") -> access.Scope:
    (parsed,) = access.parse_scopes([f"repository:{name}:{actions}"])
    return parsed


@pytest.mark.parametrize("identity, name, expected", [
    (access.RegistryIdentity("builder", "p/builder", owner="alice"), f"{ALICE}/r/learner",
     {"pull", "push"}),
    (access.RegistryIdentity("builder", "p/builder", owner="alice"), f"{BOB}/r/learner", set()),
    (access.RegistryIdentity("builder", "p/builder", owner="alice"), "flops/python", {"pull"}),
    (access.RegistryIdentity("owner", "alice", owner="alice"), f"{ALICE}/r/learner", {"pull"}),
    (access.RegistryIdentity("owner", "alice", owner="alice"), f"{BOB}/r/learner", set()),
    (access.RegistryIdentity("pull", "p/pull", repositories=frozenset({f"{ALICE}/r/learner"})),
     f"{ALICE}/r/learner", {"pull"}),
    (access.RegistryIdentity("pull", "p/pull", repositories=frozenset({f"{ALICE}/r/learner"})),
     f"{ALICE}/other/learner", set()),
    (access.RegistryIdentity("admin", "admin"), f"{BOB}/r/learner", {"pull", "push", "delete"}),
    (access.RegistryIdentity("edge", "edge"), f"{BOB}/r/learner", {"pull"}),
    (access.RegistryIdentity("edge", "edge"), "flops/python", {"pull"}),
])
def test_scope_rules(identity: access.RegistryIdentity, name: str, expected: set[str]) -> None:
    granted = access.granted(identity, [scope(name, "pull,push,delete")], namespace=NS)
    assert {a for s in granted for a in s.actions} == expected


def test_only_admin_gets_delete_or_non_repository_scopes() -> None:
    builder = access.RegistryIdentity("builder", "p/builder", owner="alice")
    assert access.granted(builder, [scope(f"{ALICE}/r/l", "delete")], namespace=NS) == []
    (catalog,) = access.parse_scopes(["registry:catalog:*"])
    assert access.granted(builder, [catalog], namespace=NS) == []
    admin = access.RegistryIdentity("admin", "admin")
    assert access.granted(admin, [catalog], namespace=NS) == [catalog]


@pytest.mark.parametrize("bad", ["repository", "repository:x", "repository::pull",
                                 "repository:UPPER/case:pull", "repository:a/../b:pull",
                                 " ".join(["repository:a:pull"] * 40)])
def test_malformed_scopes_are_refused(bad: str) -> None:
    with pytest.raises(access.ScopeError):
        access.parse_scopes([bad])


def test_names_paths_and_recorded_digests() -> None:
    assert ALICE.startswith("flops/owners/o-alice-") and ALICE != BOB
    assert access.owner_component("42")[0].isalpha()  # valid as an image path component
    assert access.repository_path("reg:5000", "reg:5000/flops/x/learner:t") == "flops/x/learner"
    assert access.repository_path("reg:5000/team", "reg:5000/team/flops/x@sha256:ab") == \
        "team/flops/x"
    assert access.registry_prefix("reg:5000/team", "flops") == "team/flops"
    build = {"images": {"learner": "reg:5000/flops/x/learner:t"},
             "variants": {"learner": {"linux/amd64": "reg:5000/flops/x/learner@sha256:1"}}}
    assert access.project_repositories("reg:5000", build) == {"flops/x/learner"}
    assert access.trusted_images([build, None, {}]) == ["reg:5000/flops/x/learner@sha256:1"]


def test_token_claims_and_the_key_id_distribution_matches(tmp_path: Path) -> None:
    keys = RegistryKeys(tmp_path, issuer="iss")
    claims = access.token_claims(issuer="iss", service="svc", subject="p/builder",
                                 access=[scope("flops/a")], now=1000.4, ttl_s=300, jti="j")
    assert claims == {"iss": "iss", "sub": "p/builder", "aud": "svc", "exp": 1300, "nbf": 999,
                      "iat": 1000, "jti": "j", "access": [
                          {"type": "repository", "name": "flops/a", "actions": ["pull", "push"]}]}
    token = keys.sign(claims)
    header = jwt.get_unverified_header(token)
    cert = x509.load_pem_x509_certificate(keys.cert_path.read_bytes())
    assert header["alg"] == "ES256"
    assert header["kid"] == libtrust_key_id(cert.public_key())  # type: ignore[arg-type]
    assert len(header["kid"]) == 59 and header["kid"].count(":") == 11
    assert RegistryKeys(tmp_path, issuer="iss").key_id == keys.key_id  # loaded, not remade
    assert (tmp_path / "key.pem").stat().st_mode & 0o077 == 0


# ------------------------------------------------------------------ through the API


def basic(username: str, password: str) -> dict[str, str]:
    text = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {text}"}


def ask(world: World, headers: dict[str, str] | None, *scopes: str,
        service: str = "flops-registry") -> Any:
    query = "&".join([f"service={service}", *(f"scope={s}" for s in scopes)])
    return world.client.get(f"/api/v1/registry/token?{query}", headers=headers or {})


def access_of(world: World, answer: Any) -> dict[str, list[str]]:
    assert answer.status_code == 200, answer.get_json()
    cert = x509.load_pem_x509_certificate(
        world.enrollment.registry_keys.get().cert_path.read_bytes())
    claims = jwt.decode(answer.get_json()["token"], cert.public_key(),  # type: ignore[arg-type]
                        algorithms=["ES256"], audience="flops-registry", issuer="flops-manager",
                        options={"verify_exp": False, "verify_nbf": False,
                                 "verify_iat": False})
    return {e["name"]: e["actions"] for e in claims["access"]}


@pytest.fixture()
def world() -> World:
    return World(build_target="image")


def builder_login(world: World) -> tuple[str, str, str]:
    pid = deploy_data(world)
    creds = world.enroll(world.env(f"{pid}-builder")).get_json()["env"]
    return pid, creds["FLOPS_REGISTRY_USERNAME"], creds["FLOPS_REGISTRY_PASSWORD"]


def test_a_builder_login_pushes_only_below_its_owner(world: World) -> None:
    pid, user, password = builder_login(world)
    namespace = world.env(f"{pid}-builder")["FLOPS_IMAGE_NAMESPACE"]
    assert namespace == ALICE
    login = basic(user, password)
    got = access_of(world, ask(world, login, f"repository:{ALICE}/r/learner:push,pull",
                               f"repository:{BOB}/r/learner:pull,push",
                               f"repository:{ALICE}/r/learner:delete"))
    assert got == {f"{ALICE}/r/learner": ["pull", "push"]}


@pytest.mark.parametrize("headers, reason", [
    (None, "anonymous"),
    (basic("flops-builder.x", "not-a-login"), "invalid or expired"),
    (basic("someone", "wrong"), "unknown registry login"),
])
def test_anonymous_and_unknown_logins_are_refused(world: World, headers: Any,
                                                  reason: str) -> None:
    answer = ask(world, headers, f"repository:{ALICE}/r/learner:pull")
    assert answer.status_code == 401 and reason in answer.get_json()["message"]


def test_bad_requests_get_a_4xx_with_the_reason(world: World) -> None:
    _, user, password = builder_login(world)
    assert "unknown service" in ask(world, basic(user, password), service="other").get_json()[
        "message"]
    answer = ask(world, basic(user, password), "repository:../etc:pull")
    assert answer.status_code == 422 and "invalid repository name" in answer.get_json()["message"]


def test_a_login_dies_with_its_project_and_at_its_expiry(world: World) -> None:
    pid, user, password = builder_login(world)
    assert access_of(world, ask(world, basic(user, password), f"repository:{ALICE}/r/l:pull"))
    world.projects.cancel(pid, owner="alice")
    world.run(pid)
    answer = ask(world, basic(user, password), f"repository:{ALICE}/r/l:pull")
    assert answer.status_code == 401 and "has ended" in answer.get_json()["message"]
    assert any(r.topic == TOKEN_TOPIC for r in world.store.list_rejected_events(project_id=pid))
    other = World(build_target="image")
    _, user, password = builder_login(other)
    other.clock.now += other.settings.registry_login_ttl_s + 1
    assert ask(other, basic(user, password), "repository:flops/python:pull").status_code == 401


def test_pull_logins_reach_only_the_project_s_images_and_owners_their_own(world: World) -> None:
    pid, _, _ = builder_login(world)
    learner = f"127.0.0.1:5005/{ALICE}/r/learner:t"
    mutate_project(world.store, pid, lambda p: p.replace(build={"images": {"learner": learner}}),
                   now=1.0)
    pull = PullLogins(world.enrollment.registry_keys, world.settings, clock=world.clock)
    assert pull("elsewhere.io/x:1", pid) is None
    assert pull(learner, None) == {"username": "admin", "password": REGISTRY_PASSWORD}
    found = pull(learner, pid)
    assert found is not None
    login = basic(found["username"], found["password"])
    got = access_of(world, ask(world, login, f"repository:{ALICE}/r/learner:pull,push",
                               f"repository:{ALICE}/other/learner:pull"))
    assert got == {f"{ALICE}/r/learner": ["pull"]}
    owner = access_of(world, ask(world, basic("alice", "tok-alice"),
                                 f"repository:{ALICE}/other/learner:pull,push",
                                 f"repository:{BOB}/r/learner:pull"))
    assert owner == {f"{ALICE}/other/learner": ["pull"]}
    admin = access_of(world, ask(world, basic("admin", REGISTRY_PASSWORD),
                                 f"repository:{BOB}/r/learner:delete"))
    assert admin == {f"{BOB}/r/learner": ["delete"]}
    # an ended project's pull login works only while a service its owner deployed on its own
    # (an inference server) runs
    world.projects.cancel(pid, owner="alice")
    world.run(pid)
    assert ask(world, login, f"repository:{ALICE}/r/learner:pull").status_code == 401

    def standalone(project: Any) -> Any:
        return project.replace(grants={"g": {"standalone": True, "revoked": False}})

    mutate_project(world.store, pid, standalone, now=2.0)
    assert access_of(world, ask(world, login, f"repository:{ALICE}/r/learner:pull")) == {
        f"{ALICE}/r/learner": ["pull"]}


def test_builders_get_the_digests_recorded_for_their_owner_s_builds_of_the_repository(
        world: World) -> None:
    first = world.project()
    recorded = f"127.0.0.1:5005/{ALICE}/r/learner@sha256:{'a' * 64}"
    mutate_project(world.store, first, lambda p: p.replace(build={
        "images": {"learner": f"127.0.0.1:5005/{ALICE}/r/learner:t"},
        "variants": {"learner": {"linux/amd64": recorded}}}), now=1.0)
    second = world.project()
    world.run(second)
    assert json.loads(world.env(f"{second}-builder")["FLOPS_TRUSTED_IMAGES"]) == [recorded]
    other_repo = world.projects.create(owner="alice", spec=SPEC,
                                       repository={"url": "https://h/u/other"}).id
    world.run(other_repo)
    assert json.loads(world.env(f"{other_repo}-builder")["FLOPS_TRUSTED_IMAGES"]) == []
    bobs = world.projects.create(owner="bob", spec=SPEC, repository={"url": "https://h/u/r"}).id
    world.run(bobs)
    bob_env = world.env(f"{bobs}-builder")
    assert json.loads(bob_env["FLOPS_TRUSTED_IMAGES"]) == []
    assert bob_env["FLOPS_IMAGE_NAMESPACE"] == BOB
