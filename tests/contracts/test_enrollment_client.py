"""The component side of enrollment (flops_contracts.enrollment) against a scripted manager."""

from __future__ import annotations

import json

import pytest

from flops_contracts.enrollment import enroll
from flops_contracts.errors import ConfigError

BASE = {"FLOPS_ENROLL_URL": "http://manager:8080/", "FLOPS_ENROLL_ROLE": "learners",
        "FLOPS_ENROLL_PROJECT": "p1"}


class Manager:
    """Answers from a script; records what it received."""

    def __init__(self, *answers: tuple[int, dict[str, object]] | OSError) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, dict[str, object]]] = []

    def __call__(self, url: str, body: bytes) -> tuple[int, bytes]:
        self.calls.append((url, json.loads(body)))
        answer = self.answers.pop(0)
        if isinstance(answer, OSError):
            raise answer
        return answer[0], json.dumps(answer[1]).encode()


def test_token_is_exchanged_once_and_removed() -> None:
    env = {**BASE, "FLOPS_ENROLL_TOKEN": "fe1.p1.g.s", "FLOPS_INSTANCE": "i-0"}
    manager = Manager(OSError("refused"), (503, {}),
                      (200, {"env": {"FLOPS_MQTT_PASSWORD": "pw", "FLOPS_DATA_TOKEN": "d"}}))
    added = enroll(env, post=manager, sleep=lambda s: None)
    assert added == ["FLOPS_DATA_TOKEN", "FLOPS_MQTT_PASSWORD"]
    assert env["FLOPS_MQTT_PASSWORD"] == "pw" and "FLOPS_ENROLL_TOKEN" not in env
    url, body = manager.calls[-1]
    assert url == "http://manager:8080/api/v1/enroll"
    assert body == {"token": "fe1.p1.g.s", "project_id": "p1", "role": "learners",
                    "instance": "i-0"}
    assert enroll(env, post=manager) == []  # no token: nothing to do


def test_refusal_is_a_config_error_without_the_token() -> None:
    env = {**BASE, "FLOPS_ENROLL_TOKEN": "fe1.p1.g.secret-value"}
    manager = Manager((401, {"message": "enrollment token already used (replay)"}))
    with pytest.raises(ConfigError, match="replay") as caught:
        enroll(env, post=manager)
    assert "secret-value" not in caught.value.message


@pytest.mark.parametrize(("answer", "reason"), [
    ({"env": {"PATH": "/evil", "FLOPS_MQTT_PASSWORD": "pw"}}, "does not take: PATH"),
    ({"env": {"MLFLOW_TRACKING_URI": "http://elsewhere"}}, "does not take: MLFLOW_TRACKING_URI"),
    ({"env": []}, "holds no variables"), ({}, "holds no variables"),
    ({"env": {"FLOPS_X": 1}}, "holds no variables"),
])
def test_answers_that_set_other_variables_are_refused(answer: dict[str, object],
                                                      reason: str) -> None:
    env = {**BASE, "FLOPS_ENROLL_TOKEN": "t"}
    with pytest.raises(ConfigError, match=reason):
        enroll(env, post=Manager((200, answer)))
    assert "PATH" not in env and "MLFLOW_TRACKING_URI" not in env


def test_the_mlflow_login_is_taken_with_the_flops_variables() -> None:
    """The manager hands an aggregator its MLflow login under MLflow's own variable names."""
    env = {**BASE, "FLOPS_ENROLL_TOKEN": "t"}
    login = {"FLOPS_MQTT_PASSWORD": "pw", "MLFLOW_TRACKING_USERNAME": "flops-project-p1-w",
             "MLFLOW_TRACKING_PASSWORD": "secret"}
    assert enroll(env, post=Manager((200, {"env": login}))) == sorted(login)
    assert {k: env[k] for k in login} == login


def test_unreachable_manager_gives_up_at_the_deadline() -> None:
    ticks = iter(range(100))
    env = {**BASE, "FLOPS_ENROLL_TOKEN": "t", "FLOPS_ENROLL_TIMEOUT_S": "3"}
    manager = Manager(*[OSError("down")] * 10)
    with pytest.raises(ConfigError, match="manager unreachable"):
        enroll(env, post=manager, sleep=lambda s: None, clock=lambda: float(next(ticks)))
