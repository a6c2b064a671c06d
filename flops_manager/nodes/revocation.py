"""Which projects' learner data tokens a node must refuse from now on (pure).

A learner's read token is verified by the node alone (it carries no revocation of its own), so
each inventory report names the projects whose learner tokens the node has accepted, and the
manager answers with those that ended: the node then refuses their tokens, even before they
expire.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from flops_manager.lifecycle.state import Project


def ended_projects(owner: str, project_ids: Iterable[str],
                   project_of: Callable[[str], Project | None]) -> list[str]:
    """The projects of ``project_ids`` whose learners may no longer read ``owner``'s node.

    A project ended (completed, failed, cancelled), is being deleted, is gone, or is not
    ``owner``'s (a node serves only its owner's projects).
    """
    ended = []
    for project_id in dict.fromkeys(project_ids):
        project = project_of(project_id)
        if (project is None or project.owner != owner or project.terminal
                or project.deleting):
            ended.append(project_id)
    return ended
