"""Small things a new user hits: output formats, error messages, pipes, logs, defaults."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from flops_manager.cli.client import error_message
from flops_manager.cli.local_data import default_data_tag
from flops_manager.cli.log_follow import follow_done, new_lines
from flops_manager.services.logs import strip_ansi, tail_lines

PROJECT: dict[str, Any] = {
    "id": "p0123456789abcdef", "spec": {"name": "digits"}, "phase": "training",
    "progress": {"round": 1, "total_rounds": 5, "metrics": {"accuracy": 0.5}},
    "links": {}, "model": None}


class _FakeApi(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/api/v1/projects?"):
            body: dict[str, Any] = {"items": [PROJECT] * 500, "total": 500}
        elif self.path.startswith(f"/api/v1/projects/{PROJECT['id']}/logs"):
            self.send_response(422)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps({"code": 422, "status": "Unprocessable Entity", "errors": {
                "query": {"component": ["Must be one of: aggregator, learners."]}}}).encode())
            return
        else:
            body = PROJECT
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def api() -> Iterator[dict[str, str]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield {**os.environ, "FLOPS_API_URL": f"http://127.0.0.1:{server.server_port}",
           "FLOPS_API_TOKEN": "t"}
    server.shutdown()
    server.server_close()


def _flops(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flops_manager.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_project_json_is_one_line(api: dict[str, str]) -> None:
    done = _flops(api, "project", "status", PROJECT["id"], "--json")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 1 and json.loads(done.stdout)["id"] == PROJECT["id"]


def test_a_closed_pipe_ends_quietly(api: dict[str, str]) -> None:
    """``flops project list | head``: the reader is gone before we write."""
    popen = subprocess.Popen([sys.executable, "-m", "flops_manager.cli.main", "project", "list"],
                             env=api, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert popen.stdout is not None and popen.stderr is not None
    popen.stdout.close()
    stderr = popen.stderr.read().decode()
    assert popen.wait(timeout=60) == 0
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr


def test_a_bad_component_is_a_clean_message(api: dict[str, str]) -> None:
    done = _flops(api, "project", "logs", PROJECT["id"], "--component", "bogus")
    assert done.returncode == 1
    assert done.stderr.strip() == ("flops project logs: HTTP 422: invalid request: component: "
                                   "Must be one of: aggregator, learners.")


def test_field_errors_are_printed_once() -> None:
    body = {"code": 422, "message": "invalid project: spec.training.rounds: must be >= 1; "
            "spec.name: too long", "errors": {"json": {"spec.name": ["too long"],
                                                       "spec.training.rounds": ["must be >= 1"]}}}
    text = error_message(422, body)
    assert text == f"HTTP 422: {body['message']}"
    assert text.count("too long") == 1
    assert error_message(404, {"message": "project x not found"}) == "HTTP 404: project x not found"


def test_logs_follow_past_the_window() -> None:
    log = [f"round {i}" for i in range(1, 400)]
    first = log[:200]
    assert new_lines([], first) == first
    window = log[150:350]  # the last 200 lines, 150 of them new
    assert new_lines(first, window) == log[200:350]
    assert new_lines(window, window) == []
    assert new_lines(first, log[300:]) == log[300:]  # no overlap: everything in the window


def test_colour_codes_are_stripped_from_logs() -> None:
    raw = "\x1b[32mINFO\x1b[0m :      \x1b[1mround 3\x1b[22m done\x1b]0;title\x07\nplain\n"
    assert strip_ansi(raw) == "INFO :      round 3 done\nplain\n"
    assert tail_lines(raw, 1) == "plain\n"


@pytest.mark.parametrize(("dataset", "tag"), [
    ("sklearn:digits", "digits"), ("sklearn:iris", "iris"), ("file:/data/sales 2024.csv",
                                                              "sales-2024"),
    ("file:rel/x.parquet", "x"),
])
def test_the_data_tag_follows_the_dataset(dataset: str, tag: str) -> None:
    assert default_data_tag(dataset) == tag


def test_logs_follow_ends_when_nothing_more_comes() -> None:
    assert follow_done("completed", None) and follow_done("failed", "aggregator")
    assert follow_done("serving", "aggregator") and follow_done("serving", None)
    assert not follow_done("serving", "inference_server")
    assert not follow_done("training", "aggregator")


def test_the_license_is_an_spdx_string() -> None:
    """No setuptools deprecation banner for a ``project.license`` table at install time."""
    import tomllib
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml")
                              .read_text(encoding="utf-8"))
    assert pyproject["project"]["license"] == "Apache-2.0"
    assert "setuptools>=77" in pyproject["build-system"]["requires"]  # SPDX strings: 77+
