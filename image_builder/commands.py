"""Run external tools (git, uv, pip, python) with a timeout, never through a shell."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from image_builder.outcome import BuildError

TAIL_CHARS = 4000


@dataclasses.dataclass(frozen=True)
class CommandOutput:
    """Exit status and decoded output of a finished command."""

    returncode: int
    stdout: str
    stderr: str

    def tail(self, limit: int = TAIL_CHARS) -> str:
        """Return the last ``limit`` characters of stderr and stdout combined."""
        return tail_text((self.stdout + "\n" + self.stderr).strip(), limit)


def tail_text(text: str, limit: int = TAIL_CHARS) -> str:
    """Return the end of ``text``, at most ``limit`` characters, starting at a line break."""
    if len(text) <= limit:
        return text
    cut = text[-limit:]
    newline = cut.find("\n")
    return cut[newline + 1:] if 0 <= newline < limit // 2 else cut


def run(
    argv: Sequence[str],
    *,
    timeout: float,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    what: str | None = None,
) -> CommandOutput:
    """Run ``argv`` and capture its output.

    The command runs in its own process group, so a timeout kills it with all its children.

    Parameters
    ----------
    argv
        Program and arguments (no shell is involved).
    timeout
        Seconds before the command is killed.
    cwd, env
        Working directory and complete environment (default: inherited).
    check
        Raise on a non-zero exit status.
    what
        Short description for error messages (default: the program name).

    Returns
    -------
    CommandOutput
        The exit status and output.

    Raises
    ------
    BuildError
        On a timeout, a missing program, or (with ``check``) a non-zero exit status; details
        carry ``output_tail``.
    """
    label = what or Path(argv[0]).name
    try:
        proc = subprocess.Popen(  # noqa: S603 - argv list, no shell
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        raise BuildError(f"{label}: cannot start {argv[0]}: {exc}") from None
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate()
        result = CommandOutput(-1, out.decode(errors="replace"), err.decode(errors="replace"))
        raise BuildError(
            f"{label} timed out after {timeout:g} s",
            details={"output_tail": result.tail()},
        ) from None
    result = CommandOutput(proc.returncode, out.decode(errors="replace"),
                           err.decode(errors="replace"))
    if check and result.returncode != 0:
        raise BuildError(
            f"{label} failed with exit status {result.returncode}: {_last_line(result)}",
            details={"output_tail": result.tail()},
        )
    return result


def _last_line(result: CommandOutput) -> str:
    for text in (result.stderr, result.stdout):
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if lines:
            return lines[-1][:500]
    return "no output"


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def run_logged(
    argv: Sequence[str],
    *,
    log_path: Path,
    timeout: float,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    what: str | None = None,
) -> None:
    """Run ``argv`` with its output appended to ``log_path`` (for long builds).

    The log gets a ``$ argv`` header line; argv must not carry secrets.

    Raises
    ------
    BuildError
        On a timeout, a missing program, or a non-zero exit status; details carry
        ``output_tail`` (the end of this command's output) and ``log_file``.
    """
    label = what or Path(argv[0]).name
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        start = log.tell()
        log.write(("$ " + " ".join(argv) + "\n").encode())
        log.flush()
        try:
            proc = subprocess.Popen(  # noqa: S603 - argv list, no shell
                list(argv), cwd=cwd, env=dict(env) if env is not None else None,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise BuildError(f"{label}: cannot start {argv[0]}: {exc}") from None
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.wait()
            code = None
    if code == 0:
        return
    with log_path.open("rb") as log:
        log.seek(start)
        output = log.read().decode(errors="replace")
    details = {"output_tail": tail_text(output), "log_file": str(log_path)}
    if code is None:
        raise BuildError(f"{label} timed out after {timeout:g} s", details=details)
    last = _last_line(CommandOutput(code, output, ""))
    raise BuildError(f"{label} failed with exit status {code}: {last}", details=details)
