"""Placing a new project's learners on the owner's nodes at submission."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flops_contracts.errors import ErrorCode, FlopsError
from flops_manager.lifecycle.actions import Role, service_name
from flops_manager.lifecycle.service_specs import LEARNER_DATA_TOKEN
from flops_manager.nodes.model import Node
from flops_manager.nodes.placement import PlacementError, place_by_data
from flops_manager.nodes.service import NodeService


def uses_nodes(spec: Mapping[str, Any]) -> bool:
    """Whether a (normalised) spec trains on node data: data tags and no mock data."""
    return bool(spec.get("data_tags")) and spec.get("mock_data") is None


def node_learner_default(spec: Mapping[str, Any]) -> Mapping[str, Any]:
    """Return ``spec`` with ``learners`` = ``min_available_learners`` for node data.

    Only when it trains on node data without a learner count: placement sets the count, so
    the default of 2 must not make a larger ``min_available_learners`` invalid.
    """
    training = spec.get("training")
    if not uses_nodes(spec) or not isinstance(training, Mapping) or "learners" in training:
        return spec
    wanted = training.get("min_available_learners")
    if not isinstance(wanted, int) or isinstance(wanted, bool):
        return spec
    return {**spec, "training": {**training, "learners": wanted}}


def label_histogram(node: Node, tags: list[str]) -> dict[str, int]:
    """The label counts of ``node``'s data under ``tags`` (where a label column was named)."""
    total: dict[str, int] = {}
    for dataset in node.datasets:
        if dataset["tag"] in tags:
            for label, count in (dataset.get("label_histogram") or {}).items():
                total[label] = total.get(label, 0) + int(count)
    return dict(sorted(total.items()))


def learner_token_key(project_id: str, learner: int) -> str:
    """The secret name of learner ``learner``'s data token."""
    return LEARNER_DATA_TOKEN + service_name(project_id, Role.LEARNERS, learner)


def place_project(nodes: NodeService, *, owner: str, project_id: str,
                  raw_spec: Mapping[str, Any], spec: dict[str, Any],
                  now: float) -> tuple[list[dict[str, Any]], dict[str, str], dict[str, Any]]:
    """Place the learners; return the placement, the learners' data tokens and the spec.

    The spec's ``training.learners`` becomes the number of learners placed.

    Raises
    ------
    FlopsError
        (422) When too few nodes hold the tags (naming them and the nodes), or for a
        hierarchical project (not placed on nodes yet).
    """
    training = dict(spec["training"])
    if training.get("mode") == "hierarchical":
        raise FlopsError("hierarchical projects cannot train on node data yet: use mock_data "
                         "or a classic project", code=ErrorCode.INVALID_SPEC)
    explicit = "learners" in (raw_spec.get("training") or {})
    try:
        placed = place_by_data(
            nodes.nodes(owner), spec["data_tags"],
            learners=int(training["learners"]) if explicit else None,
            min_available=int(training.get("min_available_learners") or
                              (training["learners"] if explicit else 1)),
            now=now)
    except PlacementError as exc:
        raise FlopsError(exc.message, code=ErrorCode.INVALID_SPEC,
                         details={"data_tags": exc.tags, "nodes": exc.holders}) from None
    by_name = {n.name: n for n in nodes.nodes(owner)}
    tokens = {
        learner_token_key(project_id, p.learner): nodes.learner_grant(
            by_name[p.node], project_id=project_id, learner=p.learner,
            tags=spec["data_tags"])["token"]
        for p in placed
    }
    training["learners"] = len(placed)
    placement = [{**p.to_dict(), "location": by_name[p.node].location,
                  "label_histogram": label_histogram(by_name[p.node], spec["data_tags"])}
                 for p in placed]
    return placement, tokens, {**spec, "training": training}
