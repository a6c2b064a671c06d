"""FLOps nodes as containers on the Docker backend's engine (one network and volume each).

A node container stands for one device or site with a FLOps node installed (``flops node
serve`` in the ``node`` image, ``containers/build.sh node``):

* its own named volume ``flops-node-<name>`` at ``/var/lib/flops/node`` (credentials, data,
  access records): the node's storage, which no other container mounts;
* its own bridge network ``flops-node-<name>``, the node's local network, on which the agent
  is reachable by the container's name;
* its data server port published on the engine host, for users' ``flops data push`` (the
  address it reports, ``grpc://<advertise host>:<host port>``, is recorded in the label
  :data:`LABEL_NODE_LOCATION`).

A learner the manager places on node ``N`` (``ServiceSpec.node``) is run by the Docker
backend *on* that node: the container joins ``N``'s network besides its project's, and the
variable ``ServiceSpec.node_location_env`` (the node's reported address) becomes ``N``'s
address on that network, ``grpc://flops-node-<name>:<port>``. No other node's network is
joined, so a learner reaches no other node's data server (and its data token is for its own
node only). The backend finds a node by its labels and checks that the container's recorded
location is the one the node reported to the manager: a node of the same name elsewhere (or a
stale container) is never taken for it.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import docker.errors  # type: ignore[import-untyped]  # docker 7.2 ships no type information

from flops_manager.adapters.bridge_neighbours import NEIGHBOUR_SYSCTLS, is_podman

LABEL_NODE = "io.flops.node"
"""Label of a node container: the node's name."""
LABEL_NODE_LOCATION = "io.flops.node-location"
"""Label of a node container: the data server address the node reports (``grpc://H:P``)."""
LABEL_NODE_PORT = "io.flops.node-port"
"""Label of a node container: its data server's port inside the container."""
NODE_DIR = "/var/lib/flops/node"
"""The node image's volume."""
NODE_PORT = 50070
"""The node image's data server port (``FLOPS_NODE_PORT``)."""


def node_object_name(name: str) -> str:
    """The container, network and volume name of node ``name`` (``flops-node-<name>``)."""
    return f"flops-node-{name}"


@dataclasses.dataclass(frozen=True)
class NodeContainer:
    """One node container to start.

    Attributes
    ----------
    name, cluster
        The node's name and cluster (``flops node serve --name --cluster``).
    image
        The node image (``containers/build.sh node``).
    manager_url
        The manager's API as containers reach it.
    advertise_host
        The engine host's address users reach the published data server port at.
    host_port
        The host port the data server is published on (also its port in the container, so
        the reported address names the published port).
    report_interval_s
        Seconds between inventory reports.
    """

    name: str
    cluster: str
    image: str
    manager_url: str
    advertise_host: str
    host_port: int
    report_interval_s: float = 10.0

    @property
    def location(self) -> str:
        """The address the node reports: its published port on the engine host."""
        return f"grpc://{self.advertise_host}:{self.host_port}"


def node_container_config(node: NodeContainer, token: str | None) -> dict[str, Any]:
    """Docker SDK ``containers.create`` arguments of ``node`` (network attached separately).

    ``token`` (a node token, first start only) goes into ``FLOPS_NODE_TOKEN``; later starts on
    the same volume need none.
    """
    name = node_object_name(node.name)
    env = {"FLOPS_API_URL": node.manager_url, "FLOPS_NODE_NAME": node.name,
           "FLOPS_NODE_CLUSTER": node.cluster, "FLOPS_NODE_PORT": str(node.host_port),
           "FLOPS_NODE_ADVERTISE_HOST": node.advertise_host,
           "FLOPS_NODE_REPORT_INTERVAL_S": str(node.report_interval_s)}
    if token:
        env["FLOPS_NODE_TOKEN"] = token
    return {
        "name": name, "hostname": name, "detach": True, "environment": env,
        "labels": {LABEL_NODE: node.name, LABEL_NODE_LOCATION: node.location,
                   LABEL_NODE_PORT: str(node.host_port)},
        "volumes": {name: {"bind": NODE_DIR, "mode": "rw"}},
        "ports": {f"{node.host_port}/tcp": node.host_port},
        "network": name,  # the agent handles SIGTERM itself (no init process needed)
    }


def start_node_container(client: Any, node: NodeContainer, token: str | None) -> str:
    """Create ``node``'s network and volume (if missing) and start its container.

    Returns the container's name. The volume outlives the container: a new container on it
    is the same node with the same data (no token needed).
    """
    name = node_object_name(node.name)
    if not client.networks.list(names=[name]):
        client.networks.create(name, driver="bridge", labels={LABEL_NODE: node.name})
    with contextlib.suppress(docker.errors.APIError):  # exists already: the node's data
        client.volumes.create(name, labels={LABEL_NODE: node.name})
    config = node_container_config(node, token)
    if is_podman(client):  # the node reports to the manager through its network's gateway
        config["sysctls"] = dict(NEIGHBOUR_SYSCTLS)
    container = client.containers.create(node.image, **config)
    container.start()
    return name


def remove_node_container(client: Any, name: str, *, volume: bool = False) -> None:
    """Remove node ``name``'s container and network (and its volume, the node's data, if asked)."""
    objects = node_object_name(name)
    with contextlib.suppress(docker.errors.NotFound):
        client.containers.get(objects).remove(force=True)
    for network in client.networks.list(names=[objects]):
        with contextlib.suppress(docker.errors.NotFound):
            network.remove()
    if volume:
        with contextlib.suppress(docker.errors.NotFound):
            client.volumes.get(objects).remove(force=True)


@dataclasses.dataclass(frozen=True)
class NodeEndpoint:
    """Where a service placed on a node container reaches that node's data server."""

    network: str
    location: str


def node_endpoint(labels_of_nodes: Sequence[Mapping[str, str]], node: str,
                  reported: str | None) -> NodeEndpoint | None:
    """The endpoint of node ``node`` among node containers' labels, if one matches.

    A container matches when it is labelled as node ``node`` and its recorded location is the
    one the node reported (``reported``, what the manager placed the service with).
    """
    for labels in labels_of_nodes:
        if labels.get(LABEL_NODE) == node and labels.get(LABEL_NODE_LOCATION) == reported:
            name = node_object_name(node)
            return NodeEndpoint(network=name,
                                location=f"grpc://{name}:{labels.get(LABEL_NODE_PORT)}")
    return None


def find_node_endpoint(client: Any, node: str, reported: str | None) -> NodeEndpoint | None:
    """:func:`node_endpoint` over the engine's containers labelled as node ``node``."""
    found = client.containers.list(all=True, filters={"label": f"{LABEL_NODE}={node}"})
    return node_endpoint([c.labels for c in found], node, reported)
