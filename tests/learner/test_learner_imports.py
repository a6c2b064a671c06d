"""A learner process loads no server-side modules and no data plane it does not use."""

from __future__ import annotations

import subprocess
import sys

NOT_LOADED = ("mlflow", "flask", "pymongo", "aggregator", "flops_manager", "pyarrow", "flwr",
              "sqlalchemy", "google")


def test_learner_runtime_imports_nothing_server_side() -> None:
    """Neither reading data nor talking to the aggregator imports pyarrow or Flower.

    pyarrow is ~33 MB per process and 150 MB of an image; Flower's package loads its server
    side (SQLAlchemy, FastAPI) and protobuf.
    """
    probe = (
        "import sys, learner_base.runtime, learner_base.flower_client, learner_base.data\n"
        f"print(sorted(m for m in {NOT_LOADED!r} if m in sys.modules))"
    )
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                           check=True, timeout=120).stdout.strip()
    assert found == "[]"


def test_to_pandas_without_pandas_says_what_to_add() -> None:
    """Learner images carry pandas only when the repository needs it: a clear error otherwise."""
    probe = (
        "import sys\n"
        "class NoPandas:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'pandas':\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, NoPandas())\n"
        "import importlib.util, numpy as np\n"
        "importlib.util.find_spec = lambda name, *a: None if name == 'pandas' else 1\n"
        "from learner_base.data import TaggedData\n"
        "try:\n"
        "    TaggedData(columns={'x': np.array([1])}, tags=('t',)).to_pandas()\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=120)
    assert "add pandas to the repository's requirements.txt" in out.stdout, out.stderr
