"""Preflight check of a container engine: containers must find and reach each other by name.

The Docker backend and the compose suite rely on one thing the engine may silently lack: name
resolution between containers on a user network (a learner reaching ``<project>-aggregator``,
the manager reaching ``mongo``). Podman 4 on Debian 12 resolves names only with netavark +
aardvark-dns (or the CNI ``dnsname`` plugin, which answers only on a container's first network);
without them, ``getaddrinfo`` fails inside the containers and a project waits for its learners
until a timeout with an unrelated-looking error.

:func:`check_name_resolution` starts, through the Docker Engine API (Docker or Podman's
compatible service), a peer container with an alias on a fresh network and a probe container
that resolves the alias and connects to it: first on that network alone, then attached to a
second network too (the manager of the compose suite sits on two networks). A failure is a
:class:`PreflightError` whose message names the missing piece and the command that installs it.
Everything it creates carries the label ``io.flops.preflight`` and is removed afterwards.

The decision is pure (:func:`diagnose`); the engine I/O sits in :func:`check_name_resolution`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any

from flops_manager.ports.errors import PermanentError

logger = logging.getLogger(__name__)

LABEL = "io.flops.preflight"
PEER_PORT = 8080
GREETING = "flops-preflight"
INSTALL_HINT = (
    "run `sudo bash scripts/setup_containers.sh` (it installs netavark and aardvark-dns and sets "
    'network_backend = "netavark" in /etc/containers/containers.conf), or on another host: '
    "`apt-get install netavark aardvark-dns` plus that setting"
)

# The peer answers every connection with GREETING. Runs as ``python3 -c`` in the image.
PEER_SCRIPT = f"""
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", {PEER_PORT}))
s.listen(8)
while True:
    c, _ = s.accept()
    c.sendall(b"{GREETING}")
    c.close()
"""

# The probe resolves the peer's alias and reads its greeting, retrying for a few seconds (the
# peer may still be starting); it prints one JSON line: {"step": ..., "error": ...}.
PROBE_SCRIPT = """
import json, socket, sys, time
name, port, patience = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
deadline = time.monotonic() + patience
step, error = "resolve", ""
while True:
    try:
        step = "resolve"
        addr = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)[0][4]
        step = "connect"
        with socket.create_connection(addr[:2], timeout=3) as conn:
            data = conn.recv(64).decode("ascii", "replace")
        print(json.dumps({"step": "done", "address": addr[0], "greeting": data}))
        sys.exit(0)
    except OSError as exc:
        error = f"{type(exc).__name__}: {exc}"
    if time.monotonic() > deadline:
        print(json.dumps({"step": step, "error": error}))
        sys.exit(1)
    time.sleep(0.3)
"""


class PreflightError(PermanentError):
    """The container engine cannot run FLOps' services; the message says what to install."""


@dataclasses.dataclass(frozen=True)
class ProbeResult:
    """What one probe container reported.

    ``step`` is ``done`` on success, else the step that failed (``resolve`` or ``connect``),
    or ``start`` when the probe printed nothing usable (it could not run at all).
    """

    networks: tuple[str, ...]
    exit_code: int
    step: str
    error: str = ""
    greeting: str = ""

    @classmethod
    def parse(cls, networks: Sequence[str], exit_code: int, output: str) -> ProbeResult:
        """Read the probe's last JSON line; anything else counts as a failure to start."""
        for line in reversed(output.strip().splitlines()):
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if isinstance(data, dict) and "step" in data:
                return cls(tuple(networks), exit_code, str(data["step"]),
                           str(data.get("error", "")), str(data.get("greeting", "")))
        return cls(tuple(networks), exit_code, "start", output.strip()[-400:])


def diagnose(result: ProbeResult, *, peer: str, network_backend: str | None) -> str | None:
    """Return what is wrong (a message naming the cause and the fix), or None when it worked.

    ``network_backend`` is Podman's (``netavark``/``cni``), or None on Docker.
    """
    if result.exit_code == 0 and result.step == "done" and result.greeting == GREETING:
        return None
    where = (f"a container on the networks {', '.join(result.networks)}"
             if len(result.networks) > 1 else f"a container on network {result.networks[0]}")
    if result.step == "resolve":
        cause = f"{where} cannot resolve the name {peer!r} of another container ({result.error})"
        if network_backend is None:
            fix = ("Docker resolves names on user networks with its embedded DNS: check that "
                   "the engine's networks are user-defined bridges and that no daemon option "
                   "disables DNS")
        elif network_backend != "netavark":
            fix = (f"Podman's network backend is {network_backend!r}, which resolves names only "
                   f"with the CNI dnsname plugin and only on a container's first network: "
                   f"{INSTALL_HINT}")
        else:
            fix = ("Podman uses netavark, but its DNS (aardvark-dns) did not answer: is the "
                   f"aardvark-dns package installed and the network's DNS enabled? {INSTALL_HINT}")
        return f"container name resolution is not working: {cause}. Fix: {fix}"
    if result.step == "connect":
        return (f"container networking is not working: {where} resolved {peer!r} but could not "
                f"connect to it on port {PEER_PORT} ({result.error}). Check the engine's "
                "firewall (iptables) and bridge setup; `sudo bash scripts/setup_containers.sh` "
                "installs what Podman needs")
    if result.step == "done":
        return (f"{where} reached {peer!r} but got {result.greeting!r} instead of the peer's "
                "greeting: another service answers under that name")
    return (f"the preflight probe could not run ({result.error or f'exit code {result.exit_code}'}"
            "): the image must provide python3")


def podman_network_backend(client: Any) -> str | None:
    """Podman's network backend (``netavark``/``cni``) through its libpod API; None on Docker."""
    try:
        components = [str(c.get("Name", "")) for c in client.version().get("Components", [])]
        if not any("podman" in name.lower() for name in components):
            return None
        response = client.api._get(client.api.base_url + "/v4.0.0/libpod/info")
        if response.status_code != 200:
            return "unknown"
        return str(response.json().get("host", {}).get("networkBackend") or "unknown")
    except Exception as exc:  # noqa: BLE001 - only a hint for the message
        logger.debug("cannot read Podman's network backend: %s", exc)
        return "unknown"


def check_name_resolution(client: Any, image: str, *, timeout_s: float = 60.0,
                          networks: Sequence[str] | None = None, pull: bool = True,
                          auth: Mapping[str, str] | None = None) -> None:
    """Raise :class:`PreflightError` unless containers resolve and reach each other by name.

    Parameters
    ----------
    client
        A ``docker.DockerClient`` (Docker, or Podman's compatible service).
    image
        An image with ``python3`` (FLOps uses the build base image).
    timeout_s
        Bound for each probe container (it retries resolution for a third of it).
    networks
        Two existing networks to probe instead of fresh ones (they are left in place); the
        peer joins the first.
    pull
        Pull ``image`` when the engine does not have it.
    auth
        Registry login for that pull (``X-Registry-Auth``; ``None``: anonymous).
    """
    import docker.errors  # type: ignore[import-untyped]  # docker 7.2 ships no type information

    suffix = secrets.token_hex(4)
    peer = f"flops-preflight-peer-{suffix}"
    created: list[Any] = []
    containers: list[Any] = []
    try:
        _ensure_image(client, image, pull=pull, auth=auth)
        if networks is None:
            nets = []
            for role in ("a", "b"):
                net = client.networks.create(f"flops-preflight-{suffix}-{role}", driver="bridge",
                                             labels={LABEL: "true"})
                created.append(net)
                nets.append(net.name)
        else:
            nets = list(networks)
        peer_container = _run(client, image, ["python3", "-c", PEER_SCRIPT], name=peer,
                              network=nets[0], aliases=[peer])
        containers.append(peer_container)
        backend = podman_network_backend(client)
        for probe_nets in ([nets[0]], [nets[1], nets[0]]):
            probe = _run(client, image,
                         ["python3", "-c", PROBE_SCRIPT, peer, str(PEER_PORT),
                          str(max(timeout_s / 3, 3.0))],
                         name=f"flops-preflight-probe-{suffix}-{len(probe_nets)}",
                         network=probe_nets[0], extra_networks=probe_nets[1:])
            containers.append(probe)
            result = _wait_probe(probe, probe_nets, timeout_s)
            problem = diagnose(result, peer=peer, network_backend=backend)
            if problem is not None:
                raise PreflightError(problem)
        logger.info("preflight: containers resolve and reach each other by name (%s)",
                    backend or "docker")
    except docker.errors.ImageNotFound:
        raise PreflightError(
            f"the preflight image {image} is not available on the container engine: build the "
            "local base image with `bash scripts/build_base_image.sh` or set FLOPS_BASE_IMAGE "
            "to an image with python3 that the engine can pull") from None
    except (docker.errors.APIError, docker.errors.DockerException) as exc:
        explanation = getattr(exc, "explanation", None) or exc
        raise PreflightError(f"the container engine refused the preflight check: {explanation}"
                             ) from None
    finally:
        for container in containers:
            _quietly(lambda c=container: c.remove(force=True))
        for net in created:
            _quietly(net.remove)


def _ensure_image(client: Any, image: str, *, pull: bool,
                  auth: Mapping[str, str] | None = None) -> None:
    import docker.errors

    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        if not pull:
            raise
        try:
            client.images.pull(image, auth_config=dict(auth) if auth else None)
        except docker.errors.APIError:
            raise docker.errors.ImageNotFound(image) from None


def _run(client: Any, image: str, command: list[str], *, name: str, network: str,
         aliases: list[str] | None = None, extra_networks: Sequence[str] = ()) -> Any:
    config = {network: client.api.create_endpoint_config(aliases=aliases or [name])}
    container = client.containers.create(
        image, command=command, name=name, detach=True, labels={LABEL: "true"},
        network=network, networking_config=config)
    for extra in extra_networks:
        client.networks.get(extra).connect(container)
    container.start()
    return container


def _wait_probe(probe: Any, networks: Sequence[str], timeout_s: float) -> ProbeResult:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            status = probe.wait(timeout=max(1.0, deadline - time.monotonic()))
            break
        except Exception as exc:  # noqa: BLE001 - requests' read timeout, engine hiccups
            if time.monotonic() >= deadline:
                return ProbeResult(tuple(networks), -1, "start",
                                   f"the probe did not finish within {timeout_s:.0f} s ({exc})")
    output = probe.logs(stdout=True, stderr=True).decode("utf-8", "replace")
    return ProbeResult.parse(networks, int(status.get("StatusCode", -1)), output)


def _quietly(action: Any) -> None:
    try:
        action()
    except Exception as exc:  # noqa: BLE001 - cleanup must not hide the check's result
        logger.debug("preflight cleanup: %s", exc)
