"""Step timing and failure reporting shared by every build target."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from flops_contracts.errors import ErrorCode, FlopsError
from flops_contracts.events import EventType
from flops_messaging import EventEmitter
from image_builder.outcome import BuildError, BuildStep

logger = logging.getLogger(__name__)

T = TypeVar("T")


class StepTimer:
    """Times steps and reports them as ``progress`` events.

    Parameters
    ----------
    emitter
        Receives ``progress`` events with ``state`` ``running`` and ``done`` (+ ``seconds``).
    """

    def __init__(self, emitter: EventEmitter) -> None:
        self.emitter = emitter
        self.timings: dict[str, float] = {}
        self.current: BuildStep | None = None
        self.notes: dict[str, Any] = {}

    @contextlib.contextmanager
    def step(self, step: BuildStep, *, label: str | None = None) -> Iterator[dict[str, Any]]:
        """Run one step; the yielded dict is added to its ``done`` event.

        ``label`` names the timing (default: the step), e.g. ``build_learner``.
        """
        name = label or str(step)
        self.current = step
        self.emitter.emit(EventType.PROGRESS, step=name, state="running")
        start = time.monotonic()
        extra: dict[str, Any] = {}
        yield extra
        seconds = round(time.monotonic() - start, 3)
        self.timings[name] = seconds
        self.emitter.emit(EventType.PROGRESS, step=name, state="done", seconds=seconds,
                          **extra)


def run_reported(
    emitter: EventEmitter,
    body: Callable[[StepTimer], T],
    *,
    started: Mapping[str, Any],
    first_step: BuildStep,
    failure_details: Mapping[str, Any] | None = None,
) -> tuple[T, StepTimer, float]:
    """Emit ``started``, run ``body``; on an exception emit ``failed`` and raise it typed.

    Returns
    -------
    tuple
        The body's result, the step timer and the total seconds.

    Raises
    ------
    FlopsError
        The body's error (any other exception becomes a ``BuildError`` with code
        ``internal``); ``.step`` of a ``BuildError`` is the step that was running.
    """
    steps = StepTimer(emitter)
    start = time.monotonic()
    emitter.emit(EventType.STARTED, **started)
    try:
        result = body(steps)
    except Exception as exc:
        error = exc if isinstance(exc, FlopsError) else BuildError(
            f"{type(exc).__name__}: {exc}", code=ErrorCode.INTERNAL)
        step = steps.current or first_step
        if isinstance(error, BuildError) and error.step is None:
            error.step = step
        emitter.emit(EventType.FAILED, step=str(step), message=error.message,
                     code=str(error.code), **{**(failure_details or {}), **error.details})
        logger.error("build failed in step %s: %s", step, error.message)
        if error is exc:
            raise
        raise error from exc
    return result, steps, round(time.monotonic() - start, 3)
