# mypy: disable-error-code="untyped-decorator"
"""Mock data providers: create, list, get."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from flops_manager.api.common import iso
from flops_manager.api.context import current_user, services
from flops_manager.api.mock_data import schemas
from flops_manager.api.openapi import links
from flops_manager.ports.records import ServiceRecord

blp = Blueprint(
    "mock_data",
    __name__,
    url_prefix="/api/v1/mock-data-providers",
    description="Services that upload a partitioned sample data set to data servers",
)


PROVIDER = "/api/v1/mock-data-providers/{provider_id}"


def _view(record: ServiceRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "state": record.state,
        "request": record.request,
        "created_at": iso(record.created_at),
    }


@blp.route("")
class MockDataProviders(MethodView):
    """The caller's providers."""

    @blp.response(200, schemas.MockDataListSchema)
    def get(self) -> dict[str, Any]:
        """List the caller's mock data providers."""
        found = services().mock_data.list_providers(owner=current_user())
        return {"items": [_view(r) for r in found]}

    @blp.arguments(schemas.MockDataCreateSchema)
    @blp.response(201, schemas.MockDataSchema)
    @blp.doc(responses=links(201, {"GetProvider": (PROVIDER, "get")},
                             {"provider_id": "$response.body#/id"}))
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Start a mock data provider."""
        return _view(services().mock_data.create(owner=current_user(), request=body))


@blp.route("/<provider_id>")
class MockDataProvider(MethodView):
    """One provider."""

    @blp.response(200, schemas.MockDataSchema)
    def get(self, provider_id: str) -> dict[str, Any]:
        """Return one of the caller's providers."""
        return _view(services().mock_data.get(provider_id, owner=current_user()))
