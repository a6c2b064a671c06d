"""train-local applies the dependency policy of every target and warns about the rest."""

from __future__ import annotations

from pathlib import Path

from flops_manager.cli.local_requirements import requirement_warnings, unmet_requirements


def test_unmet_requirements_say_what_is_installed_and_how_to_fix() -> None:
    notes = unmet_requirements(
        ["numpy>=1.26", "torch==2.1.1", "gone==1.0", "win-only==1; sys_platform == 'win32'"],
        installed={"numpy": "2.4.6", "torch": "2.13.0", "gone": None}, source="conda.yaml")
    assert len(notes) == 2
    assert notes[0].startswith("conda.yaml: 'torch==2.1.1' is not satisfied (torch 2.13.0 is "
                               "installed); train-local uses this environment and installs "
                               "nothing: run pip install 'torch==2.1.1' first")
    assert notes[1].startswith("conda.yaml: 'gone==1.0' is not installed")


def test_conflicting_pins_are_dropped_with_the_same_message_as_the_builder(tmp_path: Path):
    (tmp_path / "requirements.txt").write_text("numpy==1.21.6\nscikit-learn>=1.4\n")
    warnings = requirement_warnings(tmp_path)
    assert len(warnings) == 1
    assert warnings[0].startswith("requirements.txt: 'numpy==1.21.6' conflicts with FLOps' pin "
                                  "numpy==")


def test_a_repository_without_a_dependency_file_has_no_warnings(tmp_path: Path) -> None:
    assert requirement_warnings(tmp_path) == []
