"""The mock data provider: partition a data set and upload the partitions to data servers.

Partition ``i`` (of ``partitions``) goes to ``servers[i % len(servers)]``: with one server per
partition each server gets exactly its learner's partition; with a single server all partitions
land there. With ``partition`` set, the provider writes only that partition, to ``server``: one
provider runs on each FLOps node and fills that node's data server with its learner's partition
(every provider splits the same data set with the same seed, so the partitions are disjoint).
Each partition is uploaded as data set ``<tag>/part-<i>`` with a ``split`` column (``"train"`` /
``"test"``: a held-out test split of ``test_fraction``) and manifest metadata ``partition`` /
``partitions``. Run it with ``python -m flops_dataplane.mock_provider``; settings
are read from ``FLOPS_*`` variables (see :class:`MockProviderSettings`); a JSON summary is
printed on stdout and reported as events.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any, Literal, Self

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from flops_contracts.entrypoint import start_component
from flops_contracts.errors import FlopsError
from flops_contracts.events import Component, EventType
from flops_contracts.ids import check_data_tag, check_identifier
from flops_dataplane.client import DataClient
from flops_dataplane.partitioners import (
    holdout_split,
    label_histogram,
    partition,
    split_train_test,
)
from flops_dataplane.protocol import LABEL_METADATA, SPLIT_COLUMN
from flops_dataplane.sources import load_source
from flops_messaging import EventEmitter, create_emitter

log = logging.getLogger(__name__)


class PartitionOptions(BaseModel):
    """How a data set is split into learners' partitions (see :func:`partition_tables`)."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = "sklearn:digits"
    label_column: str = "label"
    partitions: int = Field(1, ge=1)
    partitioner: Literal["iid", "label_skew", "dirichlet"] = "iid"
    alpha: float = Field(0.5, gt=0)
    labels_per_partition: int = Field(2, ge=1)
    seed: int = 0
    test_fraction: float = Field(0.2, ge=0, lt=1)
    holdout_fraction: float = Field(
        0.0, ge=0, lt=1, description="rows given to no learner (see partitioners.holdout_split)"
    )


class MockProviderSettings(PartitionOptions):
    """Mock data provider settings (``FLOPS_<FIELD>``, e.g. ``FLOPS_PARTITIONS=3``).

    ``servers`` is a JSON list of ``grpc://host:port`` locations; the data server token is read
    from ``FLOPS_DATA_TOKEN`` (field ``data_token``). ``partition`` with ``server`` instead
    writes one partition to one server (a FLOps node's).
    """

    tag: str = "mock"
    servers: list[str] = Field(default_factory=list)
    server: str | None = None
    partition: int | None = Field(None, ge=0)
    replace: bool = True
    data_token: str | None = None
    timeout_s: float = Field(120.0, gt=0)
    project_id: str = "local"
    instance: str = "mock-data-provider"
    events_uri: str | None = None

    @field_validator("tag")
    @classmethod
    def _tag(cls, value: str) -> str:
        return check_data_tag(value)

    @field_validator("project_id", "instance")
    @classmethod
    def _identifier(cls, value: str) -> str:
        return check_identifier(value, what="identifier")

    @model_validator(mode="after")
    def _targets(self) -> Self:
        single = self.partition is not None
        if single and (self.server is None or self.servers):
            raise ValueError("FLOPS_PARTITION needs FLOPS_SERVER (and no FLOPS_SERVERS)")
        if not single and (self.server is not None or not self.servers):
            raise ValueError("set FLOPS_SERVERS (a JSON list), or FLOPS_SERVER with "
                             "FLOPS_PARTITION")
        if single and self.partition is not None and self.partition >= self.partitions:
            raise ValueError(f"FLOPS_PARTITION {self.partition} is not below FLOPS_PARTITIONS "
                             f"{self.partitions}")
        return self

    def targets(self, count: int) -> list[tuple[int, str]]:
        """``(partition, server)`` pairs to upload, of ``count`` partitions."""
        if self.partition is not None and self.server is not None:
            return [(self.partition, self.server)]
        return [(i, self.servers[i % len(self.servers)]) for i in range(count)]


def partition_tables(settings: PartitionOptions, table: pa.Table) -> list[pa.Table]:
    """Split ``table`` into partitions with a ``split`` column, as configured."""
    if settings.label_column not in table.column_names:
        raise FlopsError(
            f"label column {settings.label_column!r} not in the data set "
            f"(columns: {table.column_names}); set FLOPS_LABEL_COLUMN"
        )
    if SPLIT_COLUMN in table.column_names:
        table = table.drop_columns([SPLIT_COLUMN])
    if settings.holdout_fraction > 0:
        kept, _ = holdout_split(
            table.num_rows, fraction=settings.holdout_fraction, seed=settings.seed
        )
        table = table.take(pa.array(kept))
    labels = table.column(settings.label_column).to_numpy(zero_copy_only=False)
    parts = partition(
        settings.partitioner,
        labels,
        settings.partitions,
        seed=settings.seed,
        alpha=settings.alpha,
        labels_per_partition=settings.labels_per_partition,
    )
    out = []
    for index, indices in enumerate(parts):
        train, test = split_train_test(
            indices, test_fraction=settings.test_fraction, seed=settings.seed + 1 + index
        )
        rows = np.concatenate([train, test])
        split = pa.array(["train"] * len(train) + ["test"] * len(test), type=pa.string())
        out.append(table.take(pa.array(rows)).append_column(SPLIT_COLUMN, split))
    return out


def provide(settings: MockProviderSettings, emitter: EventEmitter | None = None) -> dict[str, Any]:
    """Partition the configured data set, upload every partition and return a summary."""
    table = load_source(settings.dataset)
    tables = partition_tables(settings, table)
    summary: dict[str, Any] = {
        "dataset": settings.dataset,
        "tag": settings.tag,
        "partitioner": settings.partitioner,
        "seed": settings.seed,
        "rows": table.num_rows,
        "partitions": [],
    }
    clients: dict[str, DataClient] = {}
    try:
        for index, server in settings.targets(len(tables)):
            part = tables[index]
            if server not in clients:
                clients[server] = DataClient(
                    server, settings.data_token, timeout_s=settings.timeout_s
                )
            manifest = clients[server].upload(
                part,
                settings.tag,
                f"part-{index}",
                replace=settings.replace,
                metadata={"partition": str(index), "partitions": str(len(tables)),
                          LABEL_METADATA: settings.label_column},
            )
            split = part.column(SPLIT_COLUMN).to_numpy(zero_copy_only=False)
            labels = part.column(settings.label_column).to_numpy(zero_copy_only=False)
            report = {
                "index": index,
                "server": server,
                "id": manifest["id"],
                "rows": part.num_rows,
                "train_rows": int((split == "train").sum()),
                "test_rows": int((split == "test").sum()),
                "label_histogram": label_histogram(labels),
                "sha256": manifest["sha256"],
            }
            summary["partitions"].append(report)
            if emitter is not None:
                emitter.emit(EventType.PROGRESS, **report)
    finally:
        for client in clients.values():
            client.close()
    if emitter is not None:
        emitter.emit(EventType.COMPLETED, **summary)
    return summary


def main() -> int:
    """Run the provider from ``FLOPS_*`` settings; print the JSON summary; return the exit code."""
    settings = start_component(MockProviderSettings, prog="flops-mock-data-provider")
    emitter = create_emitter(
        settings.events_uri,
        project_id=settings.project_id,
        component=Component.MOCK_DATA_PROVIDER,
        instance=settings.instance,
    )
    try:
        emitter.emit(EventType.STARTED, dataset=settings.dataset, partitions=settings.partitions)
        summary = provide(settings, emitter)
    except (FlopsError, ValueError) as exc:
        emitter.emit(EventType.FAILED, error=str(exc))
        print(f"mock data provider: {exc}", file=sys.stderr)
        return 1
    finally:
        emitter.close()
    print(json.dumps(summary, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
