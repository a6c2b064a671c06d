import json

import pytest
from pydantic import BaseModel

from flops_contracts.config import load_settings, settings_to_env
from flops_contracts.errors import ConfigError
from flops_contracts.spec import TrainingSpec


class Demo(BaseModel):
    address: str
    count: int = 1
    tags: list[str] = []
    training: TrainingSpec = TrainingSpec()
    optional: str | None = None


def test_env_overrides_file(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"address": "a:1", "count": 5}))
    env = {"FLOPS_CONFIG_FILE": str(path), "FLOPS_COUNT": "7", "FLOPS_TAGS": '["x", "y"]',
           "FLOPS_TRAINING": '{"rounds": 9}'}
    settings = load_settings(Demo, environ=env)
    assert (settings.address, settings.count, settings.tags) == ("a:1", 7, ["x", "y"])
    assert settings.training.rounds == 9


def test_round_trip_through_env():
    original = Demo(address="h:2", count=3, tags=["t"], training=TrainingSpec(rounds=4))
    assert load_settings(Demo, environ=settings_to_env(original)) == original


def test_errors_name_the_variable(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_settings(Demo, environ={"FLOPS_COUNT": "many"})
    assert "FLOPS_ADDRESS" in info.value.message and "FLOPS_COUNT" in info.value.message
    with pytest.raises(ConfigError, match="FLOPS_TAGS must be JSON"):
        load_settings(Demo, environ={"FLOPS_ADDRESS": "x", "FLOPS_TAGS": "[oops"})
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(Demo, environ={"FLOPS_CONFIG_FILE": str(tmp_path / "missing.json")})


def test_an_empty_optional_setting_is_unset() -> None:
    """Compose files pass ``${X:-}``: empty must not become a path, a name or a URL."""
    settings = load_settings(Demo, environ={"FLOPS_ADDRESS": "a:1", "FLOPS_OPTIONAL": ""})
    assert settings.optional is None
    assert load_settings(Demo, environ={"FLOPS_ADDRESS": "a:1", "FLOPS_OPTIONAL": "x"}
                         ).optional == "x"
    # a setting without a None default keeps an explicit empty value
    assert load_settings(Demo, environ={"FLOPS_ADDRESS": ""}).address == ""
