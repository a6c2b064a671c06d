"""A learner names an aggregator address that does not resolve, instead of retrying blindly."""

from __future__ import annotations

import time

import pytest

from learner_base.flower_client import ContactTrackingClient, run_client
from learner_base.server_address import resolution_error, split_address

UNRESOLVABLE = "flops-aggregator.invalid"  # RFC 6761: .invalid never resolves


@pytest.mark.parametrize(("address", "expected"), [
    ("p1-aggregator:8080", ("p1-aggregator", 8080)),
    ("127.0.0.1:9", ("127.0.0.1", 9)),
    ("[::1]:8080", ("::1", 8080)),
    ("aggregator", ("aggregator", None)),
    ("host:notaport", ("host:notaport", None)),
])
def test_split_address(address: str, expected: tuple[str, int | None]) -> None:
    assert split_address(address) == expected


def test_resolution_error_names_the_host() -> None:
    assert resolution_error("127.0.0.1:8080") is None
    assert resolution_error("localhost:8080") is None
    error = resolution_error(f"{UNRESOLVABLE}:8080")
    assert error is not None and error.startswith(f"cannot resolve {UNRESOLVABLE}")


def test_learner_fails_early_with_cannot_resolve() -> None:
    began = time.monotonic()
    with pytest.raises(ConnectionError) as caught:
        run_client(ContactTrackingClient(), server_address=f"{UNRESOLVABLE}:8080",
                   connect_timeout_s=600, resolve_grace_s=2)
    message = str(caught.value)
    assert f"cannot resolve {UNRESOLVABLE}" in message
    assert "flops preflight" in message
    assert "not reachable" not in message
    # ended by the resolution grace, not by the 600 s connect timeout
    assert time.monotonic() - began < 120


def test_unreachable_but_resolvable_still_reports_the_connection() -> None:
    with pytest.raises(ConnectionError) as caught:
        run_client(ContactTrackingClient(), server_address="127.0.0.1:9", connect_timeout_s=1)
    assert "could not be established within 1s" in str(caught.value)
    assert "cannot resolve" not in str(caught.value)
