from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flops_manager.adapters.oakestra import addresses, names, sla
from flops_manager.adapters.oakestra.errors import InvalidSpecError
from flops_manager.adapters.oakestra.versions import OakestraVersion
from flops_manager.ports.errors import PermanentError
from flops_manager.ports.orchestrator import Resources, ServiceSpec

POOL = addresses.AddressPool()  # the default round-robin pool

DATA = Path(__file__).parent / "data"
SCHEMAS = {
    "develop": json.loads((DATA / "sla_schema.json").read_text()),
    "v0.4.400": json.loads((DATA / "sla_schema_v0.4.400.json").read_text()),
}
ADDONS = {"builder": ("image-builder",), "learners": ("FLOps-learner",)}


def validate_both(document: dict[str, Any]) -> None:
    for schema in SCHEMAS.values():
        jsonschema.validate(document, schema)


def spec(name: str, role: str, **kw) -> ServiceSpec:
    kw.setdefault("image", f"registry.example:5073/flops/{role}:abc123")
    kw.setdefault("command", ("python", "-m", f"flops.{role}"))
    return ServiceSpec(name=name, role=role, project_id="proj42", owner="alice", **kw)


def classic_project(pid: str = "proj42") -> list[ServiceSpec]:
    env = {"FLOPS_PROJECT_ID": pid, "FLOPS_SPEC": json.dumps({"training": {"rounds": 3}})}
    return [
        spec(f"{pid}-builder", "builder", env=env, one_shot=True, privileged=True,
             resources=Resources(memory_mb=4096, vcpus=2, storage_mb=20000)),
        spec(f"{pid}-aggregator", "aggregator", env=env, ports=(8080,),
             listen_env="FLOPS_LISTEN"),
        spec(f"{pid}-learners", "learners", env=env, instances=4,
             resources=Resources(memory_mb=2048, vcpus=0.5, vgpus=1)),
        spec(f"{pid}-inference-server", "inference_server", env=env, ports=(8080, 9090),
             public=True, command=()),
    ]


def hierarchical_project(pid: str = "proj42",
                         clusters=("clusterA", "edge-b", "c3")) -> list[ServiceSpec]:
    specs = [spec(f"{pid}-root-aggregator", "aggregator", ports=(8080,),
                  listen_env="FLOPS_LISTEN")]
    for cluster in clusters:
        specs.append(spec(f"{pid}-cluster-aggregator-{cluster}", "aggregator", cluster=cluster,
                          ports=(8081,), listen_env="FLOPS_LISTEN",
                          resources=Resources(memory_mb=1024, vcpus=1, vgpus=2)))
        specs.append(spec(f"{pid}-learners-{cluster}", "learners", cluster=cluster,
                          instances=3, resources=Resources(memory_mb=512, vcpus=1.5, vgpus=1)))
    return specs


def generate(specs, version=OakestraVersion.V0_4_411):
    options = sla.SlaOptions(version=version, addons=ADDONS)
    app = sla.application_ref("proj42", options, app_id="6b028662427be4af4d5de27f")
    addrs = POOL.allocate_many(app="proj42", services=[s.name for s in specs])
    return app, options, addrs


@pytest.mark.parametrize("version", list(OakestraVersion))
@pytest.mark.parametrize("project", [classic_project, hierarchical_project])
def test_generated_slas_validate_against_both_schemas(version, project):
    specs = project()
    app, options, addrs = generate(specs, version)
    validate_both(sla.application_sla(app, owner="alice"))
    for one in specs:
        document = sla.service_sla(one, app=app, rr_ip=addrs[one.name], options=options)
        validate_both(document)
        assert document["applications"][0]["applicationID"] == app.app_id
        (service,) = document["applications"][0]["microservices"]
        assert service["addresses"] == {"rr_ip": addrs[one.name]}
        assert service["code"] == one.image
        assert service["microserviceID"] == ""


def test_microservice_fields():
    specs = classic_project()
    app, options, addrs = generate(specs, OakestraVersion.V0_4_400)
    by_role = {s.role: sla.microservice(s, app=app, rr_ip=addrs[s.name], options=options)
               for s in specs}
    builder = by_role["builder"]
    assert builder["one_shot"] is True and builder["privileged"] is True
    assert (builder["memory"], builder["vcpus"], builder["storage"]) == (4096, 2, 20000)
    assert builder["constraints"] == [{"type": "addons", "needs": ["image-builder"]}]
    assert builder["cmd"] == ["python", "-m", "flops.builder"]
    assert builder["virtualization"] == "container"
    learners = by_role["learners"]
    assert (learners["vcpus"], learners["vgpus"]) == (1, 1)  # 0.5 vCPU rounded up
    aggregator = by_role["aggregator"]
    env = dict(e.split("=", 1) for e in aggregator["environment"])
    assert env["FLOPS_LISTEN"] == "0.0.0.0:8080"
    assert env["FLOPS_SERVICE_NAME"] == "proj42-aggregator"
    assert env["FLOPS_SERVICE_PORTS"] == "8080"
    assert "port" not in aggregator
    inference = by_role["inference_server"]
    assert inference["port"] == "8080:8080"
    assert "cmd" not in inference  # image entrypoint


def test_cluster_pinning_uses_direct_and_addons_only_on_v0_4_400():
    specs = hierarchical_project()
    for version in OakestraVersion:
        app, options, _addrs = generate(specs, version)
        learners = sla.microservice(specs[2], app=app, rr_ip=None, options=options)
        kinds = [c["type"] for c in learners["constraints"]]
        assert {"type": "direct", "cluster": "clusterA"} in learners["constraints"]
        assert ("addons" in kinds) == (version is OakestraVersion.V0_4_400)
        assert "clusters" not in kinds
        root = sla.microservice(specs[0], app=app, rr_ip=None, options=options)
        assert "constraints" not in root


@pytest.mark.parametrize("version", list(OakestraVersion))
def test_a_learner_on_a_flops_node_is_pinned_to_that_worker(version):
    """Appendix C, item 4: only ``direct`` with ``cluster`` and ``node`` pins one worker."""
    learner = spec("proj42-learners-1", "learners", cluster="edge-b", node="pi-kitchen")
    app, options, addrs = generate([learner], version)
    document = sla.service_sla(learner, app=app, rr_ip=addrs[learner.name], options=options)
    validate_both(document)
    (service,) = document["applications"][0]["microservices"]
    assert service["constraints"][0] == {"type": "direct", "cluster": "edge-b",
                                         "node": "pi-kitchen"}


@settings(max_examples=100, deadline=None)
@given(secrets=st.dictionaries(st.sampled_from(["FLOPS_MQTT_PASSWORD", "FLOPS_DATA_TOKEN", "X"]),
                               st.text(min_size=1, max_size=30), min_size=1, max_size=3))
def test_a_spec_with_secrets_is_refused_whatever_they_are(secrets):
    """Secrets reach components through enrollment only; an SLA never carries one."""
    one = spec("proj42-aggregator", "aggregator", secret_env=secrets, ports=(8080,))
    app, options, _ = generate([one])
    with pytest.raises(InvalidSpecError, match="enrollment"):
        sla.service_sla(one, app=app, rr_ip="10.30.200.1", options=options)


BAD = [
    ("bad name", {"name": "bad name"}, "service name"),
    ("empty name", {"name": ""}, "service name"),
    ("env image", {"image": "env:///tmp/venv"}, "container builder"),
    ("url image", {"image": "https://example.org/x"}, "OCI"),
    ("empty image", {"image": ""}, "OCI"),
    ("negative memory", {"resources": Resources(memory_mb=-1)}, "memory_mb"),
    ("huge memory", {"resources": Resources(memory_mb=10**12)}, "memory_mb"),
    ("float memory", {"resources": Resources(memory_mb=1.5)}, "memory_mb"),  # type: ignore[arg-type]
    ("nan vcpus", {"resources": Resources(vcpus=float("nan"))}, "vcpus"),
    ("negative vcpus", {"resources": Resources(vcpus=-2)}, "vcpus"),
    ("too many gpus", {"resources": Resources(vgpus=1000)}, "vgpus"),
    ("negative instances", {"instances": -1}, "instances"),
    ("bad port", {"ports": (0,)}, "port"),
    ("dup port", {"ports": (80, 80)}, "repeat"),
    ("listen without port", {"listen_env": "FLOPS_LISTEN"}, "listen_env"),
    ("public without port", {"public": True}, "public"),
    ("bad env name", {"env": {"1X": "y"}}, "variable name"),
    ("reserved env", {"env": {"FLOPS_SERVICE_NAME": "x"}}, "set by the backend"),
    ("NUL in command", {"command": ("python", "a\x00b")}, "NUL"),
    ("any secret", {"secret_env": {"B": "topsecret-123"}}, "enrollment"),
    ("bad cluster", {"cluster": "a;b"}, "cluster"),
    ("node without cluster", {"node": "worker-1"}, "needs its cluster"),
    ("bad node", {"cluster": "c1", "node": "w1;w2"}, "node name"),
    ("bad role", {"role": " "}, "role"),
]


@pytest.mark.parametrize(("label", "change", "match"), BAD, ids=[b[0] for b in BAD])
def test_invalid_specs_raise_and_never_produce_an_sla(label, change, match):
    base = spec("proj42-aggregator", "aggregator")
    bad = dataclasses.replace(base, **change)
    app, options, _ = generate([base])
    with pytest.raises(InvalidSpecError, match=match) as info:
        sla.service_sla(bad, app=app, rr_ip=None, options=options)
    assert isinstance(info.value, PermanentError)


def test_service_sla_needs_an_application_id():
    one = classic_project()[0]
    options = sla.SlaOptions(version=OakestraVersion.V0_4_411)
    with pytest.raises(InvalidSpecError, match="create it first"):
        sla.service_sla(one, app=sla.application_ref("proj42", options), rr_ip=None,
                        options=options)


def test_reference_examples_agree_with_our_schema_copies():
    for path in sorted((DATA / "sla_examples").glob("*.json")):
        document = json.loads(path.read_text())
        errors = list(jsonschema.Draft7Validator(SCHEMAS["develop"]).iter_errors(document))
        assert bool(errors) == ("flawed" in path.name), path.name


def test_app_names_follow_the_schema():
    options = sla.SlaOptions(version=OakestraVersion.V0_4_400, namespace="flops")
    ref = sla.application_ref("a-very-long-project-identifier-with-dashes-1234567890", options)
    assert names.OAKESTRA_NAME.fullmatch(ref.name)
    with pytest.raises(InvalidSpecError, match="namespace"):
        sla.application_ref("p", sla.SlaOptions(version=OakestraVersion.V0_4_400,
                                                namespace="bad-ns"))


def test_environment_images_only_when_allowed():
    env_spec = spec("proj42-learners", "learners", image="env:///var/cache/flops/envs/k/venv")
    app, options, _ = generate([env_spec])
    with pytest.raises(InvalidSpecError, match="container builder"):
        sla.service_sla(env_spec, app=app, rr_ip=None, options=options)
    allowed = dataclasses.replace(options, allow_environment_images=True)
    document = sla.service_sla(env_spec, app=app, rr_ip=None, options=allowed)
    validate_both(document)
    assert document["applications"][0]["microservices"][0]["code"] == env_spec.image
    for bad in ("env://relative/venv", "env:///with space"):
        with pytest.raises(InvalidSpecError, match="absolute directory"):
            sla.service_sla(dataclasses.replace(env_spec, image=bad), app=app, rr_ip=None,
                            options=allowed)
    sla.validate_spec(env_spec, allow_environment_images=True)
    with pytest.raises(InvalidSpecError):
        sla.validate_spec(env_spec)
