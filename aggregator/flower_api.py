"""Everything the aggregator needs from Flower, in one module.

Flower's legacy gRPC stack (``start_grpc_server``, ``Server``, ``start_client``) is used because
its per-round overhead is tens of milliseconds, while the Deployment Engine of Flower 1.41 adds
seconds of fixed polling per round. Holding the gRPC server and the ``Server`` ourselves (instead
of ``start_server``) lets a cluster aggregator keep its learners connected across root rounds and
lets us bound every wait. Moving to another Flower API means rewriting this module only.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from flwr.common import (
    EvaluateIns,
    EvaluateRes,
    FitIns,
    FitRes,
    Parameters,
    Scalar,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.server import Server, SimpleClientManager
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import (
    DifferentialPrivacyServerSideAdaptiveClipping,
    DifferentialPrivacyServerSideFixedClipping,
    FedAdagrad,
    FedAdam,
    FedAvg,
    FedAvgM,
    FedMedian,
    FedProx,
    FedTrimmedAvg,
    FedYogi,
    Krum,
    Strategy,
)
from flwr.server.superlink.fleet.grpc_bidi.grpc_server import start_grpc_server

from aggregator.rounds import EvaluateOutcome, FitOutcome, RoundRecorder, RoundReport
from flops_contracts.errors import TrainingError
from flops_contracts.spec import TrainingSpec
from flops_contracts.strategy_spec import StrategyName

logger = logging.getLogger(__name__)

NDArrays = list[Any]
ReportHook = Callable[[RoundReport, Parameters | None], None]
"""Called with each round's report and the serialized global model it evaluated."""
FailureHook = Callable[[int, str, list[str]], None]

_STRATEGY_CLASSES: dict[StrategyName, type[FedAvg]] = {
    StrategyName.FEDAVG: FedAvg,
    StrategyName.FEDAVGM: FedAvgM,
    StrategyName.FEDPROX: FedProx,
    StrategyName.FEDADAM: FedAdam,
    StrategyName.FEDYOGI: FedYogi,
    StrategyName.FEDADAGRAD: FedAdagrad,
    StrategyName.FEDMEDIAN: FedMedian,
    StrategyName.FEDTRIMMEDAVG: FedTrimmedAvg,
    StrategyName.KRUM: Krum,
}


def build_flower_strategy(
    training: TrainingSpec,
    *,
    initial_parameters: NDArrays,
    min_fit: int,
    min_evaluate: int,
) -> Strategy:
    """Create the Flower strategy named in ``training`` (wrapped for central DP if asked).

    ``min_available_clients`` is set to ``min_fit``: the initial wait for all learners is done by
    :meth:`FlowerSession.wait_for_clients`, and later rounds continue while ``min_fit`` remain.
    """
    cls: Any = _STRATEGY_CLASSES[training.strategy.name]
    strategy: Strategy = cls(
        fraction_fit=training.fraction_fit,
        fraction_evaluate=training.fraction_evaluate,
        min_fit_clients=min_fit,
        min_evaluate_clients=min_evaluate,
        min_available_clients=min_fit,
        initial_parameters=ndarrays_to_parameters(initial_parameters),
        accept_failures=True,
        **training.strategy.params,
    )
    dp = training.differential_privacy
    if dp is not None:
        if dp.clipping == "fixed":
            strategy = DifferentialPrivacyServerSideFixedClipping(
                strategy,
                noise_multiplier=dp.noise_multiplier,
                clipping_norm=dp.clipping_norm,
                num_sampled_clients=min_fit,
            )
        else:
            strategy = DifferentialPrivacyServerSideAdaptiveClipping(
                strategy,
                noise_multiplier=dp.noise_multiplier,
                num_sampled_clients=min_fit,
                initial_clipping_norm=dp.clipping_norm,
                target_clipped_quantile=dp.target_clipped_quantile,
                clip_norm_lr=dp.clip_norm_lr,
                clipped_count_stddev=dp.clipped_count_stddev,
            )
    return strategy


def to_ndarrays(parameters: Parameters) -> NDArrays:
    """Deserialize Flower ``Parameters`` (e.g. the kept best model) into numpy arrays."""
    return list(parameters_to_ndarrays(parameters))


def _nbytes(parameters: Parameters) -> int:
    return sum(len(t) for t in parameters.tensors)


def _describe_failure(failure: tuple[ClientProxy, Any] | BaseException) -> str:
    if isinstance(failure, BaseException):
        return f"{type(failure).__name__}: {failure}".strip()
    proxy, res = failure
    return f"client {proxy.cid}: {res.status.message}"


class RecordingStrategy(Strategy):
    """Wraps a Flower strategy: adds per-round learner config, records rounds, enforces minimums.

    The wrapped strategy does all aggregation math; this class only observes and annotates.
    The global model is kept as Flower serialized it (``latest_parameters``): deserializing it
    every round would cost as much as a learner's whole parameter transfer.
    """

    def __init__(
        self,
        inner: Strategy,
        *,
        recorder: RoundRecorder,
        round_config: dict[str, Scalar],
        on_report: ReportHook | None = None,
        on_failures: FailureHook | None = None,
        fit_enabled: bool = True,
    ) -> None:
        super().__init__()
        self.inner = inner
        self.recorder = recorder
        self.round_config = dict(round_config)
        self.on_report = on_report
        self.on_failures = on_failures
        self.fit_enabled = fit_enabled
        self.latest_parameters: Parameters | None = None
        self.last_report: RoundReport | None = None
        self.last_fit_examples = 0

    def __repr__(self) -> str:
        return f"RecordingStrategy({self.inner!r})"

    def _with_config(self, server_round: int, config: dict[str, Scalar]) -> dict[str, Scalar]:
        return {**self.round_config, "server_round": server_round, **config}

    def initialize_parameters(self, client_manager: ClientManager) -> Parameters | None:
        """Delegate to the wrapped strategy and remember the initial parameters."""
        parameters: Parameters | None = self.inner.initialize_parameters(client_manager)
        if parameters is not None:
            self.latest_parameters = parameters
        return parameters

    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, FitIns]]:
        """Let the wrapped strategy sample learners, then add the per-round configuration."""
        if not self.fit_enabled:
            return []
        instructions = self.inner.configure_fit(server_round, parameters, client_manager)
        out = [
            (proxy, FitIns(ins.parameters, self._with_config(server_round, ins.config)))
            for proxy, ins in instructions
        ]
        self.recorder.fit_started(
            server_round,
            sampled=len(out),
            bytes_sent=sum(_nbytes(ins.parameters) for _, ins in out),
        )
        return out

    def aggregate_fit(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, FitRes]],
        failures: list[tuple[ClientProxy, FitRes] | BaseException],
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        """Record the answers, enforce ``min_fit``, then aggregate with the wrapped strategy.

        An answer with no training examples counts as a failure: it would carry no weight in
        any weighted average (and divide by zero if every answer had none).
        """
        empty = [(proxy, res) for proxy, res in results if res.num_examples <= 0]
        results = [(proxy, res) for proxy, res in results if res.num_examples > 0]
        reasons = [_describe_failure(f) for f in failures] + [
            f"client {proxy.cid}: fit reported {res.num_examples} training examples; a learner "
            "must train on at least one" for proxy, res in empty
        ]
        if reasons and self.on_failures is not None:
            self.on_failures(server_round, "fit", reasons)
        outcomes = [FitOutcome(res.num_examples, _nbytes(res.parameters)) for _, res in results]
        self.recorder.fit_finished(server_round, outcomes, reasons)
        self.last_fit_examples = sum(o.examples for o in outcomes)
        parameters, metrics = self.inner.aggregate_fit(server_round, results, failures)
        if parameters is not None:
            self.latest_parameters = parameters
        return parameters, metrics

    def configure_evaluate(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, EvaluateIns]]:
        """Let the wrapped strategy sample learners, then add the per-round configuration."""
        instructions = self.inner.configure_evaluate(server_round, parameters, client_manager)
        self.recorder.add_bytes_sent(sum(_nbytes(ins.parameters) for _, ins in instructions))
        return [
            (proxy, EvaluateIns(ins.parameters, self._with_config(server_round, ins.config)))
            for proxy, ins in instructions
        ]

    def aggregate_evaluate(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, EvaluateRes]],
        failures: list[tuple[ClientProxy, EvaluateRes] | BaseException],
    ) -> tuple[float | None, dict[str, Scalar]]:
        """Record the evaluation of the current global model and report the round."""
        reasons = [_describe_failure(f) for f in failures]
        if reasons and self.on_failures is not None:
            self.on_failures(server_round, "evaluate", reasons)
        outcomes = []
        for _, res in results:
            accuracy = res.metrics.get("accuracy")
            outcomes.append(
                EvaluateOutcome(
                    loss=float(res.loss),
                    examples=int(res.num_examples),
                    accuracy=float(accuracy) if isinstance(accuracy, int | float) else None,
                )
            )
        report = self.recorder.evaluate_finished(server_round, outcomes, reasons)
        self.last_report = report
        if self.on_report is not None:
            self.on_report(report, self.latest_parameters)
        metrics: dict[str, Scalar] = {}
        if report.accuracy is not None:
            metrics["accuracy"] = report.accuracy
        return report.loss, metrics

    def evaluate(
        self, server_round: int, parameters: Parameters
    ) -> tuple[float, dict[str, Scalar]] | None:
        """Delegate centralised evaluation (none by default)."""
        result: tuple[float, dict[str, Scalar]] | None = self.inner.evaluate(
            server_round, parameters
        )
        return result


class FlowerSession:
    """A Flower gRPC server that learners stay connected to across training sessions."""

    def __init__(
        self,
        *,
        address: str,
        certificates: tuple[bytes, bytes, bytes] | None = None,
        max_message_length: int = 536_870_912,
    ) -> None:
        self.address = address
        self._certificates = certificates
        self._max_message_length = max_message_length
        self._client_manager = SimpleClientManager()
        self._grpc: Any = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Open the gRPC port (idempotent)."""
        with self._lock:
            if self._grpc is None:
                self._grpc = start_grpc_server(
                    client_manager=self._client_manager,
                    server_address=self.address,
                    max_message_length=self._max_message_length,
                    certificates=self._certificates,
                )

    def num_connected(self) -> int:
        """Clients currently connected."""
        return int(self._client_manager.num_available())

    def wait_for_clients(self, *, target: int, minimum: int, timeout_s: float) -> int:
        """Wait until ``target`` clients are connected or ``timeout_s`` passes.

        Returns
        -------
        int
            How many are connected.

        Raises
        ------
        TrainingError
            If fewer than ``minimum`` connected in time.
        """
        self._client_manager.wait_for(target, timeout=int(max(1, timeout_s)))
        connected = self.num_connected()
        if connected < minimum:
            raise TrainingError(
                f"only {connected} of {target} expected clients connected to {self.address} "
                f"within {timeout_s:.0f}s; at least {minimum} are needed"
            )
        return connected

    def fit(self, strategy: RecordingStrategy, *, num_rounds: int, round_timeout_s: float) -> None:
        """Run ``num_rounds`` rounds of training and evaluation with ``strategy``."""
        server = Server(client_manager=self._client_manager, strategy=strategy)
        server.fit(num_rounds=num_rounds, timeout=round_timeout_s)

    def evaluate(
        self,
        strategy: RecordingStrategy,
        *,
        parameters: NDArrays,
        server_round: int,
        round_timeout_s: float,
    ) -> RoundReport | None:
        """Evaluate ``parameters`` on the connected clients once and return the report."""
        server = Server(client_manager=self._client_manager, strategy=strategy)
        server.parameters = ndarrays_to_parameters(parameters)
        strategy.latest_parameters = server.parameters
        server.evaluate_round(server_round=server_round, timeout=round_timeout_s)
        return strategy.last_report

    def stop(self, *, timeout_s: float = 5.0) -> None:
        """Tell every client to disconnect, then close the port (idempotent)."""
        with self._lock:
            grpc_server, self._grpc = self._grpc, None
        if grpc_server is None:
            return
        try:
            Server(client_manager=self._client_manager).disconnect_all_clients(timeout=timeout_s)
        except Exception:
            logger.debug("disconnecting clients failed", exc_info=True)
        grpc_server.stop(grace=1)


__all__ = [
    "FlowerSession",
    "Parameters",
    "RecordingStrategy",
    "build_flower_strategy",
    "to_ndarrays",
]
