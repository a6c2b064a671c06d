"""OpenAPI configuration: document settings, bearer security and the pydantic spec schema."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask_smorest import Api

from flops_contracts.spec import ProjectSpec
from flops_manager.api.common import spec_attribute
from flops_manager.settings import Settings

REF_TEMPLATE = "#/components/schemas/{model}"


PROJECT = "/api/v1/projects/{project_id}"
DEPLOYMENT = PROJECT + "/deployments/{deployment_id}"

PROJECT_LINKS = {
    "GetProject": (PROJECT, "get"),
    "CancelProject": (PROJECT + "/cancel", "post"),
    "ListEvents": (PROJECT + "/events", "get"),
    "StreamEvents": (PROJECT + "/events/stream", "get"),
    "GetLogs": (PROJECT + "/logs", "get"),
    "ListModels": (PROJECT + "/models", "get"),
    "ListDeployments": (PROJECT + "/deployments", "get"),
    "Deploy": (PROJECT + "/deployments", "post"),
    "DeleteProject": (PROJECT, "delete"),
}
"""Operations on the project a ``POST /projects`` (or any project answer) returns."""

DEPLOYMENT_LINKS = {
    "GetDeployment": (DEPLOYMENT, "get"),
    "Undeploy": (DEPLOYMENT, "delete"),
}
"""Operations on the deployment a ``POST .../deployments`` returns."""


def operation_ref(path: str, method: str) -> str:
    """The JSON pointer to an operation of this document (``/`` escaped as ``~1``)."""
    return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method


def links(status: int, targets: Mapping[str, tuple[str, str]],
          parameters: Mapping[str, str]) -> dict[int, Any]:
    """``@blp.doc`` responses giving the ``status`` answer OpenAPI links to ``targets``.

    ``parameters`` maps each path parameter to a runtime expression, e.g.
    ``{"project_id": "$response.body#/id"}``. Clients (and schemathesis' stateful tests)
    follow the links to chain calls on the resource just created.
    """
    return {status: {"links": {  # int: the key flask-smorest gives its own response
        name: {"operationRef": operation_ref(path, method),
               "parameters": {k: v for k, v in parameters.items() if "{" + k + "}" in path}}
        for name, (path, method) in targets.items()
    }}}


def openapi_config(settings: Settings) -> dict[str, Any]:
    """Return the Flask config keys flask-smorest reads."""
    return {
        "API_TITLE": "FLOps manager",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.1.0",
        "OPENAPI_URL_PREFIX": "/",
        "OPENAPI_JSON_PATH": "openapi.json",
        "OPENAPI_SWAGGER_UI_PATH": "/docs",
        "OPENAPI_SWAGGER_UI_URL": settings.swagger_ui_url,
        "API_SPEC_OPTIONS": {
            "security": [{"bearerAuth": []}],
            "info": {"description": "Federated learning operations on Oakestra or one machine"},
        },
    }


def document(api: Api) -> None:
    """Add bearer security and the ProjectSpec JSON schema (pydantic) to the document."""
    api.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "token or JWT"}
    )
    schema = ProjectSpec.model_json_schema(ref_template=REF_TEMPLATE)
    for name, definition in schema.pop("$defs", {}).items():
        api.spec.components.schema(name, component=definition)
    api.spec.components.schema("ProjectSpec", component=schema)
    api.ma_plugin.converter.add_attribute_function(spec_attribute)
