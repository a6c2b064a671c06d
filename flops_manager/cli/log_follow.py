"""``flops project logs --follow``: which lines of a fresh log window are new.

The API answers the last ``lines`` lines of each instance. Following therefore keeps the last
window it saw per instance and prints what comes after the longest overlap between the end of
that window and the start of the new one, however long the log already is.
"""

from __future__ import annotations

from flops_manager.lifecycle.state import TERMINAL_PHASES, Phase

FINAL = frozenset(p.value for p in TERMINAL_PHASES)
FOLLOW_WINDOW = 2000
"""Lines fetched per instance while following (more than a busy second of output)."""


def new_lines(previous: list[str], window: list[str]) -> list[str]:
    """Lines of ``window`` that come after what ``previous`` (the last window) showed.

    When the windows do not overlap (more new lines than a window holds, or the log was
    replaced), the whole window is new.
    """
    for overlap in range(min(len(previous), len(window)), 0, -1):
        if previous[len(previous) - overlap:] == window[:overlap]:
            return window[overlap:]
    return window


def follow_done(phase: str, component: str | None) -> bool:
    """Whether ``logs --follow`` can end.

    It can when the project is final, or when it serves its model and the logs followed are
    not the inference server's (nothing else runs then).
    """
    if phase in FINAL:
        return True
    return phase == Phase.SERVING.value and component != "inference_server"
