"""What ``flops project logs`` shows of the messages refused for a project."""

from __future__ import annotations

from typing import Any

from flops_manager.cli.client import ApiClient

LIMIT = 1000


def describe_rejected(rejected: dict[str, Any]) -> str:
    """One line per refused message: when, where it came from and why (pure)."""
    return f"rejected | {rejected['received_at']} {rejected['topic']}: {rejected['reason']}"


def rejected_lines(client: ApiClient, project_id: str) -> list[str]:
    """The project's refused messages (forged events, refused enrollments), oldest first."""
    page = client.request("GET", f"projects/{project_id}/events",
                          params={"rejected": "true", "limit": LIMIT})
    return [describe_rejected(r) for r in page.get("rejected") or []]
