"""End-to-end builds with real git repositories and real virtual environments."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from flops_contracts.errors import ContractError
from image_builder import BuildError, BuilderSettings, SourceError, build_environment
from tests.fixtures.events import Recorder

from .conftest import MAIN, commit_files, git, new_repo

Settings = Callable[..., BuilderSettings]

CHECK = """
import sys
import learner_base, sklearn
from learner_base.repository import load_model_manager
manager = load_model_manager(sys.argv[1])
print(type(manager).__name__, len(manager.get_model_parameters()))
"""


def test_build_from_file_url(example_repo: Path, make_settings: Settings,
                             recorder: Recorder) -> None:
    result = build_environment(make_settings(f"file://{example_repo}"), recorder.emitter)

    assert result.commit == git(example_repo, "rev-parse", "HEAD")
    assert result.repo_dir.is_dir() and (result.repo_dir / "model_manager.py").is_file()
    assert set(result.timings) >= {"clone", "validate", "env", "smoke", "total"}
    kinds = [str(e.event) for e in recorder.events()]
    assert kinds[0] == "started" and kinds[-1] == "completed"
    done = [e.data for e in recorder.events("progress") if e.data.get("state") == "done"]
    assert [d["step"] for d in done] == ["clone", "validate", "env", "smoke"]
    assert all(isinstance(d["seconds"], float) for d in done)
    completed = recorder.events("completed")[0].data
    assert completed["env_dir"] == str(result.env_dir)
    assert completed["commit"] == result.commit
    out = subprocess.run([str(result.python), "-c", CHECK, str(result.repo_dir)],
                         cwd=result.repo_dir, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["ModelManager", "2"]


def test_second_build_of_same_commit_is_a_cache_hit(
        example_repo: Path, make_settings: Settings, recorder: Recorder) -> None:
    settings = make_settings(f"file://{example_repo}")
    first = build_environment(settings, recorder.emitter)
    second = build_environment(settings, recorder.emitter)

    assert second.cache_hit
    assert second.env_dir == first.env_dir and second.cache_key == first.cache_key
    assert recorder.events("completed")[-1].data["cache_hit"] is True


def test_changed_requirements_miss_the_cache(example_repo: Path, copy_repo: Callable[[], Path],
                                             make_settings: Settings,
                                             recorder: Recorder) -> None:
    before = build_environment(make_settings(f"file://{example_repo}"), recorder.emitter)
    repo = copy_repo()
    requirements = (repo / "requirements.txt").read_text() + "joblib\n"
    commit_files(repo, {"requirements.txt": requirements})

    after = build_environment(make_settings(f"file://{repo}"), recorder.emitter)

    assert not after.cache_hit
    assert after.dependency_hash != before.dependency_hash
    assert after.cache_key != before.cache_key and after.env_dir != before.env_dir


def test_branch_tag_and_sha_refs_resolve_to_the_commit(copy_repo: Callable[[], Path],
                                                       make_settings: Settings,
                                                       recorder: Recorder) -> None:
    repo = copy_repo()
    main_sha = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "-b", "feature")
    feature_sha = commit_files(repo, {"NOTES.md": "feature branch\n"})
    git(repo, "tag", "-a", "v1", "-m", "release")
    git(repo, "checkout", "-q", "main")
    url = f"file://{repo}"

    assert build_environment(make_settings(url, ref="feature"), recorder.emitter).commit \
        == feature_sha
    tagged = build_environment(make_settings(url, ref="v1"), recorder.emitter)
    assert tagged.commit == feature_sha and (tagged.repo_dir / "NOTES.md").is_file()
    assert build_environment(make_settings(url, ref=main_sha), recorder.emitter).commit \
        == main_sha
    assert build_environment(make_settings(url), recorder.emitter).commit == main_sha
    with pytest.raises(SourceError, match="no branch, tag or commit named 'nope'"):
        build_environment(make_settings(url, ref="nope"), recorder.emitter)


def test_missing_model_manager_fails_with_the_contract_message(
        tmp_path: Path, make_settings: Settings, recorder: Recorder) -> None:
    repo = new_repo(tmp_path / "bad", {"requirements.txt": "numpy\n", "train.py": "x = 1\n"})
    start = time.monotonic()
    with pytest.raises(ContractError, match=r"no model_manager.py"):
        build_environment(make_settings(f"file://{repo}"), recorder.emitter)
    assert time.monotonic() - start < 60
    failed = recorder.events("failed")[0].data
    assert failed["step"] == "validate" and "model_manager.py" in failed["message"]
    assert failed["code"] == "contract_violation"


def test_model_manager_without_the_class_fails_in_the_smoke_check(
        tmp_path: Path, make_settings: Settings, recorder: Recorder) -> None:
    repo = new_repo(tmp_path / "bad", {"requirements.txt": "numpy\n",
                                       "model_manager.py": "class Model:\n    pass\n"})
    start = time.monotonic()
    with pytest.raises(ContractError, match="defines no class ModelManager"):
        build_environment(make_settings(f"file://{repo}"), recorder.emitter)
    assert time.monotonic() - start < 60
    failed = recorder.events("failed")[0].data
    assert failed["step"] == "smoke" and "ModelManager" in failed["message"]


@pytest.mark.parametrize(("url", "ref", "expected"), [
    ("ext::sh -c touch% {marker}", None, "remote helper 'ext::'"),
    ("fd::3", None, "remote helper 'fd::'"),
    ("--upload-pack=touch {marker}", None, "starts with '-'"),
    ("ssh://-oProxyCommand=touch%20{marker}/x", None, "host starting with '-'"),
    ("ftp://example.org/repo.git", None, "scheme 'ftp' is not supported"),
    ("{repo}", "--upload-pack=touch {marker}", "starts with '-'"),
])
def test_dangerous_urls_and_refs_are_rejected(url: str, ref: str | None, expected: str,
                                              example_repo: Path, tmp_path: Path,
                                              make_settings: Settings,
                                              recorder: Recorder) -> None:
    marker = tmp_path / "pwned"
    fill = {"marker": marker, "repo": example_repo}
    settings = make_settings(url.format(**fill), ref=ref.format(**fill) if ref else None)
    with pytest.raises(SourceError, match=expected):
        build_environment(settings, recorder.emitter)
    assert not marker.exists()
    failed = recorder.events("failed")[0].data
    assert failed["step"] == "clone" and expected in failed["message"]


def test_local_sources_need_allow_local(example_repo: Path, make_settings: Settings,
                                        recorder: Recorder) -> None:
    for url in (f"file://{example_repo}", str(example_repo)):
        with pytest.raises(SourceError, match="FLOPS_ALLOW_LOCAL"):
            build_environment(make_settings(url, allow_local=False), recorder.emitter)
    result = build_environment(make_settings(str(example_repo)), recorder.emitter)
    assert result.commit == git(example_repo, "rev-parse", "HEAD")


def test_failing_dependency_reports_the_installer_error(tmp_path: Path, make_settings: Settings,
                                                        recorder: Recorder) -> None:
    files = {p: c for p, c in _example().items() if p != "requirements.txt"}
    files["requirements.txt"] = "this-package-does-not-exist-flops==1.0\n"
    repo = new_repo(tmp_path / "deps", files)
    with pytest.raises(BuildError) as info:
        build_environment(make_settings(f"file://{repo}"), recorder.emitter)
    assert info.value.step is not None and str(info.value.step) == "env"
    failed = recorder.events("failed")[0].data
    assert failed["step"] == "env"
    assert "this-package-does-not-exist-flops" in failed["output_tail"]


def test_symlink_escaping_the_checkout_is_rejected(tmp_path: Path, make_settings: Settings,
                                                   recorder: Recorder) -> None:
    repo = new_repo(tmp_path / "links", _example())
    os.symlink("../../../../etc/passwd", repo / "data.csv")
    os.symlink("model_manager.py", repo / "inside.py")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "links")
    with pytest.raises(SourceError, match=r"symlink data.csv points outside"):
        build_environment(make_settings(f"file://{repo}"), recorder.emitter)
    assert recorder.events("failed")[0].data["step"] == "clone"


def test_conda_yaml_installs_the_pip_subset_and_reports_the_rest(
        tmp_path: Path, make_settings: Settings, recorder: Recorder) -> None:
    files = {p: c for p, c in _example().items() if p != "requirements.txt"}
    files["conda.yaml"] = (
        "name: digits\nchannels: [conda-forge]\ndependencies:\n"
        "  - python=3.11\n  - numpy\n  - cudatoolkit=11.8\n  - pip\n"
        "  - pip:\n    - scikit-learn>=1.4\n"
    )
    repo = new_repo(tmp_path / "conda", files)
    result = build_environment(make_settings(f"file://{repo}"), recorder.emitter)
    assert not result.cache_hit
    logs = [e.data for e in recorder.events("log")]
    assert logs and logs[0]["skipped"] == ["python=3.11", "cudatoolkit=11.8", "pip"]


def test_python_m_image_builder(example_repo: Path, make_settings: Settings,
                                tmp_path: Path) -> None:
    settings = make_settings(f"file://{example_repo}")
    events = tmp_path / "main-events.jsonl"
    env = {**os.environ, "PYTHONPATH": str(MAIN), "FLOPS_REPOSITORY_URL": settings.repository_url,
           "FLOPS_PROJECT_ID": "proj-1", "FLOPS_CACHE_DIR": str(settings.cache_dir),
           "FLOPS_ALLOW_LOCAL": "true", "FLOPS_UV_CACHE_DIR": str(settings.uv_cache_dir),
           "FLOPS_EVENTS_URI": f"file://{events}"}
    out = subprocess.run([sys.executable, "-m", "image_builder"], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["commit"] == git(example_repo, "rev-parse", "HEAD")
    bad = subprocess.run([sys.executable, "-m", "image_builder"],
                         env={**env, "FLOPS_REPOSITORY_URL": "ext::sh -c id"},
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "remote helper" in bad.stderr


def _example() -> dict[str, str | bytes]:
    from .conftest import example_files

    return dict(example_files())
