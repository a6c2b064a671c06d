"""Flower's legacy transport messages (``flwr.proto.transport``), without Flower.

The aggregator runs Flower's gRPC server (``FlowerService.Join``, a bidirectional stream:
the server sends a ``ServerMessage``, the client answers each with a ``ClientMessage``). A
learner only has to speak that one protocol, so it does not import Flower, whose package
loads its server side, SQLAlchemy, FastAPI and a CLI (about 100 MB of a learner image and
0.5 s of every start). This module is the contract half: the messages as dataclasses and
their wire encoding (field numbers as in Flower's ``transport.proto``); the transport is
:mod:`learner_base.flower_connection`. Pure functions, no I/O.

Config and metric values are Flower's ``Scalar``: ``bool``, ``int`` (``sint64``), ``float``
(``double``), ``str`` and ``bytes``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Union

from flops_contracts.protowire import (
    FIXED64,
    as_double,
    as_signed,
    bytes_field,
    double_field,
    float_field,
    iter_fields,
    message_field,
    sint64_field,
    unzigzag,
    varint_field,
)

__all__ = [
    "SERVICE_METHOD",
    "EvaluateIns",
    "EvaluateRes",
    "FitIns",
    "FitRes",
    "GetParametersIns",
    "GetParametersRes",
    "GetPropertiesIns",
    "NotImplementedRes",
    "ReconnectIns",
    "Scalar",
    "decode_server_message",
    "encode_client_message",
]

SERVICE_METHOD = "/flwr.proto.FlowerService/Join"
TENSOR_TYPE = "numpy.ndarray"

Scalar = Union[bool, int, float, str, bytes]  # noqa: UP007 (a runtime alias)
Config = dict[str, Scalar]

# Status codes and disconnect reasons of transport.proto
OK = 0
GET_PROPERTIES_NOT_IMPLEMENTED = 1
REASON_RECONNECT = 1
FLOAT32_MAX = 3.4028234663852886e38


@dataclasses.dataclass(frozen=True)
class ReconnectIns:
    """The server ends the session (``seconds``: when to come back; 0 = do not)."""

    seconds: int = 0


@dataclasses.dataclass(frozen=True)
class GetPropertiesIns:
    """The server asks for the client's properties (FLOps' clients have none)."""

    config: Config


@dataclasses.dataclass(frozen=True)
class GetParametersIns:
    """The server asks for the client's current parameters."""

    config: Config


@dataclasses.dataclass(frozen=True)
class FitIns:
    """Train one round from ``tensors`` (serialized arrays, see ``ndarray_codec``)."""

    tensors: list[bytes]
    config: Config


@dataclasses.dataclass(frozen=True)
class EvaluateIns:
    """Evaluate ``tensors`` on local data."""

    tensors: list[bytes]
    config: Config


ServerMessage = ReconnectIns | GetPropertiesIns | GetParametersIns | FitIns | EvaluateIns


@dataclasses.dataclass(frozen=True)
class GetParametersRes:
    """The client's parameters."""

    tensors: list[bytes]


@dataclasses.dataclass(frozen=True)
class FitRes:
    """A trained round: parameters, examples used, metrics."""

    tensors: list[bytes]
    num_examples: int
    metrics: Mapping[str, Scalar]


@dataclasses.dataclass(frozen=True)
class EvaluateRes:
    """An evaluation: loss, examples used, metrics."""

    loss: float
    num_examples: int
    metrics: Mapping[str, Scalar]


@dataclasses.dataclass(frozen=True)
class NotImplementedRes:
    """The answer to ``GetPropertiesIns``: not implemented (as Flower's own clients say)."""

    message: str = "Client does not implement `get_properties`"


@dataclasses.dataclass(frozen=True)
class DisconnectRes:
    """The answer to ``ReconnectIns`` (reason ``RECONNECT``, as Flower's clients send)."""


ClientMessage = GetParametersRes | FitRes | EvaluateRes | NotImplementedRes | DisconnectRes


class ProtocolError(ValueError):
    """A server message this client cannot read."""


def _scalar(data: memoryview) -> Scalar:
    for number, wire, value in iter_fields(data):
        if number == 1 and wire == FIXED64 and isinstance(value, int):
            return as_double(value)
        if number == 6 and isinstance(value, int):
            return value
        if number == 8 and isinstance(value, int):
            return unzigzag(value)
        if number == 13 and isinstance(value, int):
            return bool(value)
        if number == 14 and isinstance(value, memoryview):
            return bytes(value).decode()
        if number == 15 and isinstance(value, memoryview):
            return bytes(value)
    raise ProtocolError("a Scalar without a value")


def _entry(data: memoryview) -> tuple[str, Scalar]:
    key, scalar = "", None
    for number, _, value in iter_fields(data):
        if number == 1 and isinstance(value, memoryview):
            key = bytes(value).decode()
        elif number == 2 and isinstance(value, memoryview):
            scalar = _scalar(value)
    if scalar is None:
        raise ProtocolError(f"config entry {key!r} without a value")
    return key, scalar


def _parameters(data: memoryview) -> list[bytes]:
    return [bytes(v) for n, _, v in iter_fields(data) if n == 1 and isinstance(v, memoryview)]


def _config(data: memoryview, number: int) -> Config:
    """The ``map<string, Scalar>`` at field ``number`` of a message."""
    return dict(_entry(v) for n, _, v in iter_fields(data)
                if n == number and isinstance(v, memoryview))


def _tensors(data: memoryview) -> list[bytes]:
    """The tensors of ``FitIns``/``EvaluateIns`` (``Parameters`` at field 1)."""
    return next((_parameters(v) for n, _, v in iter_fields(data)
                 if n == 1 and isinstance(v, memoryview)), [])


def decode_server_message(data: bytes | memoryview) -> ServerMessage:
    """Return the instruction in a serialized ``ServerMessage``.

    Raises
    ------
    ProtocolError
        If it holds no instruction this client knows.
    flops_contracts.protowire.ProtoWireError
        If the bytes are not a protobuf message.
    """
    for number, _, value in iter_fields(data):
        if not isinstance(value, memoryview):
            continue
        if number == 1:
            seconds = next((as_signed(v) for n, _, v in iter_fields(value)
                            if n == 1 and isinstance(v, int)), 0)
            return ReconnectIns(seconds)
        if number == 2:
            return GetPropertiesIns(_config(value, 1))
        if number == 3:
            return GetParametersIns(_config(value, 1))
        if number == 4:
            return FitIns(_tensors(value), _config(value, 2))
        if number == 5:
            return EvaluateIns(_tensors(value), _config(value, 2))
    raise ProtocolError("a ServerMessage without an instruction this client knows")


def _encode_scalar(value: Scalar) -> bytes:
    if isinstance(value, bool):
        return varint_field(13, value)
    if isinstance(value, bytes):
        return bytes_field(15, value)
    if isinstance(value, float):
        return double_field(1, value)
    if isinstance(value, int):
        return sint64_field(8, value)
    if isinstance(value, str):
        return bytes_field(14, value)
    raise TypeError(f"a metric must be bool, int, float, str or bytes, not "
                    f"{type(value).__name__}")


def _map(number: int, values: Mapping[str, Scalar]) -> bytes:
    return b"".join(bytes_field(number, bytes_field(1, key) + bytes_field(2, _encode_scalar(v)))
                    for key, v in values.items())


def _status(code: int = OK, message: str = "Success") -> bytes:
    return bytes_field(1, varint_field(1, code) + bytes_field(2, message))


def _float32(value: float) -> float:
    """``value`` as protobuf stores a ``float``: out of range becomes infinite."""
    value = float(value)
    return math.copysign(math.inf, value) if abs(value) > FLOAT32_MAX else value


def _parameters_field(tensors: list[bytes]) -> list[bytes]:
    parts = [p for t in tensors for p in message_field(1, [t])]
    return message_field(2, [*parts, bytes_field(2, TENSOR_TYPE)])


def encode_client_message(message: ClientMessage) -> bytes:
    """Return the serialized ``ClientMessage`` wrapping ``message``.

    The parameters are copied once, into the result.

    Raises
    ------
    TypeError
        If a metric is not a Flower scalar.
    """
    parts: list[bytes]
    if isinstance(message, GetParametersRes):
        parts = message_field(3, [_status(), *_parameters_field(message.tensors)])
    elif isinstance(message, FitRes):
        parts = message_field(4, [_status(), *_parameters_field(message.tensors),
                                  varint_field(3, message.num_examples),
                                  _map(4, message.metrics)])
    elif isinstance(message, EvaluateRes):
        parts = message_field(5, [_status(), float_field(2, _float32(message.loss)),
                                  varint_field(3, message.num_examples),
                                  _map(4, message.metrics)])
    elif isinstance(message, NotImplementedRes):
        parts = [bytes_field(2, _status(GET_PROPERTIES_NOT_IMPLEMENTED, message.message))]
    else:
        parts = [bytes_field(1, varint_field(1, REASON_RECONNECT))]
    return b"".join(parts)
