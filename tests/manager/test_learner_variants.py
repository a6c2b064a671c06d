"""Which platform variant each learner runs: spec, node reports, service specs (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from flops_contracts.errors import FlopsError
from flops_contracts.spec import parse_spec
from flops_manager.lifecycle.actions import Action, ActionKind
from flops_manager.lifecycle.service_specs import Placement, action_specs
from flops_manager.lifecycle.state import Project
from flops_manager.lifecycle.variants import learner_platforms, variant_images
from flops_manager.ports.errors import PermanentError
from flops_manager.ports.orchestrator import BuildTarget, ServiceSpec
from flops_manager.settings import Settings

AMD, ARM = "linux/amd64", "linux/arm64"
VARIANTS = {AMD: "reg/l@sha256:aaa", ARM: "reg/l@sha256:bbb"}


def test_spec_cycles_over_learners_and_node_reports_win() -> None:
    assert learner_platforms(3, requested=[]) == ("", "", "")
    assert learner_platforms(3, requested=[AMD, ARM]) == (AMD, ARM, AMD)
    assert learner_platforms(3, requested=[AMD], node_platforms=[None, ARM]) == (AMD, ARM, AMD)
    assert learner_platforms(2, requested=[], node_platforms=[ARM, None]) == (ARM, "")


def test_variant_images_pin_digests_and_name_a_missing_platform() -> None:
    assert variant_images(("", ""), VARIANTS) == ()
    assert variant_images((AMD, "", ARM), VARIANTS) == (VARIANTS[AMD], "", VARIANTS[ARM])
    with pytest.raises(PermanentError, match=r"linux/arm64 variant.*has linux/amd64"):
        variant_images((ARM,), {AMD: VARIANTS[AMD]})


def test_spec_accepts_only_built_learner_platforms() -> None:
    spec = parse_spec({"platforms": [AMD, ARM], "learner_platforms": [ARM]})
    assert [str(p) for p in spec.learner_platforms] == [ARM]
    with pytest.raises(FlopsError) as info:
        parse_spec({"learner_platforms": [ARM]})
    assert "not in platforms" in str(info.value.details["errors"])


def _learners(spec: dict[str, Any], build: dict[str, Any],
              node_platforms: tuple[str | None, ...] = ()) -> list[ServiceSpec]:
    project = Project(id="p0123456789abcdef", owner="alice", spec=spec,
                      repository={"url": "https://h/r.git"}, created_at=0, updated_at=0,
                      build=build)
    place = Placement(target=BuildTarget.IMAGE, events_uri="", clusters=("c1", "c2"),
                      resolve=lambda name: f"{name}:9", node_platforms=node_platforms)
    return list(action_specs(Action(ActionKind.DEPLOY_LEARNERS, project.id), project,
                             Settings(data_dir="/data"), place))


def test_learner_service_runs_each_instances_variant() -> None:
    build = {"images": {"learner": "reg/l:1", "aggregator": "reg/a:1"},
             "variants": {"learner": VARIANTS}}
    (plain,) = _learners({"training": {"learners": 2}}, build)
    assert plain.instance_images == () and plain.image_of(1) == "reg/l:1"
    spec = {"training": {"learners": 2}, "platforms": [AMD, ARM], "learner_platforms": [AMD, ARM]}
    (mixed,) = _learners(spec, build)
    assert [mixed.image_of(i) for i in range(2)] == [VARIANTS[AMD], VARIANTS[ARM]]
    (reported,) = _learners({"training": {"learners": 2}, "platforms": [AMD, ARM]}, build,
                            node_platforms=(ARM, None))
    assert [reported.image_of(i) for i in range(2)] == [VARIANTS[ARM], "reg/l:1"]


def test_hierarchical_groups_take_their_slice_of_learners() -> None:
    build = {"images": {"learner": "reg/l:1"}, "variants": {"learner": VARIANTS}}
    spec = {"training": {"mode": "hierarchical", "learners": 2, "cycles": 1},
            "platforms": [AMD, ARM], "learner_platforms": [ARM, AMD, AMD, AMD]}
    first, second = _learners(spec, build)
    assert first.instance_images == (VARIANTS[ARM], VARIANTS[AMD])
    assert second.instance_images == (VARIANTS[AMD], VARIANTS[AMD])
