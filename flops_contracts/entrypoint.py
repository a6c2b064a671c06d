"""Start-up shared by every component's ``python -m`` entry point."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import NoReturn, TypeVar

from pydantic import BaseModel

from flops_contracts.config import ENV_PREFIX, load_settings
from flops_contracts.enrollment import enroll
from flops_contracts.errors import ConfigError
from flops_contracts.telemetry import disable_telemetry

M = TypeVar("M", bound=BaseModel)


CONFIG_ERROR_EXIT = 2
"""Exit code of a component whose configuration (settings, enrollment) is unusable."""


def report_config_error(prog: str, message: str) -> int:
    """Write ``prog: message`` and a newline to stderr in one write, flushed; return 2.

    One write: with ``PYTHONUNBUFFERED`` (as in FLOps images) ``print`` writes the text and
    its newline separately, which container log drivers record as a partial line, and an
    engine's log tail (Podman 4's ``logs?tail=N``) can drop it, leaving a silent exit 2.
    """
    line = f"{prog}: {message.rstrip()}\n"
    try:
        sys.stderr.write(line)
        sys.stderr.flush()
    except (OSError, ValueError):  # no usable stderr: the exit code still says why
        pass
    return CONFIG_ERROR_EXIT


def start_component(model: type[M], *, prog: str, prefix: str = ENV_PREFIX) -> M:
    """Configure logging, enroll with the manager (if given a token), load the settings.

    Raises
    ------
    SystemExit
        With code 2 and a message naming every invalid setting, when the configuration is bad.
    """
    logging.basicConfig(
        level=os.environ.get("FLOPS_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    disable_telemetry(os.environ)  # before any component imports mlflow or flwr
    # Flower's logger has its own console handler; do not print each of its lines twice.
    logging.getLogger("flwr").propagate = False
    try:
        enroll(os.environ)
        return load_settings(model, prefix=prefix)
    except ConfigError as exc:
        raise SystemExit(report_config_error(prog, exc.message)) from None


def exit_process(code: int) -> NoReturn:
    """End a component process with ``code`` once its work is done, skipping the teardown.

    For ``python -m <component>`` only, after ``main()`` returned: by then every result is
    written (events published and their publisher closed, the MLflow run ended, the model
    logged and registered). The interpreter's teardown (joining gRPC's and MLflow's worker
    threads, freeing modules) took about 2 s in an aggregator and did nothing anyone waits
    for; this flushes the log handlers and standard streams and exits at once.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
