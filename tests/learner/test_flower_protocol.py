"""The learner's own Flower protocol: byte-compatible with Flower's messages, and a real
Flower gRPC server trains, evaluates and says goodbye to learners that do not import Flower."""

from __future__ import annotations

import socket
import threading
from typing import Any

import numpy as np
import pytest
from flwr.proto import transport_pb2 as pb

from flops_contracts.ndarray_codec import ndarrays_to_tensors, tensors_to_ndarrays
from flops_contracts.protowire import ProtoWireError
from learner_base.flower_client import ContactTrackingClient, run_client
from learner_base.flower_protocol import (
    DisconnectRes,
    EvaluateIns,
    EvaluateRes,
    FitIns,
    FitRes,
    GetParametersIns,
    GetParametersRes,
    GetPropertiesIns,
    NotImplementedRes,
    ProtocolError,
    ReconnectIns,
    decode_server_message,
    encode_client_message,
)

CONFIG: dict[str, Any] = {"lr": 0.125, "epochs": -3, "big": 2**62, "name": "ünï",
                          "flag": True, "off": False, "blob": b"\x00\xff"}


def _scalar(value: Any) -> pb.Scalar:
    if isinstance(value, bool):
        return pb.Scalar(bool=value)
    if isinstance(value, bytes):
        return pb.Scalar(bytes=value)
    if isinstance(value, float):
        return pb.Scalar(double=value)
    if isinstance(value, int):
        return pb.Scalar(sint64=value)
    return pb.Scalar(string=value)


def _config() -> dict[str, pb.Scalar]:
    return {k: _scalar(v) for k, v in CONFIG.items()}


def _from_scalar(scalar: pb.Scalar) -> Any:
    return getattr(scalar, str(scalar.WhichOneof("scalar")))


def test_server_messages_written_by_flower_decode() -> None:
    tensors = ndarrays_to_tensors([np.arange(6.0).reshape(2, 3), np.array([1], dtype=np.int8)])
    params = pb.Parameters(tensors=tensors, tensor_type="numpy.ndarray")
    fit = decode_server_message(pb.ServerMessage(
        fit_ins=pb.ServerMessage.FitIns(parameters=params, config=_config())
    ).SerializeToString())
    assert isinstance(fit, FitIns) and fit.config == CONFIG
    assert [a.tolist() for a in tensors_to_ndarrays(fit.tensors)] == [
        [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]], [1]]
    evaluate = decode_server_message(pb.ServerMessage(
        evaluate_ins=pb.ServerMessage.EvaluateIns(parameters=params)).SerializeToString())
    assert isinstance(evaluate, EvaluateIns) and evaluate.tensors == fit.tensors
    assert evaluate.config == {}
    assert decode_server_message(pb.ServerMessage(
        get_parameters_ins=pb.ServerMessage.GetParametersIns(config=_config())
    ).SerializeToString()) == GetParametersIns(CONFIG)
    assert isinstance(decode_server_message(pb.ServerMessage(
        get_properties_ins=pb.ServerMessage.GetPropertiesIns()).SerializeToString()),
        GetPropertiesIns)
    assert decode_server_message(pb.ServerMessage(
        reconnect_ins=pb.ServerMessage.ReconnectIns(seconds=5)).SerializeToString()
    ) == ReconnectIns(5)
    assert decode_server_message(pb.ServerMessage(
        reconnect_ins=pb.ServerMessage.ReconnectIns()).SerializeToString()) == ReconnectIns(0)


def test_client_messages_parse_as_flower_messages() -> None:
    tensors = ndarrays_to_tensors([np.ones((3, 2), dtype=np.float32)])
    fit = pb.ClientMessage.FromString(encode_client_message(FitRes(tensors, 42, CONFIG)))
    assert fit.WhichOneof("msg") == "fit_res" and fit.fit_res.status.code == 0
    assert list(fit.fit_res.parameters.tensors) == tensors
    assert fit.fit_res.parameters.tensor_type == "numpy.ndarray"
    assert fit.fit_res.num_examples == 42
    assert {k: _from_scalar(v) for k, v in fit.fit_res.metrics.items()} == CONFIG
    evaluate = pb.ClientMessage.FromString(encode_client_message(
        EvaluateRes(0.5, 7, {"accuracy": 0.75})))
    assert evaluate.evaluate_res.loss == 0.5 and evaluate.evaluate_res.num_examples == 7
    assert evaluate.evaluate_res.metrics["accuracy"].double == 0.75
    huge = pb.ClientMessage.FromString(encode_client_message(EvaluateRes(1e300, 1, {})))
    assert huge.evaluate_res.loss == float("inf")  # what protobuf makes of it, too
    params = pb.ClientMessage.FromString(encode_client_message(GetParametersRes(tensors)))
    assert list(params.get_parameters_res.parameters.tensors) == tensors
    props = pb.ClientMessage.FromString(encode_client_message(NotImplementedRes()))
    assert props.get_properties_res.status.code == pb.Code.GET_PROPERTIES_NOT_IMPLEMENTED
    bye = pb.ClientMessage.FromString(encode_client_message(DisconnectRes()))
    assert bye.WhichOneof("msg") == "disconnect_res"
    assert bye.disconnect_res.reason == pb.Reason.RECONNECT


def test_bad_messages_and_metrics_are_clear_errors() -> None:
    with pytest.raises(ProtocolError, match="without an instruction"):
        decode_server_message(b"")
    with pytest.raises(ProtoWireError, match="truncated"):
        decode_server_message(pb.ServerMessage(
            reconnect_ins=pb.ServerMessage.ReconnectIns(seconds=5)).SerializeToString()[:-1])
    with pytest.raises(TypeError, match="must be bool, int, float, str or bytes, not list"):
        encode_client_message(FitRes([], 1, {"bad": [1, 2]}))  # type: ignore[dict-item]


class Counting(ContactTrackingClient):
    """Adds one to every parameter; remembers the configs it was sent."""

    def __init__(self, examples: int) -> None:
        self.examples = examples
        self.configs: list[dict[str, Any]] = []

    def get_parameters(self, config: dict[str, Any]) -> list[Any]:
        self._contact()
        return [np.zeros(3)]

    def fit(self, parameters: list[Any], config: dict[str, Any]) -> tuple[
            list[Any], int, dict[str, Any]]:
        self._contact()
        self.configs.append(config)
        return [parameters[0] + 1], self.examples, {"seen": float(parameters[0][0])}

    def evaluate(self, parameters: list[Any], config: dict[str, Any]) -> tuple[
            float, int, dict[str, Any]]:
        self._contact()
        return float(parameters[0].sum()), self.examples, {"accuracy": 1.0}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.integration
def test_a_flower_server_trains_learners_that_do_not_import_flower() -> None:
    """Flower's own gRPC server and FedAvg, two of our clients: two rounds, then goodbye."""
    from flwr.server import Server
    from flwr.server.client_manager import SimpleClientManager
    from flwr.server.strategy import FedAvg
    from flwr.server.superlink.fleet.grpc_bidi.grpc_server import start_grpc_server

    address = f"127.0.0.1:{_free_port()}"
    manager = SimpleClientManager()
    grpc_server = start_grpc_server(client_manager=manager, server_address=address)
    clients = [Counting(10), Counting(30)]
    errors: list[Exception] = []

    def learn(client: Counting) -> None:
        try:
            run_client(client, server_address=address, connect_timeout_s=30)
        except Exception as exc:  # noqa: BLE001 (asserted empty below)
            errors.append(exc)

    threads = [threading.Thread(target=learn, args=(c,), daemon=True) for c in clients]
    try:
        for thread in threads:
            thread.start()
        strategy = FedAvg(min_available_clients=2, min_fit_clients=2, min_evaluate_clients=2,
                          on_fit_config_fn=lambda rnd: {**CONFIG, "round": rnd})
        server = Server(client_manager=manager, strategy=strategy)
        history, _ = server.fit(num_rounds=2, timeout=60)
        assert [loss for _, loss in history.losses_distributed] == [3.0, 6.0]
        final = server.parameters.tensors
        assert tensors_to_ndarrays(final)[0].tolist() == [2.0, 2.0, 2.0]
        assert history.metrics_distributed == {}  # no aggregation function: nothing, no error
        server.disconnect_all_clients(timeout=30)
        for thread in threads:
            thread.join(timeout=30)
            assert not thread.is_alive()
    finally:
        grpc_server.stop(grace=1)
    assert errors == []
    for client in clients:
        assert client.configs == [{**CONFIG, "round": 1}, {**CONFIG, "round": 2}]
