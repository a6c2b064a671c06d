"""The one backoff schedule: doubling from a base, capped, safe for any attempt number."""

from __future__ import annotations

import pytest

from flops_contracts.backoff import backoff_delay
from flops_manager.lifecycle.planner import retry_delay


def test_doubles_from_the_base_up_to_the_cap() -> None:
    assert [backoff_delay(n, base_s=0.2, cap_s=1.0) for n in range(5)] == [
        0.2, 0.4, 0.8, 1.0, 1.0]


def test_a_huge_attempt_number_stays_at_the_cap() -> None:
    assert backoff_delay(10_000, base_s=0.5, cap_s=10.0) == 10.0


def test_zero_base_means_no_wait_and_negative_attempts_are_refused() -> None:
    assert backoff_delay(3, base_s=0.0, cap_s=5.0) == 0.0
    with pytest.raises(ValueError, match="attempt"):
        backoff_delay(-1, base_s=1.0, cap_s=5.0)


def test_the_reconciler_uses_the_same_schedule() -> None:
    assert [retry_delay(n, 1.0) for n in (1, 2, 3, 7, 8)] == [1.0, 2.0, 4.0, 60.0, 60.0]
