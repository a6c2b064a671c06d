"""Capped exponential backoff: the one delay schedule every FLOps retry loop uses.

The loops themselves stay where they are, because each decides differently *whether* to retry
(an HTTP status, a gRPC error before the first contact, a database outage); only the schedule is
shared, so that every component backs off the same way and one test pins it down.
"""

from __future__ import annotations


def backoff_delay(attempt: int, *, base_s: float, cap_s: float, factor: float = 2.0) -> float:
    """Seconds to wait before retry number ``attempt + 1`` (``attempt`` counts from 0).

    ``base_s * factor ** attempt``, at most ``cap_s`` and never negative.

    Examples
    --------
    >>> [backoff_delay(n, base_s=0.5, cap_s=5.0) for n in range(6)]
    [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    """
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, not {attempt}")
    # cap before multiplying out, so that a large attempt number cannot overflow
    if base_s <= 0 or cap_s <= 0:
        return 0.0
    delay = base_s
    for _ in range(attempt):
        delay *= factor
        if delay >= cap_s:
            return float(cap_s)
    return float(min(delay, cap_s))
