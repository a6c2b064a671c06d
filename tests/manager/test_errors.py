from flops_contracts.errors import ErrorCode
from flops_manager.api.errors import CATALOG


def test_catalog_covers_every_error_code() -> None:
    assert set(CATALOG) == set(ErrorCode)
    assert all(400 <= spec.status < 600 for spec in CATALOG.values())


def test_store_encoding_errors_and_stream_limits_are_client_errors() -> None:
    assert CATALOG[ErrorCode.INVALID_REQUEST].status == 422  # UnstorableError
    assert CATALOG[ErrorCode.RATE_LIMITED].status == 429
