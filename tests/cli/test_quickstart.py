"""The README's Quickstart, run verbatim; ``project.yaml`` is the README's example spec.

The Quickstart ends with ``flops down`` while the demo's project still serves its model, so the
run also shows that ``flops down`` leaves no process of the stack behind, inference servers
included, and that a later ``flops up`` gets the same ports (saved links keep working).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import requests
import yaml

from tests.fixtures.repos import processes_mentioning

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def readme_block(heading: str, language: str) -> str:
    """The first ``language`` code block after ``heading`` in the README."""
    section = README.split(f"\n{heading}\n", 1)[1]
    return section.split(f"```{language}\n", 1)[1].split("```", 1)[0]


def test_project_yaml_is_the_readmes_example_spec() -> None:
    shipped = yaml.safe_load((ROOT / "project.yaml").read_text(encoding="utf-8"))
    assert shipped == {"spec": json.loads(readme_block("## The project spec", "json"))}


def _flops(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ROOT / ".venv" / "bin" / "flops"), *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.integration
def test_the_quickstart_runs_verbatim(tmp_path: Path) -> None:
    script = readme_block("## Quickstart", "bash")
    data = tmp_path / "flops-data"
    env = {k: v for k, v in os.environ.items() if k not in ("FLOPS_API_URL", "FLOPS_API_TOKEN")}
    env |= {"FLOPS_DATA_DIR": str(data), "FLWR_TELEMETRY_ENABLED": "0"}
    try:
        done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=2400, check=False)
        assert done.returncode == 0, (done.stdout[-4000:], done.stderr[-4000:])
        assert "project.license" not in done.stderr  # setup: no setuptools deprecation banner
        out = done.stdout
        # the demo trained on simulated nodes: one learner per node, on that node's data
        for index in range(3):
            assert re.search(rf"learner {index} trains on node-{index + 1} \(\d+ rows", out), \
                out[-3000:]
        # the README's spec reaches the demo's accuracy (the status of the serving project)
        status = re.search(r"project (p\w+) \(digits\): serving\n  round 5/5  metrics "
                           r"accuracy ([0-9.]+)", out)
        assert status, out[-3000:]
        assert float(status.group(2)) >= 0.9, status.group(0)
        # flops down stopped everything: the demo's model was still being served
        endpoint = re.search(r"inference endpoint: (\S+)/invocations", out)
        assert endpoint, out[-3000:]
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{endpoint.group(1)}/ping", timeout=5)
        served = list((data / "local" / "services").glob("*-inference-server/*.log"))
        assert len(served) == 2, served  # the demo's and the Quickstart's inference servers
        assert processes_mentioning(str(data)) == []
        # the next `flops up` listens where the last one did
        mlflow = re.search(r"MLflow UI: +(\S+)", out)
        assert mlflow, out[-3000:]
        up = _flops(env, "up", "--json")
        assert up.returncode == 0, up.stderr
        assert json.loads(up.stdout)["mlflow_url"] == mlflow.group(1)
    finally:
        _flops(env, "down")
    assert processes_mentioning(str(data)) == []
