"""Role-specific environments: which distributions a role keeps, and pruning a real venv."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from image_builder import role_env
from image_builder.role_env import Installed, closure, imported_names, plan

ENV = {"python_version": "3.11", "sys_platform": "linux", "platform_machine": "aarch64",
       "implementation_name": "cpython", "os_name": "posix", "platform_system": "Linux",
       "python_full_version": "3.11.7", "platform_python_implementation": "CPython",
       "platform_release": "", "platform_version": "", "implementation_version": "3.11.7"}


def _installed(**requires: tuple[str, ...]) -> dict[str, Installed]:
    return {name: Installed(name=name, version="1.0", requires=reqs, size=1000)
            for name, reqs in requires.items()}


INSTALLED = _installed(
    flwr=("numpy>=1", "uv>=0.5", "grpcio", "pywin32; sys_platform == 'win32'"),
    **{"scikit-learn": ("numpy", "scipy", "joblib"), "mlflow-skinny": ("cloudpickle", "pyyaml"),
       "pandas": ("numpy", "tzdata; extra == 'tz'"), "numpy": (), "uv": (), "grpcio": (),
       "scipy": ("numpy",), "joblib": (), "cloudpickle": (), "pyyaml": (), "tzdata": (),
       "pyarrow": (), "flops": ("flwr", "mlflow-skinny", "pyarrow")})


def test_every_pruned_role_has_a_probe() -> None:
    from image_builder.fl_images import AGGREGATOR, LEARNER
    from image_builder.model_image import INFERENCE_SERVER

    for role in (LEARNER, AGGREGATOR, INFERENCE_SERVER):
        assert role.prune and role.name in role_env.ROLE_PROBES
    assert role_env.ROLE_PROBES["inference_server"].payload == "model"


def test_emulated_when_the_target_is_not_the_build_host() -> None:
    assert role_env.emulated({"TARGETPLATFORM": "linux/arm64",
                              "FLOPS_BUILD_PLATFORM": "linux/amd64"})
    assert not role_env.emulated({"TARGETPLATFORM": "linux/amd64",
                                  "FLOPS_BUILD_PLATFORM": "linux/amd64"})
    assert not role_env.emulated({"TARGETPLATFORM": "linux/arm64"})  # host unknown: verify
    assert not role_env.emulated({})


EMULATED = {"TARGETPLATFORM": "linux/arm64", "FLOPS_BUILD_PLATFORM": "linux/amd64"}


def test_an_emulated_stage_takes_the_native_probe_and_refuses_a_malformed_one() -> None:
    answer = {"loaded": ["flwr", "numpy"], "skipped": ["flops_dataplane.client"]}
    handed = {**EMULATED, "FLOPS_NATIVE_PROBE": json.dumps(answer)}
    assert role_env.native_probe(handed) == answer
    # a native stage probes itself whatever it is handed; no value: probe under emulation
    assert role_env.native_probe({**handed, "TARGETPLATFORM": "linux/amd64"}) is None
    assert role_env.native_probe(EMULATED) is None
    with_namespaces = {**answer, "init_only": {"databricks-sdk": ["databricks/__init__.py"]},
                       "packages": [".", "flwr", "numpy/_core"]}
    assert role_env.native_probe(
        {**EMULATED, "FLOPS_NATIVE_PROBE": json.dumps(with_namespaces)}) == with_namespaces
    for bad in ("not json", "[]", '{"loaded": "flwr", "skipped": []}',
                '{"loaded": [1], "skipped": []}', '{"loaded": []}',
                '{"loaded": [], "skipped": [], "init_only": ["x"]}',
                '{"loaded": [], "skipped": [], "init_only": {"d": "x/__init__.py"}}',
                '{"loaded": [], "skipped": [], "packages": "flwr"}'):
        with pytest.raises(SystemExit, match="FLOPS_NATIVE_PROBE"):
            role_env.native_probe({**EMULATED, "FLOPS_NATIVE_PROBE": bad})


def _fake_distribution(site: Path, name: str, requires: tuple[str, ...] = ()) -> Path:
    """A minimal installed distribution: one module file, METADATA and RECORD."""
    module = site / f"{name}.py"
    module.write_text("VALUE = 1\n")
    info = site / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: " + name + "\nVersion: 1.0\n"
                                   + "".join(f"Requires-Dist: {r}\n" for r in requires))
    (info / "RECORD").write_text(f"{name}.py,,\n{info.name}/METADATA,,\n{info.name}/RECORD,,\n")
    return module


DATABRICKS_INIT = """\
# See: https://packaging.python.org/guides/packaging-namespace-packages/
#
# This file must only contain the following line, or other packages in the namespace may not
# be importable.
__path__ = __import__("pkgutil").extend_path(__path__, __name__)
"""


@pytest.mark.parametrize(("source", "namespace"), [
    (DATABRICKS_INIT, True),
    ('"""Namespace."""\nfrom pkgutil import extend_path\n'
     "__path__ = extend_path(__path__, __name__)\n", True),
    ("__path__ = __import__('pkgutil').extend_path(__path__, __name__)\n", True),
    ("", False),
    ('"""Only a docstring."""\n', False),
    (DATABRICKS_INIT + "from databricks.sdk import WorkspaceClient\n", False),
    ("__path__ = __import__('pkgutil').extend_path(__path__, 'other')\n", False),
    ("def (:\n", False),
])
def test_a_namespace_init_only_extends_its_path(source: str, namespace: bool) -> None:
    assert role_env.is_namespace_init(source) is namespace


def test_distributions_loaded_only_through_namespace_inits(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    for package, text in (("databricks", DATABRICKS_INIT), ("real", "VALUE = 1\n")):
        (site / package).mkdir(parents=True)
        (site / package / "__init__.py").write_text(text)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "__init__.py").write_text(DATABRICKS_INIT)
    found = role_env.namespace_only({"Databricks_SDK": ["databricks/__init__.py"],
                                     "real": ["real/__init__.py"],
                                     "escaping": ["../outside/__init__.py"],
                                     "missing": ["gone/__init__.py"], "empty": []}, site)
    assert found == {"databricks-sdk": ["databricks/__init__.py"]}


def test_uninstall_keeps_the_namespace_files_it_is_told_to(tmp_path: Path) -> None:
    from importlib.metadata import PathDistribution

    from image_builder.slim import SlimReport, uninstall

    site = tmp_path / "lib" / "python3.11" / "site-packages"
    files = ["databricks/__init__.py", "databricks/sdk/__init__.py", "databricks/sdk/core.py"]
    for name in files:
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_text(DATABRICKS_INIT)
    info = site / "databricks_sdk-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: databricks-sdk\nVersion: 1.0\n")
    (info / "RECORD").write_text("".join(f"{n},,\n" for n in files))
    report = SlimReport()
    uninstall(PathDistribution(info), tmp_path, report,
              keep={(site / "databricks" / "__init__.py").resolve()})
    assert sorted(p.relative_to(site).as_posix() for p in site.rglob("*")) == [
        "databricks", "databricks/__init__.py"]
    assert report.removed[-1] == "lib/python3.11/site-packages/databricks_sdk-1.0.dist-info"


def test_real_paths_resolve_directories_and_keep_a_linked_file_itself(tmp_path: Path) -> None:
    from image_builder.slim import real_paths

    (tmp_path / "real" / "pkg").mkdir(parents=True)
    (tmp_path / "real" / "pkg" / "target.py").write_text("x")
    (tmp_path / "lib64").symlink_to(tmp_path / "real")
    (tmp_path / "real" / "pkg" / "link.py").symlink_to(tmp_path / "real" / "pkg" / "target.py")
    site = tmp_path / "lib64" / "pkg"
    found = real_paths([site / "target.py", site / "link.py", site / ".." / ".." / "bin" / "x",
                        site / "missing.py"])
    real = tmp_path.resolve()
    assert found == [real / "real" / "pkg" / "target.py", real / "real" / "pkg" / "link.py",
                     real / "bin" / "x", real / "real" / "pkg" / "missing.py"]


def test_uninstall_removes_a_listed_link_not_what_it_points_to(tmp_path: Path) -> None:
    from importlib.metadata import PathDistribution

    from image_builder.slim import SlimReport, uninstall

    site = tmp_path / "venv" / "lib" / "python3.11" / "site-packages"
    (site / "pkg").mkdir(parents=True)
    outside = tmp_path / "outside.so"
    outside.write_text("another owner's file")
    (site / "pkg" / "lib.so").symlink_to(outside)
    (site / "pkg" / "__init__.py").write_text("")
    info = site / "pkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pkg\nVersion: 1.0\n")
    (info / "RECORD").write_text("pkg/__init__.py,,\npkg/lib.so,,\n../../../../outside.so,,\n")
    report = SlimReport()
    uninstall(PathDistribution(info), tmp_path / "venv", report)
    assert not (site / "pkg").exists() and not info.exists()
    assert outside.read_text() == "another owner's file"  # outside the venv: never removed
    assert "lib/python3.11/site-packages/pkg/lib.so" in report.removed


def test_byte_code_stays_only_where_the_role_loads_modules(tmp_path: Path) -> None:
    from image_builder.slim import SlimReport, drop_bytecode

    site = tmp_path / "site-packages"
    for package in (".", "used", "used/sub", "unused", "unused/deep"):
        (site / package / "__pycache__").mkdir(parents=True)
        (site / package / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"x" * 100)
        (site / package / "m.py").write_text("VALUE = 1\n")
    report = SlimReport()
    drop_bytecode(site, tmp_path, [".", "used"], report)
    left = sorted(p.parent.relative_to(site).as_posix() for p in site.rglob("*.pyc"))
    assert left == ["__pycache__", "used/__pycache__"]
    assert report.bytes_freed == 300 and len(report.removed) == 3
    assert len(list(site.rglob("m.py"))) == 5  # sources stay


def test_an_emulated_prune_decides_from_the_handed_probe_without_importing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under emulation with the native probe's answer, nothing is imported (a probe under
    qemu takes minutes): what the native role loaded stays, with its reason, and the report
    says where the probe ran."""
    venv_dir = tmp_path / "venv"
    site = venv_dir / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    for name in ("flwr", "numpy", "mlflow", "uv"):
        _fake_distribution(site, name)
    _fake_distribution(site, "flops", ("flwr", "mlflow"))

    def no_probe(*_: object) -> None:
        raise AssertionError("the emulated stage imported the role's modules")

    monkeypatch.setattr(role_env, "run_probe", no_probe)
    answer = {"loaded": ["flwr", "numpy"], "skipped": []}
    for key, value in {**EMULATED, "FLOPS_NATIVE_PROBE": json.dumps(answer)}.items():
        monkeypatch.setenv(key, value)
    summary = role_env.prune("learner", venv=venv_dir, site_packages=site, payload=None,
                             user_requirements=[])
    assert "removed 2" in summary
    report = json.loads((venv_dir / role_env.REPORT_NAME).read_text())
    kept = {d["name"]: d["why"] for d in report["kept"]}
    assert kept == {"flops": "the FLOps runtime", "flwr": "loaded by the role's code",
                    "numpy": "loaded by the role's code"}
    assert {d["name"] for d in report["removed"]} == {"mlflow", "uv"}
    assert not (site / "uv.py").exists() and (site / "flwr.py").exists()
    assert report["verified"] is False and report["probe"] == answer
    assert report["probed"].startswith("natively")


def test_closure_follows_markers_and_extras() -> None:
    assert set(closure({"scikit-learn": "user requirement"}, INSTALLED, ENV)) == {
        "scikit-learn", "numpy", "scipy", "joblib"}
    # a marker false on this platform is not followed; an unknown name is skipped
    assert set(closure({"flwr": "x", "not-installed": "y"}, INSTALLED, ENV)) == {
        "flwr", "numpy", "uv", "grpcio"}
    # an extra is followed only when asked for
    assert "tzdata" not in closure({"pandas": "x"}, INSTALLED, ENV)
    # a root keeps its own reason even when another root requires it too
    both = closure({"flwr": "loaded", "numpy": "user requirement"}, INSTALLED, ENV)
    assert both["numpy"] == "user requirement" and both["uv"] == "required by flwr"
    assert "tzdata" in closure({"flops": "x", "scikit-learn": "y"},
                               {**INSTALLED, "flops": Installed("flops", "1", ("pandas[tz]",))},
                               ENV)


def test_plan_keeps_user_closure_loaded_and_closed_roots_only() -> None:
    decision = plan(installed=INSTALLED, user_requirements=["scikit-learn>=1.3  # model"],
                    user_imports=[], loaded=["flwr", "numpy", "grpcio", "pyarrow"],
                    closed=[], environment=ENV)
    assert decision.kept["scikit-learn"] == "user requirement"
    assert decision.kept["scipy"] == "required by scikit-learn"
    assert decision.kept["flwr"] == "loaded by the role's code"
    assert decision.kept["flops"] == "the FLOps runtime"
    # uv is declared by flwr but never loaded; MLflow is not used by this role
    assert set(decision.removed) == {"uv", "mlflow-skinny", "cloudpickle", "pyyaml", "pandas",
                                     "tzdata"}
    assert decision.removed["uv"] == 1000

    aggregator = plan(installed=INSTALLED, user_requirements=[], user_imports=["pandas"],
                      loaded=["flwr"], closed=["mlflow-skinny"], environment=ENV)
    assert {"mlflow-skinny", "cloudpickle", "pyyaml", "pandas", "numpy"} <= set(aggregator.kept)
    assert aggregator.kept["pandas"] == "imported by the user's code"
    assert "uv" in aggregator.removed and "scikit-learn" in aggregator.removed

    # pyarrow loaded only because pandas tries it: removed, unless the user needs it
    loaded = ["flwr", "pandas", "pyarrow"]
    assert "pyarrow" in plan(installed=INSTALLED, user_requirements=[], user_imports=[],
                             loaded=loaded, closed=[], environment=ENV,
                             opportunistic=["pyarrow"]).removed
    assert plan(installed=INSTALLED, user_requirements=["pyarrow"], user_imports=[],
                loaded=loaded, closed=[], environment=ENV,
                opportunistic=["pyarrow"]).kept["pyarrow"] == "user requirement"


def test_unused_requirements_are_not_followed_unless_the_user_or_the_role_needs_them() -> None:
    installed = {**INSTALLED,
                 "mlflow-skinny": Installed("mlflow-skinny", "3", ("cloudpickle", "sdk")),
                 "sdk": Installed("sdk", "1", ("auth",)), "auth": Installed("auth", "1", ())}
    assert set(closure({"mlflow-skinny": "x"}, installed, ENV, ["sdk"])) == {
        "mlflow-skinny", "cloudpickle"}
    assert "auth" in closure({"mlflow-skinny": "x"}, installed, ENV)  # followed by default

    def decide(**kwargs: Any) -> Any:
        return plan(installed=installed, closed=["mlflow-skinny"], environment=ENV,
                    unused_requirements=["sdk"], **{"user_requirements": [], "user_imports": [],
                                                    "loaded": [], **kwargs})

    assert {"sdk", "auth"} <= set(decide().removed)
    assert decide(user_requirements=["sdk"]).kept["auth"] == "required by sdk"
    assert decide(user_imports=["sdk"]).kept["sdk"] == "imported by the user's code"
    assert decide(loaded=["sdk"]).kept["sdk"] == "loaded by the role's code"
    # the roles that track to FLOps' MLflow server leave out MLflow's Databricks client
    for role in ("aggregator", "inference_server"):
        assert "databricks-sdk" in role_env.ROLE_PROBES[role].unused_requirements


def test_user_requirement_markers_are_evaluated() -> None:
    decision = plan(installed=INSTALLED, user_requirements=[
        "pandas; sys_platform == 'win32'", "joblib; platform_machine == 'aarch64'",
        "--extra-index-url https://example.org/simple"],
        user_imports=[], loaded=[], closed=[], environment=ENV)
    assert "pandas" in decision.removed and decision.kept["joblib"] == "user requirement"


def test_imported_names_reads_every_file_statically(tmp_path: Path) -> None:
    (tmp_path / "model_manager.py").write_text(
        "import numpy as np\nfrom sklearn.linear_model import LogisticRegression\n"
        "from . import helpers\nfrom .local import thing\n"
        "def fit():\n    import pandas.io\n    return pandas\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "util.py").write_text("import torch, os.path\n")
    (tmp_path / "pkg" / "frame.py").write_text("def rows(data):\n    return data.to_pandas()\n"
                                               "def table(data):\n    return data.to_arrow()\n")
    (tmp_path / "broken.py").write_text("def (:\n")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x.py").write_text("import secret_thing\n")
    names, unreadable = imported_names(tmp_path)
    assert names == {"numpy", "sklearn", "pandas", "torch", "os", "pyarrow"}
    (tmp_path / "model_manager.py").write_text("import numpy\n")
    # to_pandas(), to_arrow()
    assert imported_names(tmp_path)[0] == {"numpy", "torch", "os", "pandas", "pyarrow"}
    assert unreadable == ["broken.py"]


def test_uninstall_leaves_no_hollow_package(tmp_path: Path) -> None:
    """Files stripped earlier (sources) and stray byte code must not leave the package
    behind as an importable empty namespace (pandas would then take it for pyarrow)."""
    from importlib.metadata import PathDistribution

    from image_builder.slim import SlimReport, uninstall

    site = tmp_path / "lib" / "python3.11" / "site-packages"
    files = ["pkg/__init__.py", "pkg/src/arrow/python/api.h", "pkg/lib/core.py",
             "other/keep.py"]
    for name in files:
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_text("x")
    (site / "pkg" / "lib" / "__pycache__").mkdir()
    (site / "pkg" / "lib" / "__pycache__" / "stray.cpython-311.pyc").write_text("x")
    info = site / "pkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pkg\nVersion: 1.0\n")
    (info / "RECORD").write_text("".join(f"{n},,\n" for n in files[:3]))
    (site / "pkg/src/arrow/python/api.h").unlink()  # stripped by slim before
    report = SlimReport()
    uninstall(PathDistribution(info), tmp_path, report)
    assert not (site / "pkg").exists() and not info.exists()
    assert (site / "other" / "keep.py").is_file()


@pytest.mark.integration
def test_prune_in_a_real_venv_removes_what_the_role_does_not_load(scratch: Path) -> None:
    """A venv with the FLOps runtime (as in an image): the learner loses MLflow, uv, pyarrow
    and Flower (with its server's SQLAlchemy), keeps the user's scikit-learn closure and
    grpcio, and records why; the aggregator keeps MLflow."""
    target, site, repo, requirements = _real_venv(scratch)
    learner = _prune(target, "learner", repo, requirements)
    removed = {d["name"].lower() for d in learner["removed"]}
    kept = {d["name"].lower(): d["why"] for d in learner["kept"]}
    assert {"mlflow-skinny", "uv", "flwr", "sqlalchemy", "protobuf"} <= removed
    assert kept["scikit-learn"] == "user requirement" and "scipy" in kept
    assert kept["grpcio"] == "loaded by the role's code"
    assert {"pandas", "pyarrow"} <= removed  # loaded only because they are there
    assert not list(site.glob("mlflow_skinny-*.dist-info")) and not (target / "bin" / "uv").exists()
    report = json.loads((target / role_env.REPORT_NAME).read_text())
    assert report["role"] == "learner" and report["probed"] == "in this build"
    # the probe's answer an emulated build of the same role would be handed
    assert "grpcio" in report["probe"]["loaded"]
    assert not {"flwr", "mlflow-skinny"} & set(report["probe"]["loaded"])
    # the pruned venv still runs the role's imports (the check ran inside prune, too)
    subprocess.run([str(target / "bin" / "python"), "-c", "import learner_base.runtime"],
                   check=True, timeout=120)


@pytest.mark.integration
def test_the_aggregator_keeps_mlflow_without_its_databricks_client(scratch: Path) -> None:
    """MLflow's Databricks SDK goes but for the namespace ``import mlflow`` needs, and
    Pygments (httpx's command line) goes; MLflow still imports (the check ran in prune)."""
    target, site, repo, requirements = _real_venv(scratch)
    report = _prune(target, "aggregator", repo, requirements)
    kept = {d["name"].lower(): d["why"] for d in report["kept"]}
    removed = {d["name"].lower(): d for d in report["removed"]}
    assert kept["mlflow-skinny"] == "used by the role (kept with its closure)"
    assert removed["databricks-sdk"]["namespace_files_kept"] == ["databricks/__init__.py"]
    assert report["probe"]["init_only"]["databricks-sdk"] == ["databricks/__init__.py"]
    assert "pygments" in removed and "Pygments" in report["probe"]["loaded"]  # by httpx
    assert sorted(p.name for p in (site / "databricks").iterdir()) == ["__init__.py"]
    # byte code where the aggregator loads modules from, none where it loads nothing
    packages = set(report["probe"]["packages"])
    assert {"mlflow/tracking", "flwr/server", "sklearn/linear_model"} <= packages
    assert not {"mlflow/server", "scipy/signal"} & packages  # MLflow's server, unused scipy
    assert list((site / "mlflow" / "tracking" / "__pycache__").glob("*.pyc"))
    assert not (site / "mlflow" / "server" / "__pycache__").exists()
    assert not (site / "scipy" / "signal" / "__pycache__").exists()
    assert (site / "scipy" / "signal" / "__init__.py").is_file()  # sources stay
    assert report["bytecode_removed"]["bytes"] > 5_000_000
    assert not list(site.glob("databricks_sdk-*.dist-info"))
    subprocess.run([str(target / "bin" / "python"), "-c",
                    "import mlflow.pyfunc, mlflow.sklearn, httpx, aggregator.runtime"],
                   check=True, timeout=300, env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    """The test's directory, removed after it: a copied environment takes over 1 GB."""
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)


def _real_venv(tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    """A venv with the FLOps runtime, the digits example and its user requirements."""
    target = tmp_path / "venv"
    venv.create(target, system_site_packages=False, with_pip=False)
    site = next((target / "lib").glob("python3.*/site-packages"))
    # the dev environment's site-packages stand in for an image's installed dependencies
    here = next(p for p in map(Path, sys.path) if (p / "flwr").is_dir())
    # hard links where the file system allows (1.2 GB in 3 s instead of 20 s): pruning only
    # unlinks files and writes new ones, so the dev environment's files stay as they are
    if subprocess.run(["cp", "-al", f"{here}/.", str(site)], check=False,
                      capture_output=True).returncode != 0:
        shutil.rmtree(site)
        subprocess.run(["cp", "-a", f"{here}/.", str(site)], check=True)
    repo = Path(__file__).resolve().parents[2] / "examples" / "digits_sklearn"
    requirements = tmp_path / "user-requirements.txt"
    requirements.write_text("scikit-learn\n")
    return target, site, repo, requirements


def _prune(target: Path, role: str, repo: Path, requirements: Path) -> dict[str, Any]:
    result = subprocess.run(
        [str(target / "bin" / "python"), "-B", "-m", "image_builder.role_env", role,
         "--venv", str(target), "--payload", str(repo), "--user-requirements", str(requirements)],
        capture_output=True, text=True, timeout=600,
        cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"the {role} keeps" in result.stdout
    report: dict[str, Any] = json.loads((target / role_env.REPORT_NAME).read_text())
    return report
