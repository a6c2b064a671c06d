"""Pure parts: URL and ref checks, dependency files."""

from __future__ import annotations

from pathlib import Path

import pytest

from flops_contracts.errors import ContractError
from image_builder.dependencies import read_dependencies
from image_builder.outcome import SourceError
from image_builder.sources import check_ref, parse_source


@pytest.mark.parametrize("url", [
    "https://github.com/org/repo.git", "ssh://git@host/org/repo.git", "git@host:org/repo.git",
    "git://host/repo.git",
])
def test_remote_urls_are_accepted(url: str) -> None:
    assert not parse_source(url, allow_local=False).is_local


@pytest.mark.parametrize(("url", "message"), [
    ("ext::sh -c id", "remote helper"), ("fd::0", "remote helper"),
    ("transport::x", "remote helper"), ("-u", "starts with '-'"),
    ("ssh://-oProxyCommand=id/x", "host starting"), ("git@host:-x", "starts with '-'"),
    ("https://user:secret@host/r.git", "password"), ("", "empty"),
    ("file:///tmp/repo", "ALLOW_LOCAL"), ("/tmp/repo", "ALLOW_LOCAL"),
    ("https://host/a\nb", "control"),
])
def test_dangerous_urls_are_rejected(url: str, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        parse_source(url, allow_local=False)


@pytest.mark.parametrize("ref", ["main", "v1.0", "feature/x", "refs/heads/main", "a" * 40])
def test_good_refs(ref: str) -> None:
    assert check_ref(ref) == ref


@pytest.mark.parametrize("ref", ["--upload-pack=x", "-b", "a..b", "a b", "x.lock", "x@{1}"])
def test_bad_refs(ref: str) -> None:
    with pytest.raises(SourceError):
        check_ref(ref)


def test_pyproject_dependencies(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\ndependencies = ["numpy>=1.26", "scikit-learn"]\n')
    spec = read_dependencies(tmp_path)
    assert spec.requirements == ("numpy>=1.26", "scikit-learn")
    generated = spec.requirements_file(tmp_path / "gen.txt")
    assert generated is not None and generated.read_text() == "numpy>=1.26\nscikit-learn\n"


def test_requirements_txt_is_used_as_is(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("numpy\n")
    spec = read_dependencies(tmp_path)
    assert spec.requirements is None and spec.requirements_file(tmp_path / "g") == spec.path


def test_missing_or_broken_dependency_files(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="no dependency file"):
        read_dependencies(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[project\n")
    with pytest.raises(ContractError, match="not valid TOML"):
        read_dependencies(tmp_path)
