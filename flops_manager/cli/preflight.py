"""``flops preflight``: check that a container engine can run FLOps' services.

Run it before ``docker compose up`` or before using the Docker backend. It starts two containers
on a fresh network and checks that one resolves and reaches the other by name (then the same for
a container on two networks, as the compose suite's manager is), and otherwise says what is
missing and which command installs it. Exit codes: 0 ok, 1 the check failed, 2 no engine.

Engine: ``--engine`` (``docker://`` or ``docker+unix:///path/to.sock``), else
``FLOPS_ORCHESTRATOR_URI`` when it names a Docker engine, else ``DOCKER_HOST`` or Docker's default
socket; with none of them but ``podman`` installed, a temporary Podman API service is started for
the check and stopped afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from flops_contracts.errors import FlopsError

DOCKER_SOCKET = Path("/var/run/docker.sock")
SOCKET_WAIT_S = 30.0


def add_arguments(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``preflight``."""
    text = "check that containers on the engine resolve and reach each other by name"
    parser = sub.add_parser("preflight", help=text, description=text)
    parser.add_argument("--engine", help="docker:// or docker+unix:///path/to.sock "
                        "(default: FLOPS_ORCHESTRATOR_URI, DOCKER_HOST, a temporary Podman API)")
    parser.add_argument("--image", help="an image with python3 (default FLOPS_BASE_IMAGE, "
                        "else the image builder's default base image)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per probe")
    parser.set_defaults(handler=run)


def configured_engine(environ: dict[str, str] | os._Environ[str]) -> str | None:
    """Return the engine URI the settings name, or None when only Podman could serve one."""
    uri = environ.get("FLOPS_ORCHESTRATOR_URI", "")
    if uri.startswith(("docker://", "docker+unix://")):
        return uri
    if environ.get("DOCKER_HOST") or DOCKER_SOCKET.exists():
        return "docker://"
    return None


@contextlib.contextmanager
def temporary_podman_service() -> Iterator[str]:
    """Serve Podman's Docker API on a temporary socket; yield its ``docker+unix://`` URI."""
    with tempfile.TemporaryDirectory(prefix="flops-preflight-") as tmp:
        sock = Path(tmp) / "podman.sock"
        proc = subprocess.Popen(  # noqa: S603 - fixed argv; podman is looked up on PATH
            ["podman", "system", "service", "--time=0", f"unix://{sock}"],  # noqa: S607
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + SOCKET_WAIT_S
            while not sock.exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = (proc.stderr.read() if proc.stderr else b"").decode(errors="replace")
                    raise FlopsError(f"`podman system service` did not start: {err.strip()}")
                time.sleep(0.1)
            yield f"docker+unix://{sock}"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def run(args: argparse.Namespace) -> int:
    """Run the check and print its outcome."""
    engine = args.engine or configured_engine(os.environ)
    try:
        if engine is None:
            if shutil.which("podman") is None:
                print("flops preflight: no container engine found (no DOCKER_HOST, no "
                      f"{DOCKER_SOCKET}, no podman): install one with `sudo bash "
                      "scripts/setup_containers.sh` (Podman) or install Docker",
                      file=sys.stderr)
                return 2
            with temporary_podman_service() as uri:
                return _check(uri, args)
        return _check(engine, args)
    except FlopsError as exc:
        print(f"flops preflight: {exc.message}", file=sys.stderr)
        return 2


def _check(engine: str, args: argparse.Namespace) -> int:
    # the container libraries load here, not with every ``flops`` command
    from flops_manager.adapters.container_preflight import check_name_resolution
    from flops_manager.adapters.docker_orchestrator import docker_client_for
    from image_builder.settings import DEFAULT_BASE_IMAGE

    image = args.image or os.environ.get("FLOPS_BASE_IMAGE") or DEFAULT_BASE_IMAGE
    try:
        client = docker_client_for(engine)  # asks the engine for its API version
        client.ping()
    except FlopsError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure means: no engine there
        print(f"flops preflight: cannot reach the container engine at {engine}: {exc}. "
              "Start it (Podman: `podman system service --time=0 "
              "unix:///run/podman/podman.sock`) or name it with --engine",
              file=sys.stderr)
        return 2
    try:
        try:
            check_name_resolution(client, image, timeout_s=args.timeout)
        except FlopsError as exc:
            print(f"flops preflight: FAILED: {exc.message}", file=sys.stderr)
            return 1
        print(f"flops preflight: ok: containers on {engine} resolve and reach each other by "
              "name (on one network and across two)")
        return 0
    finally:
        client.close()
