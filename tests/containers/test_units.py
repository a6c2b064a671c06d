"""Pure parts of the container path: Containerfiles, tags, pins, platforms, argv, states."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from flops_contracts.config import load_settings
from flops_manager.adapters.docker_nodes import (
    LABEL_NODE,
    LABEL_NODE_LOCATION,
    LABEL_NODE_PORT,
    NodeContainer,
    NodeEndpoint,
    node_container_config,
    node_endpoint,
)
from flops_manager.adapters.docker_orchestrator import (
    BUILDER_BINFMT_DIR,
    BUILDER_PIP_CONFIG,
    HOST_BINFMT_DIR,
    Mount,
    container_config,
    container_env,
    container_state,
    parse_options,
)
from flops_manager.ports.errors import PermanentError
from flops_manager.ports.orchestrator import ServiceSpec, ServiceState
from image_builder import containerfile as cf
from image_builder.buildah import BudOptions, auth_file_content, bud_argv, push_argv
from image_builder.image_pipeline import missing_platforms, untrusted_platforms
from image_builder.image_tags import (
    TagInputs,
    image_name,
    image_tag,
    model_slug,
    recipe_digest,
    repository_slug,
)
from image_builder.outcome import BuildError
from image_builder.pins import merge_requirements
from image_builder.platforms import (
    missing_emulation,
    normalize_platform,
    read_binfmt_handlers,
    requested_platforms,
)
from image_builder.registry_client import digest_reference
from image_builder.settings import BuilderSettings
from image_builder.slim import slim

RECIPE = cf.Recipe(
    base_image="localhost/base:1", python="python3", wheel_name="flops-0.1.0-py3-none-any.whl",
    payload_dir=cf.REPO_DIR, env={"FLOPS_REPO_DIR": cf.REPO_DIR},
    labels={"org.opencontainers.image.revision": "abc"},
    roles=(cf.Role("learner", "learner_base", prune=True),
           cf.Role("aggregator", "aggregator", env={"FLOPS_LISTEN_ADDRESS": "0.0.0.0:8080"},
                   expose=(8080,))),
)


def test_containerfile_has_shared_stages_and_one_stage_per_role() -> None:
    text = cf.render_containerfile(RECIPE)
    froms = [line for line in text.splitlines() if line.startswith("FROM ")]
    assert froms == ["FROM localhost/base:1 AS deps", "FROM deps AS learner-env",
                     "FROM scratch AS learner-decision", "FROM localhost/base:1 AS runtime-root",
                     "FROM scratch AS runtime", "FROM runtime AS learner",
                     "FROM runtime AS aggregator"]
    assert text == cf.render_containerfile(RECIPE)  # stable
    runtime = text.split("AS runtime-root", 1)[1].split("FROM runtime AS", 1)[0]
    assert "pip install" not in runtime and "PIP_CERT" not in runtime
    assert "USER 10001:10001" in runtime
    assert 'ENTRYPOINT ["/usr/bin/tini", "--"]' in runtime
    assert 'FLOPS_REPO_DIR="/opt/flops/repo"' in runtime
    assert "PATH=\"/opt/flops/venv/bin:" in runtime
    # the slim runtime: useradd, then the purge, then that root file system as one layer
    assert runtime.index("useradd") < runtime.index("dpkg --purge") < \
        runtime.index("FROM scratch AS runtime\nCOPY --from=runtime-root / /\n")
    assert 'LANG="C.UTF-8"' in runtime.split("FROM scratch AS runtime", 1)[1]
    assert 'MLFLOW_DISABLE_TELEMETRY="true"' in runtime and 'FLWR_TELEMETRY_ENABLED="0"' in runtime
    # the pruned learner takes its own venv, the aggregator the whole one; then the payload
    learner = text.split("FROM runtime AS learner", 1)[1].split("FROM runtime AS", 1)[0]
    aggregator = text.split("FROM runtime AS aggregator", 1)[1]
    assert learner.index("COPY --from=learner-env /opt/flops/venv /opt/flops/venv") < \
        learner.index("COPY payload/ /opt/flops/repo/")
    assert "COPY --from=deps /opt/flops/venv /opt/flops/venv" in aggregator
    assert "COPY payload/ /opt/flops/repo/" in aggregator
    env_stage = text.split("AS learner-env", 1)[1].split("AS runtime", 1)[0]
    assert "python -B -m image_builder.role_env learner" in env_stage
    assert "ARG TARGETPLATFORM\nARG FLOPS_BUILD_PLATFORM\nARG FLOPS_NATIVE_PROBE" in env_stage
    # the decision stage holds only the learner's package report (exported, never pushed)
    decision = env_stage.split("FROM scratch AS learner-decision\n", 1)[1].split("\n\n")[0]
    assert decision == ("COPY --from=learner-env /opt/flops/venv/flops-packages.json"
                                " /flops-packages.json")
    assert "--user-requirements /opt/flops/build/user-requirements.txt" in env_stage
    assert 'CMD ["python", "-m", "learner_base"]' in text
    assert 'CMD ["python", "-m", "aggregator"]' in text and "EXPOSE 8080" in text
    deps = text.split("AS deps", 1)[1].split("AS runtime", 1)[0]
    assert 'PIP_NO_CACHE_DIR="1"' in deps
    assert deps.index("requirements.txt") < deps.index("wheel/")  # deps layer before runtime


def test_runtime_without_slimming_is_the_base_image_itself() -> None:
    text = cf.render_containerfile(dataclasses.replace(RECIPE, slim_runtime=False))
    froms = [line for line in text.splitlines() if line.startswith("FROM ")]
    assert "FROM localhost/base:1 AS runtime" in froms and "FROM scratch AS runtime" not in froms
    assert "dpkg --purge" not in text and "runtime-root" not in text


def test_purge_command_purges_only_installed_packages_and_needs_dpkg() -> None:
    line = cf.purge_command(("apt", "perl-base"))
    assert line.startswith("RUN if command -v dpkg-query >/dev/null; then ")
    assert "dpkg-query -W -f '${db:Status-Abbrev} ${Package}\\n' apt perl-base" in line
    assert "--force-remove-essential $installed" in line
    # what any Python runtime or SBOM needs is never purged
    for kept in ("dpkg", "coreutils", "libc6", "tzdata", "ca-certificates", "libssl3",
                 "libsqlite3-0", "tini", "bash", "libgmp10", "libdb5.3"):
        assert kept not in cf.RUNTIME_PURGE


def test_containerfile_rejects_bad_roles() -> None:
    with pytest.raises(ValueError):
        cf.render_containerfile(cf.Recipe(**{**RECIPE.__dict__, "roles": ()}))
    with pytest.raises(ValueError):
        cf.render_containerfile(cf.Recipe(**{**RECIPE.__dict__,
                                             "roles": (cf.Role("Bad Name", "x"),)}))


def test_tag_encodes_commit_dependencies_runtime_and_recipe() -> None:
    inputs = TagInputs("a" * 40, "b" * 64, "0.1.0-0123456789abcdef", "c" * 64)
    tag = image_tag(inputs)
    assert tag == f"{'a' * 12}-{'b' * 12}-0.1.0-0123456789abcdef-{'c' * 8}"
    assert image_tag(TagInputs("d" * 40, *list(inputs.__dict__.values())[1:])) != tag
    assert len(tag) <= 128


def test_names_and_slugs() -> None:
    one = repository_slug("https://github.com/Org/My_Repo.git")
    other = repository_slug("https://gitlab.com/other/My_Repo.git")
    assert one.startswith("my_repo-") and other.startswith("my_repo-") and one != other
    assert repository_slug("git@host:org/repo.git").startswith("repo-")
    assert model_slug("models:/Digits/3").startswith("digits-")
    assert model_slug("runs:/0123456789abcdef0123/model").startswith("run-0123456789ab-")
    assert model_slug("/tmp/x/my model").startswith("my-model-")
    assert image_name(registry="reg:5000/team", namespace="flops", source="s",
                      role="learner") == "reg:5000/team/flops/s/learner"
    assert recipe_digest("a", "bc") != recipe_digest("ab", "c")


def test_flops_pins_win_conflicts_with_a_message() -> None:
    pins = {"numpy": "2.4.6", "flwr": "1.41.0", "mlflow-skinny": "3.17.2"}
    merged = merge_requirements(
        roots=("flwr", "numpy"),
        user=["# comment", "numpy<2  # old", "flwr>=1.0", "mlflow==2.14.3", "torch==2.13.0",
              "-r other.txt", "--extra-index-url https://example.invalid/simple", ""],
        pins=pins, source="requirements.txt")
    assert merged.requirements == ("flwr", "numpy", "flwr>=1.0", "torch==2.13.0",
                                   "--extra-index-url https://example.invalid/simple")
    assert merged.constraints == ("flwr==1.41.0", "mlflow-skinny==3.17.2", "numpy==2.4.6")
    notes = "\n".join(merged.notes)
    assert "'numpy<2' conflicts with FLOps' pin numpy==2.4.6" in notes
    assert "mlflow-skinny==3.17.2" in notes and "-r other.txt" in notes


def test_platforms_and_emulation() -> None:
    assert normalize_platform("linux/arm64/v8") == "linux/arm64"
    assert normalize_platform("aarch64") == "linux/arm64"
    assert requested_platforms([], "linux/amd64") == ("linux/amd64",)
    assert requested_platforms(["linux/amd64", "amd64"], "linux/amd64") == ("linux/amd64",)
    with pytest.raises(BuildError):
        normalize_platform("linux/z80")
    plats = ("linux/amd64", "linux/arm64")
    assert missing_emulation(plats, "linux/amd64", {}) == ["linux/arm64"]
    assert missing_emulation(plats, "linux/amd64", {"qemu-aarch64": False}) == ["linux/arm64"]
    assert missing_emulation(plats, "linux/amd64", {"qemu-aarch64": True}) == []


def test_binfmt_handlers_are_read_from_the_configured_directory(tmp_path: Path) -> None:
    (tmp_path / "register").write_text("")
    (tmp_path / "status").write_text("enabled\n")
    (tmp_path / "qemu-aarch64").write_text("enabled\ninterpreter /usr/libexec/qemu\n")
    (tmp_path / "qemu-riscv64").write_text("disabled\n")
    assert read_binfmt_handlers(tmp_path) == {"qemu-aarch64": True, "qemu-riscv64": False}
    assert read_binfmt_handlers(tmp_path / "absent") == {}


def test_registry_variants_become_digest_references_and_missing_platforms() -> None:
    ref = "reg:5000/flops/digits-learner:abc"
    assert digest_reference(ref, "sha256:1") == "reg:5000/flops/digits-learner@sha256:1"
    found = {"learner": {"linux/amd64": "x@1", "linux/arm64": "x@2"},
             "aggregator": {"linux/amd64": "y@1"}}
    trusted = {"x@1", "x@2", "y@1"}
    assert missing_platforms(found, ("linux/amd64", "linux/arm64"), trusted) == {
        "learner": [], "aggregator": ["linux/arm64"]}
    assert missing_platforms({"learner": {}}, ("linux/amd64",), trusted) == {
        "learner": ["linux/amd64"]}


def test_a_tag_is_a_cache_hit_only_with_a_digest_flops_recorded() -> None:
    found = {"learner": {"linux/amd64": "x@1", "linux/arm64": "x@evil"}}
    platforms = ("linux/amd64", "linux/arm64")
    assert missing_platforms(found, platforms, {"x@1", "x@2"}) == {"learner": ["linux/arm64"]}
    assert untrusted_platforms(found, platforms, {"x@1"}) == {"learner": ["linux/arm64"]}
    assert missing_platforms(found, platforms, ()) == {"learner": list(platforms)}


def test_a_service_instance_runs_its_variant_or_the_default_image() -> None:
    spec = ServiceSpec(name="s", role="learners", image="reg/l:1", instances=3,
                       instance_images=("reg/l@sha256:a", ""))
    assert [spec.image_of(i) for i in range(3)] == ["reg/l@sha256:a", "reg/l:1", "reg/l:1"]


def test_buildah_argv_has_no_secrets(tmp_path: Path) -> None:
    argv = bud_argv("buildah", BudOptions(
        containerfile=tmp_path / "Containerfile", context=tmp_path, target="learner",
        manifest="localhost/m:1", platforms=("linux/amd64", "linux/arm64"),
        ca_bundle=Path("/etc/ssl/certs/ca.crt"), tls_verify=False,
        authfile=tmp_path / "auth.json"))
    assert argv[:5] == ["buildah", "bud", "--isolation", "chroot", "--layers"]
    assert argv.count("--platform") == 2 and "--tls-verify=false" in argv
    assert "/etc/ssl/certs/ca.crt:/run/flops/ca-bundle.pem:ro" in argv
    assert "PIP_CERT=/run/flops/ca-bundle.pem" in argv
    assert argv[argv.index("--manifest") + 1] == "localhost/m:1" and "--output" not in argv
    # exporting a stage's files: no manifest list
    export = bud_argv("buildah", BudOptions(
        containerfile=tmp_path / "Containerfile", context=tmp_path, target="learner-decision",
        manifest=None, platforms=("linux/amd64",), output=tmp_path / "out"))
    assert "--manifest" not in export
    assert export[export.index("--output") + 1] == f"type=local,dest={tmp_path / 'out'}"
    push = push_argv("buildah", manifest="localhost/m:1", ref="reg/x:1", tls_verify=True,
                     authfile=tmp_path / "auth.json")
    assert push[-1] == "docker://reg/x:1" and "--all" in push
    content = auth_file_content("reg.example:5000/team", "user", "pa55")
    assert list(content["auths"]) == ["reg.example:5000"]  # type: ignore[call-overload]
    assert not any("pa55" in arg for arg in argv + push)


@pytest.mark.parametrize(("state", "expected"), [
    ({"Status": "running"}, ServiceState.RUNNING),
    ({"Status": "created"}, ServiceState.PENDING),
    ({"Status": "exited", "ExitCode": 0}, ServiceState.STOPPED),
    ({"Status": "exited", "ExitCode": 2}, ServiceState.FAILED),
    ({"Status": "exited", "ExitCode": 137, "OOMKilled": True}, ServiceState.FAILED),
    ({"Status": "dead"}, ServiceState.FAILED),
])
def test_container_state(state: dict[str, object], expected: ServiceState) -> None:
    assert container_state(state)[0] is expected


def test_container_env() -> None:
    spec = ServiceSpec(name="p-agg", role="aggregator", image="x", ports=(8080,),
                       listen_env="FLOPS_LISTEN_ADDRESS", env={"A": "1"},
                       secret_env={"T": "s"})
    env = container_env(spec, 1)
    assert env == {"FLOPS_INSTANCE": "p-agg-1", "FLOPS_INSTANCE_INDEX": "1", "A": "1",
                   "T": "s", "FLOPS_LISTEN_ADDRESS": "0.0.0.0:8080"}


def test_docker_uri_options_for_builders() -> None:
    options = parse_options("builder_network=host&builder_mount=flops-store:/var/lib/containers"
                            "&builder_mount=/etc/ssl/certs/ca.crt:/run/flops/ca.pem:ro")
    assert options.builder_network == "host"
    assert options.builder_mounts == (Mount("flops-store", "/var/lib/containers"),
                                      Mount("/etc/ssl/certs/ca.crt", "/run/flops/ca.pem", True))
    assert options.builder_mounts[1].as_volume() == {"bind": "/run/flops/ca.pem", "mode": "ro"}
    assert parse_options("").builder_mounts == ()
    for bad in ("builder_network=bridge", "builder_mount=/a", "builder_mount=/a:rel",
                "builder_mount=/a:/b:rx", "other=1"):
        with pytest.raises(PermanentError):
            parse_options(bad)



def test_builders_see_the_engine_hosts_binfmt_handlers_and_pip_config() -> None:
    """Builder containers get the engine host's binfmt_misc directory and pip.conf, read-only,
    and variables that make the builder's settings use them; other services get neither."""
    options = parse_options("builder_mount=store:/var/lib/containers"
                            "&builder_pip_config=/etc/flops/pip.conf")
    builder = ServiceSpec(name="p-builder", role="builder", image="b", privileged=True,
                          env={"FLOPS_PROJECT_ID": "p", "FLOPS_TARGET": "environment"})
    config = container_config(builder, 0, options)
    assert config["volumes"] == {
        "store": {"bind": "/var/lib/containers", "mode": "rw"},
        HOST_BINFMT_DIR: {"bind": BUILDER_BINFMT_DIR, "mode": "ro"},
        "/etc/flops/pip.conf": {"bind": BUILDER_PIP_CONFIG, "mode": "ro"},
    }
    env = config["environment"]
    assert env["PIP_CONFIG_FILE"] == BUILDER_PIP_CONFIG
    settings = load_settings(BuilderSettings, environ=env)
    assert settings.binfmt_dir == Path(BUILDER_BINFMT_DIR)
    assert settings.pip_from_host and settings.pip_config is None
    assert "pip.conf" not in " ".join(config.get("command", []))

    plain = container_config(ServiceSpec(name="p-agg", role="aggregator", image="a"), 0, options)
    assert "volumes" not in plain
    assert not {"FLOPS_BINFMT_DIR", "PIP_CONFIG_FILE", "FLOPS_PIP_FROM_HOST"} & set(
        plain["environment"])

    bare = container_config(builder, 0, parse_options("builder_binfmt="))
    assert "volumes" not in bare and "FLOPS_BINFMT_DIR" not in bare["environment"]
    for bad in ("builder_binfmt=proc", "builder_pip_config=pip.conf"):
        with pytest.raises(PermanentError):
            parse_options(bad)

def test_slim_strips_tools_tests_and_sources_but_keeps_code_and_licenses(
        tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    site = venv / "lib" / "python3.11" / "site-packages"

    def dist(name: str, files: dict[str, str], requires: tuple[str, ...] = ()) -> None:
        info = site / f"{name}-1.0.dist-info"
        info.mkdir(parents=True)
        meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n"
        meta += "".join(f"Requires-Dist: {r}\n" for r in requires)
        (info / "METADATA").write_text(meta)
        (info / "licenses").mkdir()
        (info / "licenses" / "include").mkdir()
        (info / "licenses" / "include" / "LICENSE.h").write_text("license")
        records = []
        for rel, text in files.items():
            path = (site / rel).resolve()
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            records.append(f"{rel},,")
        (info / "RECORD").write_text("\n".join(records) + "\n")

    dist("pip", {"pip/__init__.py": "", "../../../bin/pip": "#!"})
    dist("wheel", {"wheel/__init__.py": ""})
    dist("setuptools", {"setuptools/__init__.py": "", "pkg_resources/__init__.py": ""})
    dist("oldlib", {"oldlib/__init__.py": ""}, requires=("setuptools",))
    dist("numlib", {"numlib/__init__.py": "", "numlib/core.py": "x = 1",
                    "numlib/tests/test_core.py": "", "numlib/sub/test/t.py": "",
                    "numlib/include/numlib.h": "", "numlib/_ext.pyx": "", "numlib/core.pyi": "",
                    "numlib/__pycache__/core.cpython-311.pyc": "",
                    "numlib/__pycache__/core.cpython-311.opt-1.pyc": ""},
         requires=("wheel; extra == 'build'",))
    report = slim(venv, site)

    assert not (site / "pip").exists() and not (venv / "bin" / "pip").exists()
    assert not (site / "wheel").exists() and not list(site.glob("wheel-*.dist-info"))
    assert (site / "setuptools").is_dir()  # oldlib requires it
    assert (site / "numlib" / "core.py").is_file()
    assert (site / "numlib" / "__pycache__" / "core.cpython-311.pyc").is_file()
    for gone in ("tests", "sub/test", "include", "_ext.pyx", "core.pyi",
                 "__pycache__/core.cpython-311.opt-1.pyc"):
        assert not (site / "numlib" / gone).exists(), gone
    assert (site / "numlib-1.0.dist-info" / "licenses" / "include" / "LICENSE.h").is_file()
    assert report.bytes_freed > 0 and "lib/python3.11/site-packages/numlib/tests" in report.removed


def test_a_node_container_has_its_own_volume_network_and_published_port() -> None:
    node = NodeContainer(name="edge-1", cluster="lab", image="img", manager_url="http://m:1",
                         advertise_host="10.0.0.7", host_port=50071)
    config = node_container_config(node, "fn1.a.b")
    assert config["name"] == config["network"] == "flops-node-edge-1"
    assert config["volumes"] == {"flops-node-edge-1": {"bind": "/var/lib/flops/node",
                                                       "mode": "rw"}}
    assert config["ports"] == {"50071/tcp": 50071}
    assert config["environment"]["FLOPS_NODE_TOKEN"] == "fn1.a.b"
    assert config["labels"][LABEL_NODE_LOCATION] == "grpc://10.0.0.7:50071"
    assert "FLOPS_NODE_TOKEN" not in node_container_config(node, None)["environment"]


def test_a_service_runs_on_the_node_container_that_reported_its_location() -> None:
    labels = [{LABEL_NODE: "edge-1", LABEL_NODE_LOCATION: "grpc://h:1", LABEL_NODE_PORT: "1"},
              {LABEL_NODE: "edge-2", LABEL_NODE_LOCATION: "grpc://h:2", LABEL_NODE_PORT: "2"}]
    assert node_endpoint(labels, "edge-2", "grpc://h:2") == NodeEndpoint(
        network="flops-node-edge-2", location="grpc://flops-node-edge-2:2")
    # another node's location, or a node of that name elsewhere: not this container
    assert node_endpoint(labels, "edge-2", "grpc://h:1") is None
    assert node_endpoint(labels, "edge-3", "grpc://h:3") is None
