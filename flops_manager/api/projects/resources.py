# mypy: disable-error-code="untyped-decorator"
"""Projects: create, list, get, cancel, delete, events and the event stream."""

from __future__ import annotations

from typing import Any

from flask import Response, request
from flask.views import MethodView
from flask_smorest import Blueprint

from flops_manager.api.context import current_user, services
from flops_manager.api.openapi import PROJECT_LINKS, links
from flops_manager.api.projects import schemas
from flops_manager.api.projects.stream import sse_events
from flops_manager.api.projects.views import event_view, project_view, rejected_view
from flops_manager.lifecycle.actions import Role
from flops_manager.lifecycle.state import Phase
from flops_manager.services.projects import next_cursor as next_cursor_after

blp = Blueprint(
    "projects", __name__, url_prefix="/api/v1/projects", description="Federated learning projects"
)
ID = "<project_id>"
SSE_EVENT = {
    "type": "object",
    "description": "one Server-Sent Event: 'event: event' with a stored event as JSON in "
    "'data' and its sequence number as 'id' (resume with Last-Event-ID), or 'event: end' when "
    "the stream reached its longest duration",
    "properties": {"id": {"type": "string"}, "event": {"type": "string"},
                   "data": {"type": "string"}, "retry": {"type": "integer"}},
}


def _view(project: Any) -> dict[str, Any]:
    return project_view(project, services().settings.mlflow_public_url)


@blp.route("")
class Projects(MethodView):
    """The caller's projects."""

    @blp.arguments(schemas.ProjectQuerySchema, location="query")
    @blp.response(200, schemas.ProjectPageSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List the caller's projects, newest first (keyset pages with ``cursor``)."""
        phase = Phase(args["phase"]) if args.get("phase") else None
        size = args["page_size"]
        if "cursor" in args:
            items, next_cursor = services().projects.list_after(
                owner=current_user(), phase=phase, cursor=args["cursor"], page_size=size
            )
            page, total = None, None
        else:
            page, found = args["page"], services().projects.list_projects(
                owner=current_user(), phase=phase, page=args["page"], page_size=size
            )
            items, total = list(found.items), found.total
            next_cursor = next_cursor_after(items, more=page * size < total)
        return {
            "items": [_view(p) for p in items],
            "page": page,
            "page_size": size,
            "total": total,
            "next_cursor": next_cursor,
        }

    @blp.arguments(schemas.ProjectCreateSchema)
    @blp.response(201, schemas.ProjectSchema)
    @blp.doc(responses=links(201, PROJECT_LINKS, {"project_id": "$response.body#/id"}))
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Submit a project; it starts in phase ``submitted``."""
        project = services().projects.create(
            owner=current_user(), spec=body["spec"], repository=body["repository"]
        )
        return _view(project)


@blp.route(f"/{ID}")
class ProjectItem(MethodView):
    """One project."""

    @blp.response(200, schemas.ProjectSchema)
    def get(self, project_id: str) -> dict[str, Any]:
        """Return the project with status, progress, model and links."""
        return _view(services().projects.get(project_id, owner=current_user()))

    @blp.response(202, schemas.ProjectSchema)
    def delete(self, project_id: str) -> dict[str, Any]:
        """Cancel the project, remove its services, then delete it."""
        return _view(services().projects.delete(project_id, owner=current_user()))


@blp.route(f"/{ID}/cancel")
class ProjectCancel(MethodView):
    """Cancellation."""

    @blp.response(202, schemas.ProjectSchema)
    def post(self, project_id: str) -> dict[str, Any]:
        """Cancel a running project."""
        return _view(services().projects.cancel(project_id, owner=current_user()))


@blp.route(f"/{ID}/logs")
class ProjectLogs(MethodView):
    """Captured output of the project's services."""

    @blp.arguments(schemas.LogQuerySchema, location="query")
    @blp.response(200, schemas.LogsSchema)
    def get(self, args: dict[str, Any], project_id: str) -> dict[str, Any]:
        """Return the last lines of each instance's output (services that still exist)."""
        role = Role(args["component"]) if args.get("component") else None
        found = services().logs.logs(
            project_id, owner=current_user(), role=role, lines=args["lines"]
        )
        return {"services": found}


@blp.route(f"/{ID}/events")
class ProjectEvents(MethodView):
    """Stored events of a project."""

    @blp.arguments(schemas.EventQuerySchema, location="query")
    @blp.response(200, schemas.EventPageSchema)
    def get(self, args: dict[str, Any], project_id: str) -> dict[str, Any]:
        """Return events with ``seq > after`` in sequence order (or the rejected ones)."""
        if args["rejected"]:
            refused = services().projects.rejected_events(
                project_id, owner=current_user(), limit=args["limit"]
            )
            return {"items": [], "rejected": [rejected_view(r) for r in refused],
                    "total": len(refused), "next_after": args["after"]}
        items, total = services().projects.events(
            project_id, owner=current_user(), after_seq=args["after"], limit=args["limit"]
        )
        return {
            "items": [event_view(e) for e in items],
            "total": total,
            "next_after": items[-1].seq if items else args["after"],
        }


@blp.route(f"/{ID}/events/stream")
class ProjectEventStream(MethodView):
    """Live events as Server-Sent Events."""

    @blp.arguments(schemas.StreamQuerySchema, location="query")
    @blp.doc(
        responses={
            "200": {
                "description": "text/event-stream of events (bounded duration)",
                "content": {"text/event-stream": {"schema": SSE_EVENT}},
            }
        }
    )
    @blp.alt_response(429, response="DEFAULT_ERROR")  # this user's streams: Retry-After
    @blp.alt_response(503, response="DEFAULT_ERROR")  # every stream slot in use: Retry-After
    def get(self, args: dict[str, Any], project_id: str) -> Response:
        """Stream events with ``seq > after`` (or ``Last-Event-ID``).

        Each user may hold ``FLOPS_SSE_STREAMS_PER_OWNER`` streams at once, and all streams
        together leave ``FLOPS_API_RESERVED_THREADS`` API threads to other requests.
        """
        found = services()
        owner = current_user()
        found.projects.get(project_id, owner=owner)
        release = found.streams.acquire(owner)
        after = args["after"]
        last_id = request.headers.get("Last-Event-ID", "")
        if last_id.isdigit() and len(last_id) < 16:
            after = max(after, int(last_id))
        settings = found.settings
        stream = sse_events(
            found.store,
            project_id,
            after=after,
            keepalive_s=settings.sse_keepalive_s,
            max_s=settings.sse_max_s,
            poll_s=settings.sse_poll_s,
        )
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        response = Response(stream, mimetype="text/event-stream", headers=headers)
        response.call_on_close(release)  # the server closes it when the stream ends or breaks
        return response
