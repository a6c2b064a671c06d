"""Request and response schemas of the projects resource."""

from __future__ import annotations

from marshmallow import fields, validate

from flops_manager.api.common import PAGE, PAGE_SIZE, SpecField, StrictSchema
from flops_manager.lifecycle.actions import PROJECT_ROLES
from flops_manager.lifecycle.state import Phase


class RepositorySchema(StrictSchema):
    """Where the user's code is."""

    url = fields.String(
        required=True,
        validate=validate.Length(min=1, max=2048),
        metadata={"description": "https://..., ssh://..., git@host:path, file:///... (local)"},
    )
    ref = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(min=1, max=255)
    )


class ProjectCreateSchema(StrictSchema):
    """Body of ``POST /projects``."""

    spec = SpecField(required=True)
    repository = fields.Nested(RepositorySchema, required=True)


class ProjectQuerySchema(StrictSchema):
    """Query of ``GET /projects``."""

    page = PAGE
    page_size = PAGE_SIZE
    phase = fields.String(validate=validate.OneOf([p.value for p in Phase]))
    cursor = fields.String(
        validate=validate.Length(max=512),
        metadata={
            "description": "keyset pagination: the next_cursor of the previous page, or empty "
            "for the newest page. With a cursor, page is ignored and total is not counted "
            "(null), so every page costs the same at any depth; page=N (offset) still works "
            "but gets slower with depth and counts the total"
        },
    )


class ProgressSchema(StrictSchema):
    """Training progress."""

    round = fields.Integer(required=True)
    total_rounds = fields.Integer(required=True)
    metrics = fields.Dict(required=True)


class LinksSchema(StrictSchema):
    """Browser links into MLflow."""

    tracking = fields.String(allow_none=True)
    inference = fields.String(allow_none=True, metadata={"description": "inference endpoint"})
    mlflow_runs = fields.String(
        allow_none=True, metadata={"description": "the experiment's training runs (MLflow UI)"})
    mlflow_run = fields.String(allow_none=True)
    mlflow_model = fields.String(allow_none=True)


class PlacementSchema(StrictSchema):
    """Where one learner of a project trained on node data (pushed or mock) runs."""

    learner = fields.Integer(required=True)
    node = fields.String(required=True)
    cluster = fields.String(required=True)
    rows = fields.Integer(required=True, metadata={
        "description": "rows under the data tags (mock data: 0 until the node's partition is "
                       "written)"})
    label_histogram = fields.Dict(keys=fields.String(), values=fields.Integer(), metadata={
        "description": "label -> rows of the learner's data, where its data set names a label "
                       "column"})
    aggregator = fields.String(metadata={
        "description": "hierarchical: the cluster aggregator service the learner reports to"})


class ProjectSchema(StrictSchema):
    """A project as returned by the API."""

    id = fields.String(required=True)
    owner = fields.String(required=True)
    phase = fields.String(required=True, validate=validate.OneOf([p.value for p in Phase]))
    spec = SpecField(required=True)
    repository = fields.Nested(RepositorySchema, required=True)
    components = fields.Dict(
        keys=fields.String(), values=fields.Dict(), required=True,
        metadata={"description": "'component/instance' -> latest state"},
    )
    progress = fields.Nested(ProgressSchema, required=True)
    model = fields.Dict(allow_none=True)
    placement = fields.List(fields.Nested(PlacementSchema), required=True, metadata={
        "description": "which learner runs on which FLOps node (data_tags without mock_data)"})
    build = fields.Dict(
        allow_none=True, metadata={"description": "commit, cache hit, timings, images"}
    )
    links = fields.Nested(LinksSchema, required=True)
    last_error = fields.String(allow_none=True)
    pending_actions = fields.List(fields.Dict(), required=True)
    created_at = fields.String(required=True)
    updated_at = fields.String(required=True)
    phase_since = fields.String(required=True)


class ProjectPageSchema(StrictSchema):
    """One page of projects."""

    items = fields.List(fields.Nested(ProjectSchema), required=True)
    page = fields.Integer(
        required=True, allow_none=True, metadata={"description": "null with a cursor"}
    )
    page_size = fields.Integer(required=True)
    total = fields.Integer(
        required=True, allow_none=True, metadata={"description": "null with a cursor"}
    )
    next_cursor = fields.String(
        required=True, allow_none=True,
        metadata={"description": "pass as cursor for the next page; null on the last page"},
    )


class EventQuerySchema(StrictSchema):
    """Query of ``GET /projects/<id>/events``."""

    after = fields.Integer(load_default=0, validate=validate.Range(min=0, max=2**53))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    rejected = fields.Boolean(
        load_default=False,
        metadata={"description": "list the messages refused for this project instead "
                  "(forged or misdirected events, refused enrollments)"},
    )


class StreamQuerySchema(StrictSchema):
    """Query of the event stream."""

    after = fields.Integer(load_default=0, validate=validate.Range(min=0, max=2**53))


class StoredEventSchema(StrictSchema):
    """An event with its sequence number."""

    seq = fields.Integer(required=True)
    received_at = fields.String(required=True)
    event = fields.Dict(required=True)


class RejectedEventSchema(StrictSchema):
    """A message refused for a project, with the reason."""

    id = fields.String(required=True)
    topic = fields.String(required=True)
    payload = fields.String(required=True)
    reason = fields.String(required=True)
    received_at = fields.String(required=True)


class EventPageSchema(StrictSchema):
    """Events after a sequence number (with ``rejected=true``: the refused messages)."""

    items = fields.List(fields.Nested(StoredEventSchema), required=True)
    rejected = fields.List(fields.Nested(RejectedEventSchema))
    total = fields.Integer(required=True)
    next_after = fields.Integer(required=True)


class LogQuerySchema(StrictSchema):
    """Which logs to return."""

    component = fields.String(
        validate=validate.OneOf([r.value for r in PROJECT_ROLES]),
        metadata={"description": "one service role; all roles when omitted"},
    )
    lines = fields.Integer(load_default=200, validate=validate.Range(min=1, max=10_000))


class LogsSchema(StrictSchema):
    """Recent output per service and instance."""

    services = fields.Dict(
        keys=fields.String(), values=fields.Dict(keys=fields.String(), values=fields.String()),
        required=True,
    )
