"""One error vocabulary: every component's errors are kinds defined once in the contracts."""

from __future__ import annotations

import pytest

from flops_contracts import errors as shared
from flops_dataplane import errors as dataplane
from flops_manager.ports import errors as ports


@pytest.mark.parametrize("name", ["NotFoundError", "ConflictError", "UnauthorizedError",
                                  "ForbiddenError", "BackendUnavailableError",
                                  "TemporaryError", "PermanentError"])
def test_the_ports_use_the_shared_kinds(name: str) -> None:
    assert getattr(ports, name) is getattr(shared, name)


@pytest.mark.parametrize(("error", "kind", "code"), [
    (dataplane.NoDataError, shared.NotFoundError, shared.ErrorCode.NOT_FOUND),
    (dataplane.DataAuthError, shared.UnauthorizedError, shared.ErrorCode.UNAUTHORIZED),
    (dataplane.DatasetExistsError, shared.ConflictError, shared.ErrorCode.CONFLICT),
    (dataplane.SchemaMismatchError, shared.ConflictError, shared.ErrorCode.CONFLICT),
])
def test_data_plane_errors_are_the_shared_kinds(
        error: type[shared.FlopsError], kind: type[shared.FlopsError],
        code: shared.ErrorCode) -> None:
    raised = error("x")
    assert isinstance(raised, kind) and isinstance(raised, dataplane.DataPlaneError)
    assert raised.code is code
    with pytest.raises(kind):
        raise raised
