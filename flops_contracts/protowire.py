"""The protobuf wire format, by hand, for the few messages FLOps exchanges without protobuf.

A learner speaks two gRPC protocols: Arrow Flight to its data server
(:mod:`flops_dataplane.flight_reader`) and Flower's transport to its aggregator
(:mod:`learner_base.flower_protocol`). Their generated modules pull in pyarrow and the whole
Flower package (with its server, SQLAlchemy and FastAPI), several hundred MB of a learner
image. The messages themselves are small; this module encodes and decodes their fields.

Pure functions: bytes in, values out. See https://protobuf.dev/programming-guides/encoding/.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

__all__ = [
    "ProtoWireError",
    "as_double",
    "as_signed",
    "bytes_field",
    "double_field",
    "fields",
    "float_field",
    "iter_fields",
    "message_field",
    "sint64_field",
    "unzigzag",
    "varint_field",
]

VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5
Value = int | memoryview


class ProtoWireError(ValueError):
    """Bytes that are not a protobuf message (truncated, or an unknown wire type)."""


def _varint(value: int) -> bytes:
    if value < 0:  # int32/int64 negatives are ten bytes of two's complement
        value += 1 << 64
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _key(number: int, wire: int) -> bytes:
    return _varint(number << 3 | wire)


def bytes_field(number: int, value: bytes | str) -> bytes:
    """Encode a ``bytes``, ``string`` or embedded-message field."""
    data = value.encode() if isinstance(value, str) else value
    return _key(number, LENGTH_DELIMITED) + _varint(len(data)) + data


def message_field(number: int, parts: list[bytes]) -> list[bytes]:
    """Encode an embedded message given as ``parts`` (joined once, by the caller).

    Large payloads (model parameters) are then copied once, in the final ``b"".join``.
    """
    return [_key(number, LENGTH_DELIMITED) + _varint(sum(len(p) for p in parts)), *parts]


def varint_field(number: int, value: int) -> bytes:
    """Encode an ``int32``/``int64``/``uint64``/``bool``/enum field."""
    return _key(number, VARINT) + _varint(int(value))


def sint64_field(number: int, value: int) -> bytes:
    """Encode a ``sint64`` field (zigzag)."""
    return _key(number, VARINT) + _varint((value << 1) ^ (value >> 63))


def double_field(number: int, value: float) -> bytes:
    """Encode a ``double`` field."""
    return _key(number, FIXED64) + struct.pack("<d", value)


def float_field(number: int, value: float) -> bytes:
    """Encode a ``float`` field."""
    return _key(number, FIXED32) + struct.pack("<f", value)


def unzigzag(value: int) -> int:
    """Decode a ``sint64`` read as a plain varint."""
    return (value >> 1) ^ -(value & 1)


def _read_varint(buf: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise ProtoWireError("a truncated protobuf message")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def iter_fields(data: bytes | memoryview) -> Iterator[tuple[int, int, Value]]:
    """Yield ``(field number, wire type, value)`` of each field, in order.

    Varints come as unsigned ints, fixed-width values as their raw unsigned int, and
    length-delimited ones as memoryviews of ``data`` (no copies).

    Raises
    ------
    ProtoWireError
        If ``data`` is truncated or uses a wire type protobuf 3 does not have.
    """
    buf = memoryview(data)
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: Value
        if wire == VARINT:
            value, pos = _read_varint(buf, pos)
        elif wire in (FIXED64, FIXED32):
            size = 8 if wire == FIXED64 else 4
            if pos + size > len(buf):
                raise ProtoWireError("a truncated protobuf message")
            value = int.from_bytes(buf[pos:pos + size], "little")
            pos += size
        elif wire == LENGTH_DELIMITED:
            size, pos = _read_varint(buf, pos)
            if pos + size > len(buf):
                raise ProtoWireError("a truncated protobuf message")
            value = buf[pos:pos + size]
            pos += size
        else:
            raise ProtoWireError(f"an unexpected protobuf wire type {wire}")
        yield number, wire, value


def fields(data: bytes | memoryview) -> dict[int, Value]:
    """Return field number -> value (the last one of a repeated field); see :func:`iter_fields`."""
    return {number: value for number, _, value in iter_fields(data)}


def as_double(raw: int) -> float:
    """The ``double`` whose bits :func:`iter_fields` returned as an int."""
    value: float = struct.unpack("<d", raw.to_bytes(8, "little"))[0]
    return value


def as_signed(raw: int) -> int:
    """An ``int64`` varint as a signed int."""
    return raw - (1 << 64) if raw >= 1 << 63 else raw
