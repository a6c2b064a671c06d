"""train-local with the data plane: data servers, mock provider, learners reading by tag."""

from __future__ import annotations

import json
import time

import pytest

from flops_contracts.events import Component, EventType
from flops_messaging.file_publisher import read_events
from tests.integration.conftest import EXAMPLES, pids_of_instance, run_train_local

pytestmark = pytest.mark.integration


def test_dirichlet_mock_data_on_three_servers_trains_digits(tmp_path):
    workdir = tmp_path / "run"
    code, summary, log = run_train_local(
        [str(EXAMPLES / "digits_sklearn"), "--learners", "3", "--rounds", "5",
         "--data", "dirichlet", "--alpha", "0.5"], workdir)
    assert code == 0, log
    assert summary["accuracy"] >= 0.85
    events = read_events(workdir / "events.jsonl")
    uploads = [e for e in events if e.component is Component.MOCK_DATA_PROVIDER
               and e.event is EventType.COMPLETED]
    assert len(uploads) == 1
    # each learner read from its own server: three server directories hold one partition each
    stored = sorted(p.parent.parent.name for p in (workdir / "data").glob("*/digits/*.parquet"))
    assert stored == ["data-server-0", "data-server-1", "data-server-2"]
    # nothing is left running
    for name in ("data-server-0", "learner-0", "classic"):
        assert pids_of_instance(workdir, name) == []


def test_learner_without_matching_tag_fails_with_the_reason(tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"data_tags": ["other"], "training": {"connect_timeout_s": 120}}))
    workdir = tmp_path / "run"
    started = time.monotonic()
    code, summary, log = run_train_local(
        [str(EXAMPLES / "digits_sklearn"), "--learners", "2", "--rounds", "2", "--data", "iid",
         "--data-tag", "digits", "--spec", str(spec)], workdir, timeout=120)
    assert code == 1, log
    assert "no data for tags ['other'] on grpc://127.0.0.1:" in summary["reason"]
    assert time.monotonic() - started < 60  # not the aggregator's connect timeout
    failed = [e for e in read_events(workdir / "events.jsonl")
              if e.component is Component.LEARNER and e.event is EventType.FAILED]
    assert failed and failed[0].data["stage"] == "data"
