"""Schemas of the node resources."""

from __future__ import annotations

from marshmallow import fields, validate

from flops_manager.api.common import StrictSchema

NAME = validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$",
                       error="use 1-63 letters, digits, '_', '.', '-', starting with a letter "
                             "or digit")


class DatasetSchema(StrictSchema):
    """One data set a node holds."""

    tag = fields.String(required=True)
    name = fields.String(required=True)
    rows = fields.Integer(required=True)
    bytes = fields.Integer(required=True)
    schema_fingerprint = fields.String(required=True)
    created = fields.String()
    label_column = fields.String()
    label_histogram = fields.Dict(keys=fields.String(), values=fields.Integer())


class NodeSchema(StrictSchema):
    """An enrolled node as its owner sees it."""

    name = fields.String(required=True)
    cluster = fields.String(required=True)
    platform = fields.String(required=True)
    status = fields.String(required=True, metadata={"enum": ["enrolled", "online", "offline"]})
    last_seen = fields.Float(allow_none=True)
    enrolled_at = fields.Float(required=True)
    location = fields.String(allow_none=True, metadata={"description": "its data server"})
    datasets = fields.List(fields.Nested(DatasetSchema), required=True)


class NodeListSchema(StrictSchema):
    """The caller's nodes."""

    items = fields.List(fields.Nested(NodeSchema), required=True)


class NodeTokenSchema(StrictSchema):
    """A single-use node token (shown once; give it to the node agent as FLOPS_NODE_TOKEN)."""

    name = fields.String(required=True)
    token = fields.String(required=True)
    expires_at = fields.Float(required=True)


class DataGrantRequestSchema(StrictSchema):
    """What the caller wants to do on a node's data server."""

    ops = fields.List(fields.String(validate=validate.OneOf(["read", "write", "drop"])),
                      required=True, validate=validate.Length(min=1, max=3))
    tags = fields.List(fields.String(validate=validate.Length(min=1, max=128)),
                       load_default=lambda: ["*"], validate=validate.Length(min=1, max=64))


class DataGrantSchema(StrictSchema):
    """A short-lived data token for one node's data server (used directly, not via us)."""

    node = fields.String(required=True)
    location = fields.String(required=True)
    token = fields.String(required=True)
    expires_at = fields.Float(required=True)


class EnrollNodeSchema(StrictSchema):
    """What a node agent presents at its first start."""

    token = fields.String(required=True, validate=validate.Length(min=1, max=512))
    name = fields.String(required=True, validate=NAME)
    cluster = fields.String(load_default="local", validate=NAME)
    platform = fields.String(load_default="", validate=validate.Length(max=64))


class NodeCredentialsSchema(StrictSchema):
    """The node's working credentials (returned once)."""

    node_id = fields.String(required=True)
    owner = fields.String(required=True)
    credential = fields.String(required=True)
    data_key = fields.String(required=True)


class ReportSchema(StrictSchema):
    """A node agent's inventory report."""

    location = fields.String(required=True, validate=validate.Length(min=1, max=256))
    platform = fields.String(load_default="", validate=validate.Length(max=64))
    cluster = fields.String(load_default="", validate=validate.Length(max=63))
    interval_s = fields.Float(load_default=10.0, validate=validate.Range(min=0.1, max=86400))
    datasets = fields.List(fields.Dict(), load_default=list,
                           validate=validate.Length(max=1000))
    leaving = fields.Boolean(load_default=False, metadata={
        "description": "the agent is stopping: the node is offline from now on (no placement) "
                       "until its next report"})
    learner_projects = fields.List(
        fields.String(validate=validate.Length(min=1, max=64)), load_default=list,
        validate=validate.Length(max=1000),
        metadata={"description": "projects whose learner or mock data provider tokens the "
                                  "node accepted, or whose mock data it holds"})


class ReportAnswerSchema(StrictSchema):
    """The manager's answer to an inventory report."""

    revoked = fields.List(fields.String(), required=True, metadata={
        "description": "of the reported learner_projects, those that ended: the node refuses "
                       "their tokens from now on and drops their mock data"})
