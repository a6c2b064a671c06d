"""The manager stops at start, naming the cause, when its dependencies' names do not resolve."""

from __future__ import annotations

import pytest

from flops_contracts.errors import ConfigError
from flops_manager.adapters.container_preflight import GREETING, ProbeResult, diagnose
from flops_manager.dependency_names import host_names, wait_for_names


def test_host_names_skips_ips_localhost_and_unset() -> None:
    names = host_names({
        "FLOPS_MONGO_URL": "mongodb://user:pw@mongo:27017/?authSource=admin",
        "FLOPS_MQTT_URL": "mqtt://127.0.0.1:1883",
        "FLOPS_TRACKING_URI": "http://localhost:5000",
        "FLOPS_OTHER": None,
        "FLOPS_STORE": "memory://",
        "FLOPS_BROKER": "mqtt://mqtt:1883",
        "FLOPS_V6": "http://[::1]:80",
    })
    assert names == {"mongo": "FLOPS_MONGO_URL", "mqtt": "FLOPS_BROKER"}


def test_wait_for_names_names_what_does_not_resolve() -> None:
    calls: list[str] = []

    def resolve(name: str) -> str:
        calls.append(name)
        if name == "mongo":
            raise OSError("[Errno -2] Name or service not known")
        return "10.0.0.2"

    with pytest.raises(ConfigError) as caught:
        wait_for_names({"mongo": "FLOPS_MONGO_URL", "mqtt": "FLOPS_MQTT_URL"}, timeout_s=1,
                       resolve=resolve, sleep=lambda s: None)
    message = caught.value.message
    assert "'mongo' (from FLOPS_MONGO_URL: [Errno -2] Name or service not known)" in message
    assert "mqtt" not in message.split("within")[0]
    assert "flops preflight" in message and "setup_containers.sh" in message
    assert calls.count("mqtt") == 1  # resolved once, not asked again


def test_wait_for_names_waits_for_a_late_name() -> None:
    answers = iter([OSError("not yet"), OSError("not yet"), "10.0.0.3"])

    def resolve(name: str) -> object:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    wait_for_names({"mlflow": "FLOPS_TRACKING_URI"}, timeout_s=30, resolve=resolve,
                   sleep=lambda s: None)


@pytest.mark.parametrize(("result", "backend", "expected"), [
    (ProbeResult(("n1",), 0, "done", greeting=GREETING), "netavark", None),
    (ProbeResult(("n2", "n1"), 1, "resolve", "gaierror: [Errno -2]"), "cni",
     "Podman's network backend is 'cni'"),
    (ProbeResult(("n1",), 1, "resolve", "gaierror"), "netavark",
     "its DNS (aardvark-dns) did not answer"),
    (ProbeResult(("n1",), 1, "resolve", "gaierror"), None, "Docker resolves names"),
    (ProbeResult(("n1",), 1, "connect", "ConnectionRefusedError"), "netavark",
     "could not connect to it on port 8080"),
    (ProbeResult(("n1",), 0, "done", greeting="nginx"), "netavark", "another service answers"),
    (ProbeResult(("n1",), 127, "start", "python3: not found"), "netavark",
     "the image must provide python3"),
])
def test_diagnose(result: ProbeResult, backend: str | None, expected: str | None) -> None:
    problem = diagnose(result, peer="peer", network_backend=backend)
    if expected is None:
        assert problem is None
    else:
        assert problem is not None and expected in problem


def test_probe_result_parse() -> None:
    parsed = ProbeResult.parse(["n1"], 1, 'noise\n{"step": "resolve", "error": "gaierror"}\n')
    assert (parsed.step, parsed.error) == ("resolve", "gaierror")
    assert ProbeResult.parse(["n1"], 127, "exec: python3: not found").step == "start"
