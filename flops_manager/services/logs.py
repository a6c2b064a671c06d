"""Logs of a project's services, read through the orchestrator."""

from __future__ import annotations

import re

from flops_manager.lifecycle.actions import PROJECT_ROLES, Role
from flops_manager.lifecycle.service_specs import services_of
from flops_manager.ports.errors import NotFoundError
from flops_manager.ports.orchestrator import Orchestrator
from flops_manager.services.projects import ProjectService

ANSI_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
"""Terminal control sequences (CSI such as colours, OSC, two-byte escapes)."""


def strip_ansi(text: str) -> str:
    """``text`` without terminal colour and control sequences."""
    return ANSI_ESCAPE.sub("", text)


def tail_lines(text: str, lines: int) -> str:
    """Return the last ``lines`` lines of ``text``, without terminal control sequences."""
    kept = strip_ansi(text).splitlines()[-lines:] if lines > 0 else []
    return "\n".join(kept) + ("\n" if kept else "")


class LogService:
    """Read the captured output of a project's services."""

    def __init__(self, orchestrator: Orchestrator, projects: ProjectService) -> None:
        self.orchestrator = orchestrator
        self.projects = projects

    def logs(
        self, project_id: str, *, owner: str, role: Role | None, lines: int
    ) -> dict[str, dict[str, str]]:
        """Return ``{service: {instance: last lines}}`` for services that still exist.

        The backend forgets a service's output when the service is removed; what remains is
        what the orchestrator still holds.
        """
        project = self.projects.get(project_id, owner=owner)
        roles = (role,) if role is not None else PROJECT_ROLES
        out: dict[str, dict[str, str]] = {}
        for name in services_of(project, roles):
            try:
                found = self.orchestrator.service_logs(name)
            except NotFoundError:
                continue
            out[name] = {instance: tail_lines(text, lines) for instance, text in found.items()}
        return out
