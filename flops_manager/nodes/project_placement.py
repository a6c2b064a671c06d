"""Placing a new project's learners on the owner's nodes at submission."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flops_contracts.errors import ErrorCode, FlopsError
from flops_dataplane.names import mock_data_tag
from flops_manager.lifecycle.actions import Role, service_name
from flops_manager.lifecycle.service_specs import LEARNER_DATA_TOKEN, MOCK_WRITE_TOKEN
from flops_manager.nodes.model import Node
from flops_manager.nodes.placement import (
    PlacementError,
    group_by_cluster,
    place_by_cluster,
    place_by_data,
)
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


def provider_token_key(project_id: str, learner: int) -> str:
    """The secret name of the mock data provider's write token on learner ``learner``'s node."""
    return MOCK_WRITE_TOKEN + service_name(project_id, Role.MOCK_DATA_PROVIDER, learner)


def mock_error(owned: list[Node], spec: Mapping[str, Any], *, now: float) -> FlopsError:
    """Say why a mock data project (``spec``, normalised) does not fit on the owner's nodes.

    Mock data is written to the owner's online FLOps nodes (partition i to learner i's node),
    like pushed data; there is no project-wide data server to fall back to.
    """
    training = spec["training"]
    learners = int(training["learners"])
    per = " in each cluster" if training.get("mode") == "hierarchical" else ""
    listed = ", ".join(f"{n.name} ({n.status(now)}, cluster {n.cluster})"
                       for n in sorted(owned, key=lambda n: n.name)) or "none"
    return FlopsError(
        f"mock data is written to your FLOps nodes (partition i to learner i's node), so the "
        f"project's {learners} learner(s){per} need {learners} online node(s){per}; your "
        f"nodes: {listed}. Start nodes (on the embedded stack: `flops down`, then "
        f"`flops up --nodes N`; elsewhere `flops node serve` or `flops node container-start`), "
        f"or lower training.learners",
        code=ErrorCode.INVALID_SPEC, details={"nodes": [n.name for n in owned]})


def place_project(nodes: NodeService, owned: list[Node], *, owner: str, project_id: str,
                  raw_spec: Mapping[str, Any], spec: dict[str, Any],
                  now: float) -> tuple[list[dict[str, Any]], dict[str, str], dict[str, Any]]:
    """Place the learners on ``owned``; return the placement, data tokens and spec.

    ``owned`` is the owner's nodes, read once by the caller.

    The spec's ``training.learners`` becomes the number of learners placed. A mock data project
    takes ``training.learners`` online nodes (per cluster when
    hierarchical), in name order; its partitions are written there under
    :func:`~flops_dataplane.names.mock_data_tag` by one mock data provider per
    node, each holding a write token for that tag on that node only. Rows and label counts are
    filled in when the providers report (until then 0 and empty).

    A hierarchical project gets one cluster per node cluster holding the tags
    (:func:`~flops_manager.nodes.placement.place_by_cluster`): each placement entry names its
    cluster aggregator (``aggregator``), ``training.learners`` becomes the largest cluster's
    learner count and ``min_available_learners`` the per-cluster minimum every cluster met
    (default 1).

    Raises
    ------
    FlopsError
        (422) When too few nodes hold the tags (naming them and the nodes; for a
        hierarchical project, in some cluster).
    """
    training = dict(spec["training"])
    hierarchical = training.get("mode") == "hierarchical"
    mock = spec.get("mock_data") is not None
    explicit = "learners" in (raw_spec.get("training") or {}) or mock
    learners = int(training["learners"]) if explicit else None
    minimum = int(training.get("min_available_learners") or
                  (training["learners"] if explicit else 1))
    # mock data: every online node qualifies (its partition is written there before training),
    # and every learner needs one
    wanted: list[str] = [] if mock else spec["data_tags"]
    if mock:
        minimum = int(training["learners"])
    try:
        if hierarchical:
            placed = place_by_cluster(owned, wanted, learners=learners, min_available=minimum,
                                      clusters=training.get("clusters"), now=now)
        else:
            placed = place_by_data(owned, wanted, learners=learners, min_available=minimum,
                                   now=now)
    except PlacementError as exc:
        if mock:
            raise mock_error(owned, spec, now=now) from None
        raise FlopsError(exc.message, code=ErrorCode.INVALID_SPEC,
                         details={"data_tags": exc.tags, "nodes": exc.holders}) from None
    by_name = {n.name: n for n in owned}
    tags = [mock_data_tag(project_id)] if mock else spec["data_tags"]
    tokens = {
        learner_token_key(project_id, p.learner): nodes.learner_grant(
            by_name[p.node], project_id=project_id, learner=p.learner, tags=tags)["token"]
        for p in placed
    }
    if mock:
        tokens.update({
            provider_token_key(project_id, p.learner): nodes.provider_grant(
                by_name[p.node], project_id=project_id, learner=p.learner, tags=tags)["token"]
            for p in placed})
    training["learners"] = len(placed)
    aggregators: dict[int, str] = {}
    if hierarchical:
        groups = group_by_cluster(placed)
        training["learners"] = max(len(g.learners) for g in groups)
        training["min_available_learners"] = minimum  # per cluster: met by every cluster
        aggregators = {learner: service_name(project_id, Role.CLUSTER_AGGREGATOR, g.index)
                       for g in groups for learner in g.learners}
    placement = [{**p.to_dict(), "location": by_name[p.node].location,
                  "label_histogram": {} if mock else label_histogram(by_name[p.node], tags),
                  **({"aggregator": aggregators[p.learner]} if hierarchical else {})}
                 for p in placed]
    return placement, tokens, {**spec, "training": training}
