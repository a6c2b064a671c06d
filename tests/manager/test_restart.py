from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import requests

from flops_contracts.events import Component, EventType
from flops_messaging.emitter import EventEmitter
from flops_messaging.factory import create_publisher
from tests.fixtures.servers import MosquittoServer, NxServer, free_port, wait_for

H = {"Authorization": "Bearer tok-alice"}


def start_manager(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "flops_manager"], env=env,
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT)


def emit(url: str, pid: str, component: Component, event: EventType, **data: Any) -> None:
    emitter = EventEmitter(create_publisher(url, project_id=pid, component=component,
                                            instance="i0"),
                           project_id=pid, component=component, instance="i0")
    emitter.emit(event, **data)
    emitter.close()


def test_sigkill_and_restart_resumes(tmp_path: Path, nx_server: NxServer,
                                     mosquitto: MosquittoServer) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "FLOPS_PORT": str(port), "FLOPS_MONGO_URL": nx_server.url,
           "FLOPS_MONGO_DB": "r" + uuid.uuid4().hex[:10], "FLOPS_MQTT_URL": mosquitto.url,
           "FLOPS_MQTT_CLIENT_ID": "mgr-" + uuid.uuid4().hex[:8],
           "FLOPS_ORCHESTRATOR_URI": "memory://", "FLOPS_API_TOKENS": '{"tok-alice": "alice"}',
           "FLOPS_RECONCILE_INTERVAL_S": "0.1", "FLOPS_DATA_DIR": str(tmp_path)}
    log = tmp_path / "manager.log"
    proc = start_manager(env, log)

    def get(pid: str) -> dict[str, Any]:
        return dict(requests.get(f"{base}/api/v1/projects/{pid}", headers=H, timeout=5).json())

    try:
        wait_for(lambda: requests.get(f"{base}/ready", headers=H, timeout=1).ok, timeout=20,
                 what="manager ready")
        body = {"spec": {"training": {"rounds": 3}}, "repository": {"url": "https://h/u/r"}}
        pid = requests.post(f"{base}/api/v1/projects", json=body, headers=H, timeout=5).json()["id"]
        wait_for(lambda: get(pid)["phase"] == "building" and not get(pid)["pending_actions"],
                 what="building")
        emit(mosquitto.url, pid, Component.BUILDER, EventType.COMPLETED)
        emit(mosquitto.url, pid, Component.AGGREGATOR, EventType.STARTED)
        wait_for(lambda: get(pid)["phase"] == "training", what="training")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        # published while the manager is down: kept by the broker's persistent session
        emit(mosquitto.url, pid, Component.AGGREGATOR, EventType.ROUND_COMPLETED, round=1,
             metrics={"accuracy": 0.5})
        emit(mosquitto.url, pid, Component.AGGREGATOR, EventType.ROUND_COMPLETED, round=2,
             metrics={"accuracy": 0.7})
        proc = start_manager(env, log)
        wait_for(lambda: get(pid)["progress"]["round"] == 2, timeout=20, what="round 2")
        assert get(pid)["progress"]["metrics"] == {"accuracy": 0.7}
        emit(mosquitto.url, pid, Component.AGGREGATOR, EventType.COMPLETED, model_uri="models:/m/1")
        wait_for(lambda: get(pid)["phase"] == "completed" and not get(pid)["pending_actions"],
                 what="completed")
        events = requests.get(f"{base}/api/v1/projects/{pid}/events", headers=H, timeout=5).json()
        items = events["items"]
        assert [e["seq"] for e in items] == list(range(1, len(items) + 1))
        component = [e["event"]["event"] for e in items if e["event"]["component"] != "manager"
                     and e["event"]["event"] != "online"]  # one per emitter connection
        assert component == ["completed", "started", "round_completed", "round_completed",
                             "completed"]  # nothing lost or duplicated across the SIGKILL
        phases = [e["event"]["data"]["to"] for e in items if e["event"]["component"] == "manager"]
        assert phases == ["building", "deploying", "training", "completed"]
    finally:
        proc.terminate()
        proc.wait(10)
