"""Learners that do not know their index claim distinct partitions of a shared data server."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pytest

from flops_dataplane.client import DataClient
from flops_dataplane.errors import DatasetExistsError, NoDataError
from flops_dataplane.server import DataServer
from learner_base.data import claim_partition
from learner_base.settings import LearnerSettings


def fill(server: DataServer, partitions: int) -> None:
    with DataClient(server.location, None) as client:
        for i in range(partitions):
            client.upload(pa.table({"x0": [float(i)], "label": [i]}), "mock", f"part-{i}",
                          metadata={"partition": str(i)})


def test_concurrent_claims_get_distinct_partitions(
    start_server: Callable[..., DataServer],
) -> None:
    server = start_server()
    fill(server, 4)
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda n: claim_partition(server.location, ["mock"],
                                                      claimant=f"node-{n}"), range(4)))
    assert sorted(got) == [0, 1, 2, 3]
    assert claim_partition(server.location, ["mock"], claimant="node-2") == got[2]  # restart
    with pytest.raises(NoDataError, match=r"all 4 partitions .* are taken"):
        claim_partition(server.location, ["mock"], claimant="node-9")


def test_claiming_without_partitions_says_so(start_server: Callable[..., DataServer]) -> None:
    server = start_server()
    with pytest.raises(NoDataError, match="no partitions under tags"):
        claim_partition(server.location, ["mock"], claimant="a")


def test_uploading_an_existing_name_is_a_typed_conflict(
    start_server: Callable[..., DataServer],
) -> None:
    server = start_server()
    fill(server, 1)
    with DataClient(server.location, None) as client, pytest.raises(DatasetExistsError):
        client.upload(pa.table({"x0": [1.0], "label": [1]}), "mock", "part-0")


def test_only_learners_without_an_index_claim() -> None:
    base = {"repo_dir": ".", "server_address": "a:1", "shared_data_server": True,
            "data_server": "grpc://d:1"}
    assert LearnerSettings(**base).claims_partition
    assert not LearnerSettings(**base, instance_index=2).claims_partition
    assert not LearnerSettings(**base, learner_index=1).claims_partition
    assert not LearnerSettings(**{**base, "shared_data_server": False}).claims_partition
