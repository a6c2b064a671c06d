"""Learner/aggregator images of examples/digits_sklearn with real buildah and a registry."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flops_messaging.file_publisher import read_events
from image_builder import BuildError, BuilderSettings
from image_builder import containerfile as cf
from image_builder.fl_images import build_images
from image_builder.outcome import ImageBuildResult
from image_builder.registry_client import RegistryClient, digest_reference
from tests.fixtures.events import Recorder
from tests.fixtures.podman import CA_BUNDLE

from .conftest import git, make_repo, trusted_of

pytestmark = pytest.mark.integration

USER_FILES = {
    # Files a user repository may well contain; FLOps must neither use nor overwrite them.
    "Dockerfile": "FROM scratch\n# the user's own Dockerfile\n",
    "main.py": "print('the user main.py')\n",
}


@pytest.fixture(scope="session")
def fl_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_repo(tmp_path_factory.mktemp("fl-repo") / "digits", USER_FILES)


@pytest.fixture(scope="session")
def cold_build(fl_repo: Path, image_settings: Callable[..., BuilderSettings],
               tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    rec = Recorder(tmp_path_factory.mktemp("events") / "events.jsonl")
    start = time.monotonic()
    result = build_images(image_settings(repository_url=f"file://{fl_repo}"), rec.emitter)
    elapsed = time.monotonic() - start
    events = rec.events()
    rec.emitter.close()
    return {"result": result, "seconds": elapsed, "events": events}


def podman_run(ref: str, script: str) -> str:
    out = subprocess.run(["podman", "run", "--rm", "--tls-verify=false", "--entrypoint",
                          "/bin/sh", ref, "-c", script],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_build_pushes_learner_and_aggregator(cold_build: dict[str, Any], fl_repo: Path,
                                             registry: str) -> None:
    result: ImageBuildResult = cold_build["result"]
    commit = git(fl_repo, "rev-parse", "HEAD")
    assert set(result.images) == {"learner", "aggregator"}
    data = result.to_event_data()
    assert data["commit"] == commit and data["platforms"] == ["linux/amd64"]
    for ref in result.images.values():
        assert ref.startswith(f"{registry}/flops/digits-")
        tag = ref.rsplit(":", 1)[1]
        assert tag.startswith(commit[:12] + "-" + data["dependency_hash"][:12] + "-")
        assert data["runtime_version"] in tag
    kinds = [str(e.event) for e in cold_build["events"]]
    assert kinds[0] == "started" and kinds[-1] == "completed"
    done = [e.data["step"] for e in cold_build["events"]
            if str(e.event) == "progress" and e.data.get("state") == "done"]
    if not result.cache_hit:
        assert done == ["clone", "validate", "prepare", "cache", "context", "build_learner",
                        "build_aggregator", "push"]
        assert Path(data["log_file"]).is_file()
    completed = cold_build["events"][-1].data
    assert completed["images"] == result.images and "timings" in completed


def test_same_inputs_are_a_cache_hit_without_buildah_bud(
        cold_build: dict[str, Any], fl_repo: Path, image_settings: Callable[..., BuilderSettings],
        buildah_shim: tuple[Path, Path], recorder: Recorder) -> None:
    calls = buildah_shim[1]
    before = calls.read_text().split() if calls.exists() else []
    second = build_images(image_settings(repository_url=f"file://{fl_repo}",
                                         trusted_images=trusted_of(cold_build["result"])),
                          recorder.emitter)
    after = calls.read_text().split() if calls.exists() else []

    assert second.cache_hit
    assert second.images == cold_build["result"].images
    assert after == before, "a cache hit must not call buildah"
    assert "build_learner" not in second.timings


def test_image_is_slim_non_root_and_keeps_user_files(cold_build: dict[str, Any],
                                                      fl_repo: Path) -> None:
    ref = cold_build["result"].images["learner"]
    out = podman_run(ref, "id -u; command -v python; "
                          "for t in gcc cc g++ make apt-get-never; do command -v $t; done; "
                          "ls -d /root/.cache/pip /home/flops/.cache/pip /tmp/pip* 2>/dev/null; "
                          "echo FLOPS_REPO_DIR=$FLOPS_REPO_DIR; "
                          "cd /opt/flops/repo && sha256sum $(find . -type f | sort); "
                          "touch /opt/flops/repo/x 2>/dev/null && echo WRITABLE; "
                          "python -c 'import learner_base, aggregator, sklearn; print(\"ok\")'")
    lines = out.splitlines()
    assert lines[0] == "10001"
    assert lines[1] == "/opt/flops/venv/bin/python"
    assert lines[2] == "FLOPS_REPO_DIR=/opt/flops/repo", out  # no compiler, no pip cache
    assert "WRITABLE" not in out and lines[-1] == "ok"
    in_image = {line.split()[1].removeprefix("./"): line.split()[0]
                for line in lines if len(line.split()) == 2 and line.split()[1].startswith("./")}
    tracked = git(fl_repo, "ls-files").split()
    expected = {name: hashlib.sha256((fl_repo / name).read_bytes()).hexdigest()
                for name in tracked}
    assert in_image == expected


def test_runtime_has_no_package_manager_and_no_broken_libraries(
        cold_build: dict[str, Any]) -> None:
    """The slim runtime: apt, perl and the account tools are gone, what stays still links."""
    ref = cold_build["result"].images["aggregator"]
    out = podman_run(ref, "for t in apt-get perl useradd mount dpkg tar uname ldd; do "
                          "command -v $t >/dev/null && echo HAS $t; done; "
                          "dpkg-query -W -f '${db:Status-Abbrev} ${Package}\\n' | "
                          "awk '$1 == \"ii\" {print \"PKG\", $2}'; "
                          "for f in /usr/bin/* /usr/sbin/* $(find /usr/lib -name '*.so*' "
                          "-type f); do ldd $f 2>/dev/null | grep -q 'not found' && "
                          "echo BROKEN $f; done; echo LANG=$LANG; "
                          "python -c 'import ssl, sqlite3, zoneinfo, lzma, ctypes; "
                          "zoneinfo.ZoneInfo(\"Europe/Berlin\"); print(\"stdlib ok\")'")
    has = {line.split()[1] for line in out.splitlines() if line.startswith("HAS ")}
    installed = {line.split()[1] for line in out.splitlines() if line.startswith("PKG ")}
    assert has == {"dpkg", "tar", "uname", "ldd"}, out
    assert installed.isdisjoint(cf.RUNTIME_PURGE), installed & set(cf.RUNTIME_PURGE)
    assert {"dpkg", "coreutils", "libc6", "python3.11-minimal", "tini"} <= installed
    assert "BROKEN" not in out, out
    assert "LANG=C.UTF-8" in out and out.rstrip().endswith("stdlib ok")


def test_the_aggregator_image_starts_no_mlflow_telemetry(cold_build: dict[str, Any]) -> None:
    """A telemetry thread that edited ``os.environ`` failed an aggregator's metric logging."""
    ref = cold_build["result"].images["aggregator"]
    out = podman_run(ref, "echo $MLFLOW_DISABLE_TELEMETRY $FLWR_TELEMETRY_ENABLED; "
                          "python -c 'import os, mlflow; "
                          "from mlflow.telemetry.client import get_telemetry_client as client; "
                          "print(client(), \"_MLFLOW_TELEMETRY_SESSION_ID\" in os.environ)'")
    assert out.split() == ["true", "0", "None", "False"], out


def test_images_run_their_component_as_default_command(cold_build: dict[str, Any]) -> None:
    ref = cold_build["result"].images["aggregator"]
    subprocess.run(["podman", "pull", "-q", "--tls-verify=false", ref], check=True,
                   capture_output=True, timeout=300)
    out = subprocess.run(["podman", "image", "inspect", "--format",
                          "{{json .Config.Cmd}} {{json .Config.Entrypoint}} {{.Config.User}}",
                          ref], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ['["python","-m","aggregator"]', '["/usr/bin/tini","--"]',
                                  "10001:10001"]


def _image_json(ref: str, script: str) -> Any:
    return json.loads(podman_run(ref, script).strip().splitlines()[-1])


REPORT = ("python -c 'import json; "
          "print(json.dumps(json.load(open(\"/opt/flops/venv/flops-packages.json\"))))'")


def test_each_role_keeps_only_what_it_uses(cold_build: dict[str, Any]) -> None:
    """The learner has no MLflow, uv, pyarrow or Flower; the aggregator has MLflow and Flower;
    both record why."""
    images = cold_build["result"].images
    learner = _image_json(images["learner"], REPORT)
    aggregator = _image_json(images["aggregator"], REPORT)
    assert learner["role"] == "learner" and aggregator["role"] == "aggregator"
    dropped = {d["name"].lower() for d in learner["removed"]}
    kept = {d["name"].lower(): d["why"] for d in learner["kept"]}
    assert {"mlflow-skinny", "uv", "pandas", "pyarrow", "flwr", "sqlalchemy"} <= dropped, dropped
    assert kept["scikit-learn"] == "user requirement" and "scipy" in kept  # as declared
    assert {"grpcio", "numpy", "paho-mqtt"} <= set(kept), kept
    assert all(d["bytes"] > 0 for d in learner["removed"])
    agg_kept = {d["name"].lower() for d in aggregator["kept"]}
    assert {"mlflow-skinny", "scikit-learn", "flwr"} <= agg_kept
    agg_removed = {d["name"].lower(): d for d in aggregator["removed"]}
    assert {"uv", "pygments"} <= set(agg_removed)
    # MLflow's Databricks SDK goes; the namespace that ``import mlflow`` looks into stays
    assert agg_removed["databricks-sdk"]["namespace_files_kept"] == ["databricks/__init__.py"]
    for report in (learner, aggregator):  # byte code only where the role loads modules
        assert report["bytecode_removed"]["bytes"] > 1e6, report["bytecode_removed"]
    out = podman_run(images["learner"],
                     "python -c 'import learner_base.runtime, flops_messaging.mqtt_publisher, "
                     "learner_base.data; print(\"ok\")'; python -c 'import mlflow' 2>&1 "
                     "| tail -1; python -c 'import flwr' 2>&1 | tail -1; ls /opt/flops/venv/bin")
    assert "ok" in out and "No module named 'mlflow'" in out and "\nuv\n" not in f"\n{out}\n"
    assert "No module named 'flwr'" in out
    out = podman_run(images["aggregator"], "python -c 'import mlflow.pyfunc, aggregator.runtime; "
                                           "print(\"ok\")'")
    assert out.strip().endswith("ok")
    # sizes are benchmark results (bench/role_images.py); here: each role sheds a real part
    for report in (learner, aggregator):
        assert sum(d["bytes"] for d in report["removed"]) > 50e6, report["removed"]


def test_code_change_keeps_the_role_venv_layers(
        cold_build: dict[str, Any], image_settings: Callable[..., BuilderSettings],
        recorder: Recorder, tmp_path: Path) -> None:
    """A commit touching only user code rebuilds the payload layer, not the pruned venv's:
    the venv layers of both images have the digests of the first build (pushed once)."""
    repo = make_repo(tmp_path / "digits", USER_FILES)
    manager = repo / "model_manager.py"
    manager.write_text(manager.read_text() + "\n# a code change\n")
    git(repo, "commit", "-qam", "code change")
    second = build_images(image_settings(repository_url=f"file://{repo}"), recorder.emitter)
    assert not second.cache_hit
    for role, ref in second.images.items():
        old, new = (_layers(cold_build["result"].images[role]), _layers(ref))
        assert len(old) == len(new) and old[:-1] == new[:-1], (role, old, new)
        assert old[-1] != new[-1]  # the payload


def _layers(ref: str) -> list[str]:
    subprocess.run(["podman", "pull", "-q", "--tls-verify=false", ref], check=True,
                   capture_output=True, timeout=300)
    out = subprocess.run(["podman", "image", "inspect", "--format", "{{json .RootFS.Layers}}",
                          ref], capture_output=True, text=True, check=True)
    layers: list[str] = json.loads(out.stdout)
    return layers


def test_missing_emulation_fails_fast(fl_repo: Path, image_settings: Callable[..., BuilderSettings],
                                      buildah_shim: tuple[Path, Path], recorder: Recorder,
                                      tmp_path: Path) -> None:
    """A host without the arm64 handler (a binfmt_misc directory that lacks it: CI registers
    the real one) refuses at once, before any buildah call, and says how to enable it."""
    fake_binfmt = tmp_path / "binfmt_misc"
    fake_binfmt.mkdir()
    (fake_binfmt / "status").write_text("enabled\n")
    (fake_binfmt / "qemu-aarch64").write_text("disabled\ninterpreter /usr/bin/qemu\n")
    calls = buildah_shim[1]
    before = calls.read_text() if calls.exists() else ""
    with pytest.raises(BuildError, match="emulation") as info:
        build_images(image_settings(repository_url=f"file://{fl_repo}", binfmt_dir=fake_binfmt,
                                    platforms=["linux/amd64", "linux/arm64"]), recorder.emitter)
    assert "linux/arm64" in info.value.message
    assert "FLOPS_WITH_EMULATION=1" in info.value.message
    assert (calls.read_text() if calls.exists() else "") == before
    failed = recorder.events("failed")[0].data
    assert failed["step"] == "build" and "qemu" in failed["message"]


@pytest.fixture(scope="session")
def failing_bud(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A buildah wrapper whose ``bud`` fails at once (records it); other subcommands run."""
    root = tmp_path_factory.mktemp("failing-bud")
    calls = root / "calls.txt"
    shim = root / "buildah"
    shim.write_text(f'#!/bin/sh\necho "$1" >> {calls}\n'
                    'if [ "$1" = bud ]; then echo "bud refused by the test" >&2; exit 3; fi\n'
                    f'exec {shutil.which("buildah")} "$@"\n')
    shim.chmod(0o755)
    return shim, calls


def _cache_step(rec: Recorder) -> dict[str, Any]:
    done = [e.data for e in rec.events("progress")
            if e.data.get("step") == "cache" and e.data.get("state") == "done"]
    assert len(done) == 1, done
    return done[0]


def test_changed_flops_runtime_is_a_cache_miss(
        cold_build: dict[str, Any], fl_repo: Path, runtime_snapshot: Path,
        image_settings: Callable[..., BuilderSettings], failing_bud: tuple[Path, Path],
        recorder: Recorder, tmp_path: Path) -> None:
    """Same repository and commit, another FLOps runtime: new tag, the registry misses."""
    runtime = tmp_path / "runtime"
    shutil.copytree(runtime_snapshot, runtime)
    module = runtime / "flops_contracts" / "__init__.py"
    module.write_text(module.read_text() + "\n# a new FLOps release\n")
    with pytest.raises(BuildError, match="bud"):
        build_images(image_settings(repository_url=f"file://{fl_repo}", runtime_source=runtime,
                                    buildah=str(failing_bud[0])), recorder.emitter)
    cache = _cache_step(recorder)
    assert cache["cache_hit"] is False and cache["missing"] == {
        "learner": ["linux/amd64"], "aggregator": ["linux/amd64"]}
    old = cold_build["result"].to_event_data()
    prepared = next(e.data for e in recorder.events("progress")
                    if e.data.get("step") == "prepare" and e.data.get("state") == "done")
    assert prepared["runtime_version"] != old["runtime_version"]
    assert prepared["tag"].startswith(old["tag"][:25])  # same commit and dependency hash
    assert "bud" in failing_bud[1].read_text().split()


def test_changed_dependency_file_is_a_cache_miss(
        cold_build: dict[str, Any], fl_repo: Path,
        image_settings: Callable[..., BuilderSettings], failing_bud: tuple[Path, Path],
        recorder: Recorder) -> None:
    """A commit that changes requirements.txt: new dependency hash, the registry misses."""
    base = git(fl_repo, "rev-parse", "HEAD")
    git(fl_repo, "checkout", "-q", "-b", "more-deps")
    try:
        (fl_repo / "requirements.txt").write_text(
            (fl_repo / "requirements.txt").read_text() + "tomli-w>=1.0\n")
        git(fl_repo, "commit", "-qam", "one more dependency")
    finally:
        git(fl_repo, "checkout", "-q", "main")
    with pytest.raises(BuildError):
        build_images(image_settings(repository_url=f"file://{fl_repo}", ref="more-deps",
                                    buildah=str(failing_bud[0])), recorder.emitter)
    assert _cache_step(recorder)["cache_hit"] is False
    validated = next(e.data for e in recorder.events("progress")
                     if e.data.get("step") == "validate" and e.data.get("state") == "done")
    old = cold_build["result"].to_event_data()
    assert validated["dependency_hash"] != old["dependency_hash"]
    assert git(fl_repo, "rev-parse", "main") == base


def test_unknown_dependency_fails_with_pips_error(
        base_image: str, registry: str, runtime_snapshot: Path, tmp_path: Path) -> None:
    """``python -m image_builder``: pip's error in the ``failed`` event, exit code 1."""
    repo = make_repo(tmp_path / "bad-deps", {
        "requirements.txt": "scikit-learn>=1.4\nflops-no-such-package-4f1c9e==1.0\n"})
    events = tmp_path / "events.jsonl"
    env = {**os.environ, "FLOPS_TARGET": "images", "FLOPS_PROJECT_ID": "proj-bad",
           "FLOPS_REPOSITORY_URL": f"file://{repo}", "FLOPS_ALLOW_LOCAL": "true",
           "FLOPS_EVENTS_URI": f"file://{events}", "FLOPS_CACHE_DIR": str(tmp_path / "cache"),
           "FLOPS_REGISTRY": registry, "FLOPS_REGISTRY_TLS_VERIFY": "false",
           "FLOPS_BASE_IMAGE": base_image, "FLOPS_RUNTIME_SOURCE": str(runtime_snapshot),
           "FLOPS_BUILD_TIMEOUT_S": "900"}
    if CA_BUNDLE.is_file():
        env["FLOPS_EXTRA_CA_BUNDLE"] = str(CA_BUNDLE)
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "image_builder"], env=env, capture_output=True,
                         text=True, timeout=960)
    assert out.returncode == 1, out.stdout[-2000:] + out.stderr[-2000:]
    failed = [e.data for e in read_events(events) if str(e.event) == "failed"]
    assert len(failed) == 1, failed
    data = failed[0]
    assert data["step"] == "build", data
    text = data["message"] + "\n" + str(data.get("output_tail", ""))
    assert "flops-no-such-package-4f1c9e" in text, text
    assert "No matching distribution found" in text, text
    assert time.monotonic() - start < 900


def test_a_tag_pushed_by_another_login_is_not_a_cache_hit(
        cold_build: dict[str, Any], fl_repo: Path, image_settings: Callable[..., BuilderSettings],
        recorder: Recorder, tiny_image: str) -> None:
    """Someone pushes their image under the project's expected tag: the project builds its own.

    Runs last in this module: it replaces the cold build's learner tag (with an equal build).
    """
    first = cold_build["result"]
    ref = first.images["learner"]
    out = subprocess.run(["buildah", "push", "--tls-verify=false", tiny_image, f"docker://{ref}"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    client = RegistryClient(tls_verify=False, credentials=None)
    try:
        (foreign,) = (client.variants(ref) or {}).values()
        rebuilt = build_images(image_settings(repository_url=f"file://{fl_repo}",
                                              trusted_images=trusted_of(first)),
                               recorder.emitter)
        assert not rebuilt.cache_hit
        cache = _cache_step(recorder)
        assert cache["untrusted"] == {"learner": ["linux/amd64"]}
        assert cache["missing"] == {"learner": ["linux/amd64"]}
        assert "build_learner" in rebuilt.timings
        now = client.variants(ref) or {}
    finally:
        client.close()
    assert foreign not in now.values(), "the project's tag names its own image again"
    recorded = rebuilt.to_event_data()["variants"]["learner"]
    assert {digest_reference(ref, d) for d in now.values()} == set(recorded.values())
