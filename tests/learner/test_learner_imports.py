"""A learner process loads no server-side modules and no data plane it does not use."""

from __future__ import annotations

import subprocess
import sys

NOT_LOADED = ("mlflow", "flask", "pymongo", "aggregator", "flops_manager", "pyarrow")


def test_learner_runtime_imports_nothing_server_side() -> None:
    """pyarrow (~33 MB per process) is imported only when the learner claims a partition."""
    probe = (
        "import sys, learner_base.runtime, learner_base.flower_client\n"
        f"print(sorted(m for m in {NOT_LOADED!r} if m in sys.modules))"
    )
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                           check=True, timeout=120).stdout.strip()
    assert found == "[]"
