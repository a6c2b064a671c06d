"""MLflow tracking for one training: experiment per project, one run, per-round metrics, model.

All MLflow calls of the aggregator live here and in :mod:`aggregator.model_saving`.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from aggregator.model_saving import SavedModel, log_trained_model
from aggregator.rounds import RoundReport
from flops_contracts.backoff import backoff_delay

logger = logging.getLogger(__name__)

_Point = tuple[str, float, int, int]
"""One metric value: key, value, timestamp (ms), step."""

@dataclasses.dataclass(frozen=True)
class RegisteredModel:
    """Where the logged winning model lives."""

    model_uri: str
    registered_name: str | None
    version: str | None
    flavor: str
    warning: str | None = None
    """Why the model was saved as a generic pickled model instead of with its flavor."""

    @property
    def registry_uri(self) -> str | None:
        """``models:/NAME/VERSION`` when the model was registered."""
        if self.registered_name and self.version:
            return f"models:/{self.registered_name}/{self.version}"
        return None


class MlflowTracker:
    """Records one training as one MLflow run.

    Nothing is contacted until :meth:`start` is called. Per-round metrics are written by a
    background thread so that rounds never wait for the tracking server, at most one batch per
    ``write_interval_s`` (the first one interval after the first round): rounds that end
    meanwhile are coalesced into the next batch, so short rounds do not pay a store
    transaction each (nor compete with it for the interpreter). A
    failed write is retried with backoff (the server may be restarting) and :meth:`flush`
    writes what is queued at once and waits for it.

    :meth:`start_in_background` creates the run on a thread of its own, so that rounds need not
    wait for MLflow (its import, opening the store, the experiment and the run take seconds):
    rounds queue their metrics until the run exists, :meth:`check` raises a failed start
    during training and :meth:`wait_started` waits for the run before the model is logged.
    """

    RETRIES = 5
    MAX_BATCH_ITEMS = 100  # rounds per write; MLflow accepts up to 1000 metrics per batch
    WRITE_INTERVAL_S = 1.0

    def __init__(
        self,
        *,
        tracking_uri: str,
        experiment_name: str,
        run_name: str,
        artifact_location: str | None = None,
        write_interval_s: float = WRITE_INTERVAL_S,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.write_interval_s = write_interval_s
        self.experiment_name = experiment_name
        self.run_name = run_name
        self.artifact_location = artifact_location
        self.run_id: str | None = None
        self.experiment_id: str | None = None
        self._queue: queue.Queue[list[_Point] | None] = queue.Queue()
        self._writer: threading.Thread | None = None
        self._hurry = threading.Event()
        self._starter: threading.Thread | None = None
        self._start_error: BaseException | None = None

    def _client(self) -> Any:
        from mlflow.tracking import MlflowClient

        # the registry is the tracking server, whatever MLFLOW_REGISTRY_URI says
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def start(self, *, params: Mapping[str, Any], tags: Mapping[str, str]) -> str:
        """Create (or reuse) the project's experiment and start the run; return its id."""
        import mlflow

        mlflow.set_tracking_uri(self.tracking_uri)
        client = self._client()
        experiment = client.get_experiment_by_name(self.experiment_name)
        if experiment is None:
            try:
                self.experiment_id = client.create_experiment(
                    self.experiment_name, artifact_location=self.artifact_location
                )
            except Exception:
                experiment = client.get_experiment_by_name(self.experiment_name)
                if experiment is None:
                    raise
                self.experiment_id = experiment.experiment_id
        else:
            self.experiment_id = experiment.experiment_id
        run = client.create_run(self.experiment_id, run_name=self.run_name, tags=dict(tags))
        self.run_id = run.info.run_id
        from mlflow.entities import Param

        client.log_batch(
            self.run_id, params=[Param(k, str(v)[:6000]) for k, v in sorted(params.items())]
        )
        return self.run_id

    def start_in_background(
        self,
        *,
        params: Mapping[str, Any],
        tags: Mapping[str, str],
        then: Callable[[MlflowTracker], None] | None = None,
    ) -> None:
        """Run :meth:`start` (then ``then(self)``, e.g. tagging the experiment) on a thread."""
        if self._starter is not None or self.run_id is not None:
            raise RuntimeError("the tracker was started already")

        def starting() -> None:
            try:
                self.start(params=params, tags=tags)
                if then is not None:
                    then(self)
            except BaseException as exc:  # noqa: BLE001 - re-raised by check()/wait_started()
                self._start_error = exc

        self._starter = threading.Thread(target=starting, name="mlflow-start", daemon=True)
        self._starter.start()

    def check(self) -> None:
        """Raise the error of a background start that failed (returns at once otherwise)."""
        if self._start_error is not None:
            raise self._start_error

    def wait_started(self, timeout_s: float | None = None) -> str:
        """Wait for a background start; return the run's id or raise why it failed.

        Raises
        ------
        RuntimeError
            Before :meth:`start` / :meth:`start_in_background`, or if ``timeout_s`` passed.
        """
        starter = self._starter
        if starter is not None:
            starter.join(timeout_s)
            if starter.is_alive():
                raise RuntimeError(f"the MLflow run was not created within {timeout_s}s")
        self.check()
        return self._started()

    def _started(self) -> str:
        """The run's id; raises ``RuntimeError`` before :meth:`start`."""
        if self.run_id is None:
            raise RuntimeError("start() the tracker first")
        return self.run_id

    def log_round(self, report: RoundReport, *, step: int | None = None) -> None:
        """Queue the round's metrics for step ``report.server_round`` (written in background).

        The run need not exist yet (:meth:`start_in_background`): the writer waits for it.
        """
        if self.run_id is None and self._starter is None:
            self._started()
        now = int(time.time() * 1000)
        at = report.server_round if step is None else step
        metrics = [(k, float(v), now, at) for k, v in report.metrics().items()]
        if self._writer is None:
            self._writer = threading.Thread(target=self._write_loop, name="mlflow-metrics",
                                            daemon=True)
            self._writer.start()
        self._queue.put(metrics)

    def _write_loop(self) -> None:
        """Write queued metrics, coalescing whatever queued up meanwhile into one batch."""
        client: Any = None
        last_write = time.monotonic()  # the first rounds, too, wait: a run's first write is
        # its slowest (the store compiles its statements) and short runs then write once, at
        # the end, when the learners are gone
        while True:
            items = [self._queue.get()]
            if items[-1] is not None:  # let a few rounds queue up, unless flush() hurries
                self._hurry.wait(max(0.0, last_write + self.write_interval_s - time.monotonic()))
            while items[-1] is not None and len(items) < self.MAX_BATCH_ITEMS:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            points = [m for item in items if item is not None for m in item]
            try:
                if points:
                    client = self._write(client, points)
                    last_write = time.monotonic()
            finally:
                for _ in items:
                    self._queue.task_done()
            if items[-1] is None:
                return

    def _write(self, client: Any, points: list[_Point]) -> Any:
        """Write ``points`` (creating the client the first time); return the client."""
        try:
            run_id = self.wait_started()  # the run (and the mlflow import) first
            from mlflow.entities import Metric

            client = client or self._client()
        except Exception:  # the training fails on it (check, wait_started)
            logger.warning("dropping %s metrics: the MLflow run was not created", len(points),
                           exc_info=True)
            return client
        metrics = [Metric(*point) for point in points]
        for attempt in range(self.RETRIES):
            try:
                client.log_batch(run_id, metrics=metrics)
                return client
            except Exception:
                if attempt == self.RETRIES - 1:
                    logger.warning("dropping %s metrics after %s attempts", len(metrics),
                                   self.RETRIES, exc_info=True)
                else:
                    time.sleep(backoff_delay(attempt, base_s=0.5, cap_s=5.0))
        return client

    def flush(self) -> None:
        """Wait until every queued metric was written (or given up on)."""
        if self._writer is not None:
            self._hurry.set()
            self._queue.join()
            self._hurry.clear()

    def log_summary(self, values: Mapping[str, float]) -> None:
        """Log final summary metrics (no step)."""
        from mlflow.entities import Metric

        run_id = self._started()
        self.flush()
        now = int(time.time() * 1000)
        self._client().log_batch(
            run_id, metrics=[Metric(k, float(v), now, 0) for k, v in values.items()]
        )

    def log_model(
        self,
        manager: Any,
        *,
        registered_model_name: str | None,
        tags: Mapping[str, str],
        source_dir: Path | None = None,
    ) -> RegisteredModel:
        """Log ``manager.get_model()`` (always saved, see :mod:`aggregator.model_saving`).

        With ``registered_model_name``, a new version of that model is registered; ``tags``
        go to the version and the registered model, each in the call that creates it.
        """
        import mlflow

        run_id = self._started()
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        with mlflow.start_run(run_id=run_id):
            saved = log_trained_model(manager, source_dir=source_dir)
        version = None
        if registered_model_name:
            version = register_version(self._client(), name=registered_model_name,
                                       saved=saved, run_id=run_id, tags=tags)
        return RegisteredModel(
            model_uri=saved.model_uri,
            registered_name=registered_model_name,
            version=version,
            flavor=saved.flavor,
            warning=saved.warning,
        )

    def finish(self, *, failed: bool = False) -> None:
        """End the run as FINISHED or FAILED (idempotent); waits for a background start."""
        if self._starter is not None:
            self._starter.join(60)
        if self.run_id is None:
            return
        self.flush()
        if self._writer is not None:
            self._queue.put(None)
            self._writer.join(10)
            self._writer = None
        try:
            self._client().set_terminated(self.run_id, status="FAILED" if failed else "FINISHED")
        except Exception:
            logger.warning("could not mark MLflow run %s terminated", self.run_id, exc_info=True)


_EXISTS_CODES = frozenset({"RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"})


def register_version(
    client: Any, *, name: str, saved: SavedModel, run_id: str, tags: Mapping[str, str]
) -> str:
    """Register ``saved`` as a new version of the model ``name``; return the version.

    A new registered model gets ``tags`` when it is created; an existing one has them set (a
    later training of the same project overwrites its values). The version gets ``tags`` in
    the call that creates it: one store transaction instead of one per tag.
    """
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name, tags=dict(tags))
    except MlflowException as exc:
        if exc.error_code not in _EXISTS_CODES:
            raise
        for key, value in tags.items():
            client.set_registered_model_tag(name, key, value)
    version = client.create_model_version(name, source=saved.model_uri, run_id=run_id,
                                          tags=dict(tags), model_id=saved.model_id)
    return str(version.version)
