"""A node refuses the learner and mock data provider tokens of projects that ended, before the
tokens expire, and drops their mock data."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa
import pytest

from flops_dataplane import data_tokens
from flops_dataplane.client import DataClient
from flops_dataplane.errors import DataPlaneError
from flops_dataplane.names import mock_data_tag, mock_tag_project
from flops_manager.cli import data as data_cli
from flops_manager.cli.client import ApiClient
from flops_manager.lifecycle.state import Phase, Project
from flops_manager.nodes.revocation import ended_projects
from tests.fixtures.servers import wait_for
from tests.nodes.conftest import StartNode
from tests.nodes.test_node_agent import node_view, write_csv
from tests.nodes.test_submission import submit, submit_mock


def project(pid: str, owner: str = "alice", phase: Phase = Phase.TRAINING,
            deleting: bool = False) -> Project:
    return Project(id=pid, owner=owner, phase=phase, spec={}, repository={},
                   created_at=0.0, updated_at=0.0, deleting=deleting)


def test_ended_gone_foreign_and_deleting_projects_are_revoked() -> None:
    known = {p.id: p for p in (project("live"), project("done", phase=Phase.COMPLETED),
                               project("bobs", owner="bob"), project("bye", deleting=True))}
    revoked = ended_projects("alice", ["live", "done", "bobs", "bye", "gone", "done"],
                             known.get)
    assert revoked == ["done", "bobs", "bye", "gone"]


def test_subjects_name_their_project() -> None:
    subject = data_tokens.learner_subject("p0123", 4)
    assert data_tokens.token_project(subject) == "p0123"
    assert data_tokens.token_project(data_tokens.provider_subject("p0456", 1)) == "p0456"
    assert data_tokens.token_project("user:alice") is None
    assert data_tokens.token_project("learner:") is None
    assert mock_tag_project(mock_data_tag("p0123")) == "p0123"
    assert mock_tag_project("digits") is None and mock_tag_project("mock-") is None


def test_an_ended_projects_mock_data_is_dropped_and_its_provider_refused(
        start_node: StartNode, alice: ApiClient) -> None:
    agent = start_node("n1")
    wait_for(lambda: node_view(alice, "n1")["location"], timeout=10)
    location = node_view(alice, "n1")["location"]
    live = submit_mock(alice, learners=1)["id"]
    ended = "p" + "1" * 16  # a project the manager does not know (gone)
    table = pa.table({"x": [0.1, 0.2, 0.3], "label": [0, 1, 0]})

    def write(pid: str) -> None:
        tag = mock_data_tag(pid)
        claims = data_tokens.DataClaims(
            node=agent.creds.node_id, sub=data_tokens.provider_subject(pid, 0),
            ops=(data_tokens.WRITE,), tags=(tag,), exp=time.time() + 3600)
        with DataClient(location, data_tokens.issue(agent.creds.data_key, claims)) as client:
            client.upload(table, tag, "part-0", replace=True)

    write(live)
    write(ended)
    assert agent.server.mock_projects() == sorted([live, ended])

    def held() -> set[str]:
        return {d["tag"] for d in node_view(alice, "n1")["datasets"]}

    # the next report names both; the manager answers that one ended; the node drops its data
    wait_for(lambda: agent.server.mock_projects() == [live], timeout=10,
             what="the ended project's mock data dropped")
    wait_for(lambda: held() == {mock_data_tag(live)}, timeout=10,
             what="the inventory without the dropped data")
    drops = [r for r in agent.server.access.read() if r["op"] == "drop"]
    assert [(r["sub"], r["target"]) for r in drops] == [
        ("node", f"{mock_data_tag(ended)}/part-0")]
    with pytest.raises(DataPlaneError, match="revoked"):
        write(ended)  # its provider token is refused too
    write(live)  # the running project's provider still writes


def test_learner_tokens_of_an_ended_project_are_refused_after_the_next_report(
        start_node: StartNode, alice: ApiClient, tmp_path: Path) -> None:
    agent = start_node("n1")
    wait_for(lambda: node_view(alice, "n1")["location"], timeout=10)
    data_cli.push(alice, "n1", "digits",
                  write_csv(tmp_path / "d.csv", [(i, 0.1, i % 2) for i in range(20)]))
    wait_for(lambda: node_view(alice, "n1")["datasets"], timeout=10)
    live = submit(alice, learners=1)["id"]
    ended = "p" + "0" * 16  # a project the manager does not know (gone)

    def token(pid: str) -> str:
        claims = data_tokens.DataClaims(
            node=agent.creds.node_id, sub=data_tokens.learner_subject(pid, 0),
            ops=(data_tokens.READ,), tags=("digits",), exp=time.time() + 3600)
        return data_tokens.issue(agent.creds.data_key, claims)

    location = node_view(alice, "n1")["location"]
    for pid in (live, ended):  # both are accepted until the node hears otherwise
        with DataClient(location, token(pid)) as client:
            assert client.describe("digits/d")["rows"] == 20
    assert set(agent.server.tokens.learner_projects()) == {live, ended}

    def refused() -> bool:
        with DataClient(location, token(ended)) as client:
            try:
                client.describe("digits/d")
            except DataPlaneError as exc:
                assert "ended" in str(exc) and "revoked" in str(exc)
                return True
        return False

    wait_for(refused, timeout=10, what="the ended project's learner token refused")
    with DataClient(location, token(live)) as client:  # the running project still reads
        assert client.describe("digits/d")["rows"] == 20
    assert agent.server.tokens.learner_projects() == [live]
    with pytest.raises(DataPlaneError, match="revoked"), DataClient(location,
                                                                      token(ended)) as client:
        client.list()
