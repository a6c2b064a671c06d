"""The learner's Flower client: repository code behind Flower's legacy gRPC protocol.

The aggregator runs Flower's legacy gRPC server (``start_grpc_server``): on Flower 1.41 it
costs tens of milliseconds per round, while the Deployment Engine adds seconds of fixed
polling per round. The learner side speaks that protocol itself
(:mod:`learner_base.flower_protocol`, :mod:`learner_base.flower_connection`) instead of
importing Flower, whose package loads its server, SQLAlchemy, FastAPI and CLI: a learner
image carries no Flower unless the repository imports it. Moving to another Flower API means
rewriting these modules only.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from flops_contracts.backoff import backoff_delay
from flops_contracts.errors import ContractError
from flops_contracts.ndarray_codec import ndarrays_to_tensors, tensors_to_ndarrays
from learner_base.contract_checks import (
    CallSite,
    Shapes,
    check_evaluate_result,
    check_fit_result,
    check_parameters,
    shapes_of,
)
from learner_base.flower_connection import serve
from learner_base.flower_protocol import (
    ClientMessage,
    EvaluateIns,
    EvaluateRes,
    FitIns,
    FitRes,
    GetParametersIns,
    GetParametersRes,
    NotImplementedRes,
    ServerMessage,
)
from learner_base.legacy_manager import unwrap
from learner_base.model_manager import RoundConfig
from learner_base.server_address import resolution_error

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

FIRST_RETRY_DELAY_S = 0.2
MAX_RETRY_DELAY_S = 1.0
RESOLVE_GRACE_S = 60.0
"""A server name that stays unresolvable this long fails the learner (before its timeout)."""

FitHook = Callable[[RoundConfig, int, float], None]
EvaluateHook = Callable[[RoundConfig, float, float, int], None]


class ContactTrackingClient:
    """A client of numpy arrays (as Flower's ``NumPyClient``) that remembers contact.

    ``contacted`` tells whether the server ever talked to it; ``code_error`` holds what user
    code raised, so that it is not mistaken for a network error.
    """

    contacted: bool = False
    code_error: BaseException | None = None

    def _contact(self) -> None:
        self.contacted = True

    def _guard(self, call: Callable[[], _T]) -> _T:
        """Run user code; remember its exception so it is not mistaken for a network error."""
        try:
            return call()
        except BaseException as exc:
            self.code_error = exc
            raise

    def get_parameters(self, config: dict[str, Any]) -> list[Any]:
        """Return the current parameters."""
        raise NotImplementedError

    def fit(
        self, parameters: list[Any], config: dict[str, Any]
    ) -> tuple[list[Any], int, dict[str, Any]]:
        """Train one round from ``parameters``; return parameters, examples, metrics."""
        raise NotImplementedError

    def evaluate(
        self, parameters: list[Any], config: dict[str, Any]
    ) -> tuple[float, int, dict[str, Any]]:
        """Evaluate ``parameters``; return loss, examples, metrics."""
        raise NotImplementedError

    def handle(self, instruction: ServerMessage) -> ClientMessage:
        """Answer one instruction of the server, (de)serializing arrays in one copy each.

        Flower's own ``NumPyClient`` wrapper does the same with ``np.save`` / ``np.load``
        (several copies per array, see :mod:`flops_contracts.ndarray_codec`); the bytes on
        the wire are the same.
        """
        if isinstance(instruction, GetParametersIns):
            return GetParametersRes(ndarrays_to_tensors(self.get_parameters(instruction.config)))
        if isinstance(instruction, FitIns):
            # writable copies: user code may change the arrays it receives in place
            arrays, examples, metrics = self.fit(tensors_to_ndarrays(instruction.tensors),
                                                 dict(instruction.config))
            return FitRes(ndarrays_to_tensors(arrays), examples, metrics)
        if isinstance(instruction, EvaluateIns):
            loss, examples, metrics = self.evaluate(tensors_to_ndarrays(instruction.tensors),
                                                    dict(instruction.config))
            return EvaluateRes(float(loss), examples, metrics)
        return NotImplementedRes()


class ClientCodeError(Exception):
    """User code (the ModelManager or a callback) raised inside fit/evaluate."""


class ModelManagerClient(ContactTrackingClient):
    """Drives a repository's ModelManager from Flower's fit/evaluate calls.

    Every result is checked (:mod:`learner_base.contract_checks`): a wrong type, parameters
    whose shapes change between rounds, or NaN/inf parameters raise a
    :class:`~flops_contracts.errors.ContractError` naming the file and the method, which
    :func:`run_client` re-raises instead of reporting a broken connection.
    """

    def __init__(
        self,
        manager: Any,
        *,
        on_fit: FitHook | None = None,
        on_evaluate: EvaluateHook | None = None,
        site: CallSite | None = None,
    ) -> None:
        self._manager = manager
        self._on_fit = on_fit
        self._on_evaluate = on_evaluate
        self._site = site or CallSite(cls=type(unwrap(manager)).__name__)
        self._shapes: Shapes | None = None

    def _parameters(self, when: str) -> list[Any]:
        arrays = check_parameters(
            self._manager.get_model_parameters(),
            source=self._site.method("get_model_parameters"), expected=self._shapes, when=when,
        )
        if self._shapes is None:
            self._shapes = shapes_of(arrays)
        return arrays

    def _receive(self, parameters: list[Any]) -> None:
        if self._shapes is None:
            self._shapes = shapes_of(parameters)
        self._manager.set_model_parameters(parameters)

    def get_parameters(self, config: dict[str, Any]) -> list[Any]:
        """Return the current local parameters."""
        self._contact()
        return self._guard(lambda: self._parameters(""))

    def fit(
        self, parameters: list[Any], config: dict[str, Any]
    ) -> tuple[list[Any], int, dict[str, Any]]:
        """Train one round starting from the global ``parameters``."""
        self._contact()
        return self._guard(lambda: self._fit(parameters, RoundConfig.from_flower(config)))

    def _fit(
        self, parameters: list[Any], config: RoundConfig
    ) -> tuple[list[Any], int, dict[str, Any]]:
        self._receive(parameters)
        started = time.perf_counter()
        examples = check_fit_result(self._manager.fit_model(config), site=self._site)
        seconds = time.perf_counter() - started
        trained = self._parameters(f" after fit_model() in round {config.server_round}")
        if self._on_fit is not None:
            self._on_fit(config, examples, seconds)
        return trained, examples, {"train_seconds": seconds}

    def evaluate(
        self, parameters: list[Any], config: dict[str, Any]
    ) -> tuple[float, int, dict[str, Any]]:
        """Evaluate the global ``parameters`` on local test data."""
        self._contact()
        return self._guard(lambda: self._evaluate(parameters, RoundConfig.from_flower(config)))

    def _evaluate(
        self, parameters: list[Any], config: RoundConfig
    ) -> tuple[float, int, dict[str, Any]]:
        self._receive(parameters)
        loss, accuracy, examples = check_evaluate_result(
            self._manager.evaluate_model(config), site=self._site
        )
        if self._on_evaluate is not None:
            self._on_evaluate(config, loss, accuracy, examples)
        return loss, examples, {"accuracy": accuracy}


class CallbackClient(ContactTrackingClient):
    """A Flower client whose calls are plain callbacks (a cluster aggregator towards the root)."""

    def __init__(
        self,
        *,
        get_parameters: Callable[[], list[Any]],
        fit: Callable[[list[Any], dict[str, Any]], tuple[list[Any], int, dict[str, Any]]],
        evaluate: Callable[[list[Any], dict[str, Any]], tuple[float, int, dict[str, Any]]],
    ) -> None:
        self._get_parameters = get_parameters
        self._fit = fit
        self._evaluate = evaluate

    def get_parameters(self, config: dict[str, Any]) -> list[Any]:
        """Return the current parameters."""
        self._contact()
        return self._guard(self._get_parameters)

    def fit(
        self, parameters: list[Any], config: dict[str, Any]
    ) -> tuple[list[Any], int, dict[str, Any]]:
        """Delegate to the fit callback."""
        self._contact()
        return self._guard(lambda: self._fit(parameters, config))

    def evaluate(
        self, parameters: list[Any], config: dict[str, Any]
    ) -> tuple[float, int, dict[str, Any]]:
        """Delegate to the evaluate callback."""
        self._contact()
        return self._guard(lambda: self._evaluate(parameters, config))


def run_client(
    client: ContactTrackingClient,
    *,
    server_address: str,
    connect_timeout_s: float,
    root_certificates: bytes | None = None,
    resolve_grace_s: float = RESOLVE_GRACE_S,
) -> None:
    """Connect to the Flower server and serve rounds until it says goodbye.

    Until the server has talked to this client, failed connection attempts are retried with
    exponential backoff (0.2 s doubling) for at most ``connect_timeout_s``; a server name that
    does not resolve for ``resolve_grace_s`` fails sooner, with "cannot resolve <name>". Once
    training has started, a broken connection is an error. The delay is capped at one second:
    an attempt costs little, and a learner should not sit idle after its server came up.

    Raises
    ------
    ConnectionError
        If the server could not be reached in time or the connection broke.
    ClientCodeError
        If user code raised inside fit/evaluate/get_parameters.
    ContractError
        If user code returned something the repository contract does not allow.
    """
    started = time.monotonic()
    deadline = started + connect_timeout_s
    unresolved_since: float | None = None
    attempts = 0
    while True:
        attempts += 1
        try:
            serve(server_address, client.handle, root_certificates=root_certificates)
            return
        except Exception as exc:
            if isinstance(client.code_error, ContractError):
                raise client.code_error from None
            if client.code_error is not None:
                err = client.code_error
                raise ClientCodeError(f"{type(err).__name__}: {err}") from err
            remaining = deadline - time.monotonic()
            unresolved = None if client.contacted else resolution_error(server_address)
            if unresolved is None:
                unresolved_since = None
            elif unresolved_since is None:
                unresolved_since = time.monotonic()
            name_gone = (unresolved_since is not None
                         and time.monotonic() - unresolved_since >= resolve_grace_s)
            if client.contacted or remaining <= 0 or name_gone:
                if unresolved is not None:
                    raise ConnectionError(
                        f"{unresolved} (the aggregator's address {server_address}; tried for "
                        f"{time.monotonic() - started:.0f}s): the learner's network has no name "
                        "for it; on containers check name resolution with `flops preflight`"
                    ) from exc
                what = "broke" if client.contacted else (
                    f"could not be established within {connect_timeout_s:.0f}s "
                    f"({attempts} attempts)"
                )
                raise ConnectionError(
                    f"connection to {server_address} {what}: {_grpc_summary(exc)}"
                ) from exc
            delay = backoff_delay(attempts - 1, base_s=FIRST_RETRY_DELAY_S,
                                  cap_s=MAX_RETRY_DELAY_S)
            logger.info("server %s not reachable yet (%s); retrying in %.1fs", server_address,
                        unresolved or "no answer", delay)
            time.sleep(min(delay, remaining))


def _grpc_summary(exc: BaseException) -> str:
    details = getattr(exc, "details", None)
    if callable(details):
        with contextlib.suppress(Exception):  # a broken details() falls back to str(exc)
            return f"{type(exc).__name__}: {details()}"
    return f"{type(exc).__name__}: {exc}"
