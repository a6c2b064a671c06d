"""Placement by data: which of the owner's nodes get a learner of a project (pure).

A node *qualifies* for a project when it is online and holds data under every one of the
project's ``data_tags``. Without an explicit ``learners`` count, every qualifying node gets one
learner; with one, that many qualifying nodes do, those with the most rows first. Fewer
qualifying nodes than ``min_available_learners`` is an error naming the tags and the nodes
that hold them (and why the others do not count).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from flops_manager.nodes.model import Node


@dataclasses.dataclass(frozen=True)
class LearnerPlacement:
    """Learner ``learner`` runs on ``node`` and reads ``rows`` rows there."""

    learner: int
    node: str
    cluster: str
    rows: int

    def to_dict(self) -> dict[str, Any]:
        """The stored form."""
        return dataclasses.asdict(self)


class PlacementError(Exception):
    """Too few nodes hold the project's tags; ``holders`` lists the nodes that hold them."""

    def __init__(self, message: str, *, tags: Sequence[str], holders: Sequence[str]) -> None:
        super().__init__(message)
        self.message = message
        self.tags = list(tags)
        self.holders = list(holders)


def place_by_data(nodes: Sequence[Node], tags: Sequence[str], *, learners: int | None,
                  min_available: int, now: float) -> list[LearnerPlacement]:
    """Place one learner per qualifying node (see the module docstring).

    Parameters
    ----------
    nodes
        The project owner's nodes.
    tags
        The project's data tags (at least one).
    learners
        The explicit learner count, or ``None`` for one learner per qualifying node.
    min_available
        The fewest learners training may start with.
    now
        The current time (a node's online status depends on it).

    Raises
    ------
    PlacementError
        If fewer than ``min_available`` nodes qualify.
    """
    wanted = set(tags)
    holders = sorted((n for n in nodes if wanted <= n.tags()), key=lambda n: n.name)
    online = [n for n in holders if n.status(now) == "online"]
    needed = max(min_available, 1)
    if len(online) < needed:
        listed = ", ".join(f"{n.name} ({n.status(now)})" for n in holders) or "none"
        raise PlacementError(
            f"data tags {sorted(wanted)} are held by {len(online)} online node(s), fewer than "
            f"the {needed} learner(s) the project needs (min_available_learners); nodes "
            f"holding them: {listed}. Push the data to more nodes with `flops data push`, or "
            f"lower min_available_learners",
            tags=sorted(wanted), holders=[n.name for n in holders])
    chosen = online
    if learners is not None:
        chosen = sorted(online, key=lambda n: (-n.rows(list(tags)), n.name))[:learners]
        chosen.sort(key=lambda n: n.name)
    return [LearnerPlacement(i, n.name, n.cluster, n.rows(list(tags)))
            for i, n in enumerate(chosen)]


@dataclasses.dataclass(frozen=True)
class ClusterGroup:
    """One cluster of a hierarchical project on node data: its aggregator and learners.

    ``index`` is the cluster aggregator's index (clusters in name order); ``learners`` the
    indices of the learners on that cluster's nodes.
    """

    index: int
    cluster: str
    learners: tuple[int, ...]


def group_by_cluster(placed: Sequence[LearnerPlacement]) -> list[ClusterGroup]:
    """The clusters of ``placed`` learners in name order, each with its learners."""
    clusters = sorted({p.cluster for p in placed})
    return [ClusterGroup(i, c, tuple(p.learner for p in placed if p.cluster == c))
            for i, c in enumerate(clusters)]


def node_clusters(placement: Sequence[dict[str, Any]]) -> tuple[str, ...]:
    """The clusters of a stored placement in name order (the cluster aggregators' order)."""
    return tuple(sorted({str(p["cluster"]) for p in placement}))


def place_by_cluster(nodes: Sequence[Node], tags: Sequence[str], *,
                     learners: int | None, min_available: int,
                     clusters: Sequence[str] | None, now: float) -> list[LearnerPlacement]:
    """Place a hierarchical project: :func:`place_by_data` within each node cluster.

    Every cluster (of those named in ``clusters``, or of all) whose nodes hold the tags gets
    one learner per qualifying node (``learners``: at most that many, most rows first), and
    later one cluster aggregator. Learners are numbered cluster by cluster (clusters in name
    order, nodes in name order within), so each cluster's learners are consecutive.

    Raises
    ------
    PlacementError
        If no cluster's nodes hold the tags, a named cluster's do not, or a cluster has fewer
        than ``min_available`` (a per-cluster count in hierarchical training) online holders.
    """
    wanted = set(tags)
    eligible = [n for n in nodes if not clusters or n.cluster in clusters]
    holding = sorted({n.cluster for n in eligible if wanted <= n.tags()})
    if not holding:  # the generic error: nothing holds the tags
        place_by_data(eligible, tags, learners=learners, min_available=max(min_available, 1),
                      now=now)
    missing = sorted(set(clusters or ()) - set(holding))
    if missing:
        raise PlacementError(
            f"no node of cluster(s) {missing} holds data tags {sorted(wanted)}; clusters with "
            f"nodes holding them: {', '.join(holding) or 'none'}",
            tags=sorted(wanted), holders=[n.name for n in eligible if wanted <= n.tags()])
    placed: list[LearnerPlacement] = []
    for cluster in holding:
        try:
            local = place_by_data([n for n in eligible if n.cluster == cluster], tags,
                                  learners=learners, min_available=min_available, now=now)
        except PlacementError as exc:
            raise PlacementError(f"cluster {cluster}: {exc.message} (min_available_learners "
                                 f"counts per cluster in hierarchical training)",
                                 tags=exc.tags, holders=exc.holders) from None
        offset = len(placed)
        placed.extend(dataclasses.replace(p, learner=offset + p.learner) for p in local)
    return placed
