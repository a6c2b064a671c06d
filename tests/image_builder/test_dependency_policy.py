"""The dependency policy: one for every target; conflicts name whose pin it is and the fix."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from flops_contracts.errors import ContractError
from image_builder import BuildError, BuilderSettings, build_environment
from image_builder.dependencies import read_dependencies
from image_builder.environment import requirement_lines
from image_builder.pin_policy import apply_pin_policy, parse_pins
from image_builder.user_paths import user_facing
from tests.fixtures.events import Recorder

from .conftest import example_files, new_repo

Settings = Callable[..., BuilderSettings]
PINS = {"numpy": "2.4.6", "scikit-learn": "1.9.1", "mlflow-skinny": "3.17.2"}
OLD_PINS = "numpy==1.21.6\nscikit-learn==1.4.2\nmlflow==2.12.1\nscipy\n"


def test_every_conflict_is_listed_with_the_owner_of_the_pin_and_the_fix() -> None:
    result = apply_pin_policy(OLD_PINS.splitlines(), pins=PINS, source="requirements.txt")
    assert result.requirements == ("scipy",)
    numpy, sklearn, mlflow = result.notes
    assert numpy.startswith("requirements.txt: 'numpy==1.21.6' conflicts with FLOps' pin "
                            "numpy==2.4.6")
    assert "it was dropped and numpy 2.4.6 is used" in numpy
    assert "To fix: remove the pin from requirements.txt or allow 2.4.6" in numpy
    assert "'scikit-learn==1.4.2' conflicts with FLOps' pin scikit-learn==1.9.1" in sklearn
    assert "served by the FLOps runtime's mlflow-skinny==3.17.2" in mlflow


def test_compatible_requirements_options_and_local_paths_are_kept(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text(
        "numpy>=1.26  # fine\n-r extra.txt\n./vendored\n--index-url https://x.invalid\n")
    (tmp_path / "model_manager.py").write_text("")
    lines, notes = requirement_lines(read_dependencies(tmp_path), pins=PINS)
    assert notes == ()
    assert lines == ("numpy>=1.26", f"-r {tmp_path / 'extra.txt'}",
                     "--index-url https://x.invalid", str(tmp_path / "./vendored"))


def test_constraints_files_read_as_pins() -> None:
    assert parse_pins(["NumPy==2.4.6", "# c", "flwr[simulation]==1.41.0", "odd>=1"]) == {
        "numpy": "2.4.6", "flwr": "1.41.0"}


def test_messages_name_the_users_file_not_the_checkout() -> None:
    checkout = Path("/cache/checkouts/0123abcd")
    assert user_facing(f"{checkout}/conda.yaml: not valid YAML", checkout) == \
        "conda.yaml: not valid YAML"
    assert user_facing(f"{checkout}: no dependency file", checkout) == \
        "the repository: no dependency file"


def test_environment_target_drops_conflicting_pins_with_warnings(
        tmp_path: Path, make_settings: Settings, recorder: Recorder) -> None:
    files: dict[str, str | bytes] = dict(example_files())
    files["requirements.txt"] = OLD_PINS
    repo = new_repo(tmp_path / "old-pins", files)
    result = build_environment(make_settings(f"file://{repo}"), recorder.emitter)
    assert result.python.is_file()
    warnings = [e.data["message"] for e in recorder.events("log")
                if e.data.get("level") == "warning"]
    assert any("'numpy==1.21.6' conflicts with FLOps' pin numpy==" in w for w in warnings)
    assert any("'scikit-learn==1.4.2' conflicts with FLOps' pin scikit-learn==" in w
               for w in warnings)
    assert any("'mlflow==2.12.1' is served by the FLOps runtime" in w for w in warnings)
    assert all(w.startswith("requirements.txt: ") for w in warnings)


def test_failures_name_the_repository_file(tmp_path: Path, make_settings: Settings,
                                           recorder: Recorder) -> None:
    files: dict[str, str | bytes] = dict(example_files())
    del files["requirements.txt"]
    files["conda.yaml"] = "dependencies: [numpy\n"
    repo = new_repo(tmp_path / "bad-yaml", files)
    settings = make_settings(f"file://{repo}")
    with pytest.raises(ContractError) as info:
        build_environment(settings, recorder.emitter)
    assert info.value.message.startswith("conda.yaml: not valid YAML")
    assert str(settings.cache_dir) not in recorder.events("failed")[0].data["message"]


def test_install_failure_names_the_dependency_file(tmp_path: Path, make_settings: Settings,
                                                    recorder: Recorder) -> None:
    files: dict[str, str | bytes] = dict(example_files())
    files["requirements.txt"] = "this-package-does-not-exist-flops==1.0\n"
    repo = new_repo(tmp_path / "missing", files)
    with pytest.raises(BuildError) as info:
        build_environment(make_settings(f"file://{repo}"), recorder.emitter)
    assert info.value.message.startswith(
        "installing the requirements of requirements.txt (the repository's dependency file) "
        "failed")


def test_a_pin_of_an_optional_extra_is_replaced_by_flops_build() -> None:
    result = apply_pin_policy(["torch==2.1.1", "torchvision"], pins=PINS, source="conda.yaml",
                              extra_pins={"torch": "2.13.0"})
    assert result.requirements == ("torch==2.13.0", "torchvision")
    assert result.notes == ("conda.yaml: 'torch==2.1.1' conflicts with FLOps' pin torch==2.13.0 "
                            "(the build FLOps supports); it was replaced by torch==2.13.0. To "
                            "fix: require torch==2.13.0 in conda.yaml",)
