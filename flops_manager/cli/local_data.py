"""Local data plane for ``train-local --data``.

One ML data server per learner, filled by the mock data provider, all as local processes.
"""

from __future__ import annotations

import dataclasses
import json
import re
import secrets
import socket
import sys
import time
from pathlib import Path

from flops_contracts.errors import FlopsError
from flops_manager.local_processes import ProcessGroup, free_port

READY_TIMEOUT_S = 30.0
PROVIDER_TIMEOUT_S = 300.0


def default_data_tag(dataset: str) -> str:
    """The tag of ``dataset``'s mock data when neither ``--data-tag`` nor the spec names one.

    ``sklearn:iris`` -> ``iris``, ``file:/d/sales.csv`` -> ``sales``.
    """
    source = dataset.split(":", 1)[-1]
    name = Path(source).stem if dataset.startswith("file:") else source
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.")[:64] or "data"


@dataclasses.dataclass(frozen=True)
class LocalData:
    """What the mock data provider should upload, and where."""

    partitioner: str
    learners: int
    tag: str
    dataset: str = "sklearn:digits"
    alpha: float = 0.5
    seed: int = 0


def _wait_listening(port: int, *, group: ProcessGroup, name: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    process = next(p for p in group if p.name == name)
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise FlopsError(f"data server {name} exited with code {process.returncode}; "
                             f"see {process.log_path}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise FlopsError(f"data server {name} did not listen on port {port} within "
                     f"{READY_TIMEOUT_S:.0f}s; see {process.log_path}")


def start_data_plane(
    data: LocalData, *, group: ProcessGroup, workdir: Path, events_uri: str | None
) -> tuple[list[str], str]:
    """Start one data server per learner, fill them, and return ``(locations, token)``.

    The shared token travels only in environment variables (``FLOPS_DATA_TOKEN``).

    Raises
    ------
    FlopsError
        If a server does not come up or the provider fails, naming the log to read.
    """
    token = secrets.token_urlsafe(24)
    locations = []
    for index in range(data.learners):
        port = free_port()
        name = f"data-server-{index}"
        group.start(name, [sys.executable, "-m", "flops_dataplane.server"], {
            "FLOPS_DATA_ROOT_DIR": str(workdir / "data" / name),
            "FLOPS_DATA_PORT": str(port),
            "FLOPS_DATA_TOKEN": token,
            "FLOPS_DATA_INSTANCE": name,
            "FLOPS_DATA_EVENTS_URI": events_uri or "",
        })
        _wait_listening(port, group=group, name=name)
        locations.append(f"grpc://127.0.0.1:{port}")
    provider = group.start("mock-data-provider", [sys.executable, "-m",
                                                  "flops_dataplane.mock_provider"], {
        "FLOPS_DATASET": data.dataset,
        "FLOPS_PARTITIONS": str(data.learners),
        "FLOPS_PARTITIONER": data.partitioner,
        "FLOPS_ALPHA": str(data.alpha),
        "FLOPS_SEED": str(data.seed),
        "FLOPS_TAG": data.tag,
        "FLOPS_SERVERS": json.dumps(locations),
        "FLOPS_DATA_TOKEN": token,
        "FLOPS_EVENTS_URI": events_uri or "",
    })
    deadline = time.monotonic() + PROVIDER_TIMEOUT_S
    while provider.returncode is None:
        if time.monotonic() > deadline:
            raise FlopsError(f"mock data provider did not finish within {PROVIDER_TIMEOUT_S:.0f}s")
        time.sleep(0.05)
    if provider.returncode != 0:
        raise FlopsError(f"mock data provider failed (exit {provider.returncode}); "
                         f"see {provider.log_path}")
    return locations, token
