"""Credentials handed to components in a file (never in an SLA or a command line)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flops_contracts.entrypoint import load_secrets_file
from flops_contracts.errors import ConfigError


def test_secrets_file_fills_missing_variables(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"FLOPS_DATA_TOKEN": "t0k", "FLOPS_MQTT_PASSWORD": "pw"}))
    env = {"FLOPS_SECRETS_FILE": str(path), "FLOPS_MQTT_PASSWORD": "explicit"}
    assert load_secrets_file(env) == ["FLOPS_DATA_TOKEN"]
    assert env["FLOPS_DATA_TOKEN"] == "t0k" and env["FLOPS_MQTT_PASSWORD"] == "explicit"
    assert load_secrets_file({}) == []


@pytest.mark.parametrize("content, message", [
    (None, "cannot read"), ("{", "not valid JSON"), ('{"A": 1}', "JSON object of strings"),
])
def test_bad_secrets_files_are_named(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "s.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_secrets_file({"FLOPS_SECRETS_FILE": str(path)})
