"""Profile every FLOps process of a run: put this directory first on ``PYTHONPATH``.

With ``FLOPS_PROFILE_DIR`` set, each interpreter (and each process forked from it) profiles its
main thread and every thread it starts with ``cProfile``, and writes one ``.prof`` file per
thread when it exits, also through ``os._exit`` (components skip the interpreter's teardown).
Read them with ``python bench/profiling/top.py DIR``. Without the variable it does nothing.

Usage: FLOPS_PROFILE_DIR=/tmp/prof PYTHONPATH=bench/profiling flops train-local ...
"""

from __future__ import annotations

import os

if os.environ.get("FLOPS_PROFILE_DIR"):
    import cProfile
    import threading

    _DIR = os.environ["FLOPS_PROFILE_DIR"]
    _profiles: list[tuple[str, cProfile.Profile]] = []
    _main = cProfile.Profile()
    _profiles.append(("main", _main))
    _thread_run = threading.Thread.run
    _exit = os._exit

    def _profiled_run(self: threading.Thread) -> None:
        profile = cProfile.Profile()
        _profiles.append((self.name, profile))
        profile.enable()
        try:
            _thread_run(self)
        finally:
            profile.disable()

    def _dump() -> None:
        os.makedirs(_DIR, exist_ok=True)
        tag = f"{os.environ.get('FLOPS_INSTANCE') or 'process'}-{os.getpid()}"
        for index, (name, profile) in enumerate(_profiles):
            safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)
            profile.dump_stats(os.path.join(_DIR, f"{tag}-{index}-{safe}.prof"))

    def _dump_and_exit(code: int) -> None:
        _dump()
        _exit(code)

    def _after_fork() -> None:  # a forked child profiles itself from its own start
        _profiles.clear()
        _profiles.append(("main", _main))

    threading.Thread.run = _profiled_run  # type: ignore[method-assign]
    os._exit = _dump_and_exit  # type: ignore[assignment]
    os.register_at_fork(after_in_child=_after_fork)
    import atexit

    atexit.register(_dump)
    _main.enable()
