"""OpenAPI configuration: document settings, bearer security and the pydantic spec schema."""

from __future__ import annotations

from typing import Any

from flask_smorest import Api

from flops_contracts.spec import ProjectSpec
from flops_manager.api.common import spec_attribute
from flops_manager.settings import Settings

REF_TEMPLATE = "#/components/schemas/{model}"


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
