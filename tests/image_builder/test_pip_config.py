"""The builder host's pip configuration in image builds (pure parts)."""

from __future__ import annotations

from pathlib import Path

from image_builder import containerfile as cf
from image_builder.buildah import BudOptions, bud_argv
from image_builder.pip_config import PipConfig, build_inputs, parse_config_list
from image_builder.settings import BuilderSettings

CONFIG_LIST = """\
:env:.cert='/etc/ssl/certs/ca-certificates.crt'
:env:.find-links='/opt/wheels'
global.extra-index-url='file:///opt/pypi/simple https://mirror.example/simple'
global.index-url='https://pypi.example/simple'
global.trusted-host='mirror.example'
global.constraint='/etc/xdg/pip/constraints.txt'
"""


def test_config_list_is_parsed_into_locations() -> None:
    assert parse_config_list(CONFIG_LIST) == PipConfig(
        index_url="https://pypi.example/simple",
        extra_index_urls=("file:///opt/pypi/simple", "https://mirror.example/simple"),
        find_links=("/opt/wheels",), trusted_hosts=("mirror.example",))
    assert not parse_config_list("global.cert='/x.pem'\n")


def test_local_locations_are_mounted_at_the_same_path_remote_ones_pass() -> None:
    inputs = build_inputs(parse_config_list(CONFIG_LIST))
    assert inputs.build_args == {
        "PIP_INDEX_URL": "https://pypi.example/simple",
        "PIP_EXTRA_INDEX_URL": "file:///opt/pypi/simple https://mirror.example/simple",
        "PIP_FIND_LINKS": "/opt/wheels",
        "PIP_TRUSTED_HOST": "mirror.example",
    }
    # a local index's pages link to ../../files: the directory above simple/ is mounted
    assert inputs.mounts == ((Path("/opt/pypi"), "/opt/pypi"),
                             (Path("/opt/wheels"), "/opt/wheels"))
    assert build_inputs(PipConfig()).build_args == {}


def test_build_declares_and_receives_the_pip_arguments() -> None:
    inputs = build_inputs(PipConfig(find_links=("/opt/wheels",)))
    recipe = cf.Recipe(base_image="b", python="python3", wheel_name="w.whl",
                       payload_dir=cf.REPO_DIR, env={}, labels={},
                       roles=(cf.Role("learner", "learner_base"),),
                       pip_args=tuple(inputs.build_args))
    deps = cf.render_containerfile(recipe).split("AS runtime")[0]
    assert "ARG PIP_CERT\nARG PIP_FIND_LINKS\n" in deps
    argv = bud_argv("buildah", BudOptions(containerfile=Path("C"), context=Path("ctx"),
                                          target="learner", manifest="m", platforms=(),
                                          build_args=inputs.build_args, mounts=inputs.mounts))
    assert argv[argv.index("-v"):argv.index("-v") + 2] == ["-v", "/opt/wheels:/opt/wheels:ro"]
    assert "PIP_FIND_LINKS=/opt/wheels" in argv and argv[-1] == "ctx"


def test_explicit_pip_config_wins_over_the_host() -> None:
    settings = BuilderSettings(project_id="p", pip_from_host=True,
                               pip_config={"find_links": ["/w"]})
    assert settings.effective_pip_config() == PipConfig(find_links=("/w",))
    assert BuilderSettings(project_id="p").effective_pip_config() == PipConfig()
