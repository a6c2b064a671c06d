from __future__ import annotations

import pytest

from flops_contracts.errors import ConfigError
from flops_manager.adapters.oakestra import build_oakestra_orchestrator, load_oakestra_settings
from flops_manager.adapters.oakestra.orchestrator import OakestraOrchestrator
from flops_manager.adapters.oakestra.settings import base_url_from_uri
from flops_manager.adapters.oakestra.versions import OakestraVersion
from flops_manager.settings import Settings

ENV = {"FLOPS_OAKESTRA_USERNAME": "flops", "FLOPS_OAKESTRA_PASSWORD": "hunter2-secret"}


@pytest.mark.parametrize(("uri", "url"), [
    ("oakestra://root:10000", "http://root:10000"),
    ("oakestra://root", "http://root:10000"),
    ("oakestra+https://root.example:443/", "https://root.example:443"),
    ("oakestra://[::1]:10000", "http://[::1]:10000"),
])
def test_uri(uri, url):
    assert base_url_from_uri(uri) == url


@pytest.mark.parametrize("uri", ["http://root:10000", "oakestra://", "oakestra://a:b@root",
                                 "oakestra://root/api", "oakestra://root?x=1",
                                 "oakestra://root:99999"])
def test_bad_uri(uri):
    with pytest.raises(ConfigError):
        base_url_from_uri(uri)


def test_settings_from_environment():
    env = {**ENV, "FLOPS_OAKESTRA_VERSION": "v0.4.400", "FLOPS_OAKESTRA_RETRIES": "5",
           "FLOPS_OAKESTRA_VERIFY_TLS": "false",
           "FLOPS_OAKESTRA_ADDONS": '{"builder": ["image-builder"]}'}
    settings = load_oakestra_settings("oakestra+https://root:10000", env)
    assert settings.base_url == "https://root:10000"
    assert settings.version is OakestraVersion.V0_4_400
    assert settings.retries == 5 and settings.verify is False
    assert settings.sla_options().addons == {"builder": ("image-builder",)}
    assert "hunter2-secret" not in repr(settings)
    assert load_oakestra_settings("oakestra://r", {**ENV, "FLOPS_OAKESTRA_CA_BUNDLE": "/ca"}
                                  ).verify == "/ca"
    assert load_oakestra_settings("oakestra://r", ENV).version is OakestraVersion.V0_4_411


def test_missing_or_invalid_settings_name_the_variable():
    with pytest.raises(ConfigError, match="FLOPS_OAKESTRA_PASSWORD"):
        load_oakestra_settings("oakestra://r", {"FLOPS_OAKESTRA_USERNAME": "x"})
    with pytest.raises(ConfigError, match="FLOPS_OAKESTRA_VERSION"):
        load_oakestra_settings("oakestra://r", {**ENV, "FLOPS_OAKESTRA_VERSION": "v9"})


def test_builder_does_no_io(monkeypatch):
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    orch = build_oakestra_orchestrator("oakestra://127.0.0.1:1", Settings())
    assert isinstance(orch, OakestraOrchestrator)
    orch.close()


def test_single_host_settings_default_off():
    default = load_oakestra_settings("oakestra://r", ENV)
    assert default.rr_subnet == "10.30.0.0/16" and default.allow_environment_images is False
    assert default.sla_options().allow_environment_images is False
    env = {**ENV, "FLOPS_OAKESTRA_RR_SUBNET": "127.30.0.0/16",
           "FLOPS_OAKESTRA_ALLOW_ENVIRONMENT_IMAGES": "true"}
    single = load_oakestra_settings("oakestra://r", env)
    assert single.address_pool().address(0) == "127.30.128.1"
    assert single.sla_options().allow_environment_images is True
    with pytest.raises(ConfigError, match="FLOPS_OAKESTRA_RR_SUBNET"):
        load_oakestra_settings("oakestra://r", {**ENV, "FLOPS_OAKESTRA_RR_SUBNET": "10.30.0.0/30"})
