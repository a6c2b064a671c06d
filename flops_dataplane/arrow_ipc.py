"""Decode Arrow IPC messages into numpy columns, without pyarrow.

A learner reads its data from its node's data server (Arrow Flight). pyarrow is 150 MB of a
learner image, and a learner only needs columns as numpy arrays, so this module reads the
two IPC messages a Flight ``DoGet`` carries, ``Schema`` and ``RecordBatch`` (and
``DictionaryBatch`` for dictionary-encoded columns), straight from their flatbuffers
(``format/Message.fbs`` and ``format/Schema.fbs`` of the Arrow specification).

Decoded types and their numpy form (as ``pyarrow.Array.to_numpy(zero_copy_only=False)``
gives them): booleans, signed and unsigned integers, floats (16/32/64 bit), dates, timestamps
and durations (``datetime64``/``timedelta64``), strings and binaries (object arrays), fixed-size
lists (a 2-D array per column), lists (an object array of arrays), the null type, and
dictionary-encoded columns of any of those. Nulls become ``NaN`` in float columns, turn integer
columns into ``float64`` with ``NaN``, and ``None`` elsewhere. Any other type (structs, maps,
unions, decimals, views) or a compressed body raises :class:`UnsupportedArrowError` naming the
column and what to do.

Everything here is pure: bytes in, arrays out.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from flops_dataplane.errors import DataPlaneError

__all__ = [
    "ArrowField",
    "ArrowType",
    "Columns",
    "Message",
    "UnsupportedArrowError",
    "decode_batches",
    "describe_schema",
    "parse_message",
    "read_schema",
    "read_stream",
]

Columns = dict[str, NDArray[Any]]

# Message.fbs: MessageHeader union
_SCHEMA, _DICTIONARY_BATCH, _RECORD_BATCH = 1, 2, 3
# Schema.fbs: Type union
_TYPE_NAMES = {
    1: "null", 2: "int", 3: "float", 4: "binary", 5: "utf8", 6: "bool", 7: "decimal",
    8: "date", 9: "time", 10: "timestamp", 11: "interval", 12: "list", 13: "struct",
    14: "union", 15: "fixed_size_binary", 16: "fixed_size_list", 17: "map", 18: "duration",
    19: "large_binary", 20: "large_utf8", 21: "large_list", 22: "run_end_encoded",
    23: "binary_view", 24: "utf8_view", 25: "list_view", 26: "large_list_view",
}
_TIME_UNITS = ("s", "ms", "us", "ns")
_CONTINUATION = 0xFFFFFFFF


class UnsupportedArrowError(DataPlaneError):
    """The data uses an Arrow feature this decoder does not read (a struct column, compression)."""


class _Table:
    """One flatbuffer table: ``buf`` and the table's absolute position."""

    __slots__ = ("buf", "pos", "vsize", "vtable")

    def __init__(self, buf: memoryview, pos: int) -> None:
        self.buf, self.pos = buf, pos
        self.vtable = pos - struct.unpack_from("<i", buf, pos)[0]
        self.vsize = struct.unpack_from("<H", buf, self.vtable)[0]

    def _offset(self, field: int) -> int:
        slot = 4 + 2 * field
        if slot >= self.vsize:
            return 0
        offset: int = struct.unpack_from("<H", self.buf, self.vtable + slot)[0]
        return offset

    def scalar(self, field: int, fmt: str, default: Any = 0) -> Any:
        offset = self._offset(field)
        return struct.unpack_from("<" + fmt, self.buf, self.pos + offset)[0] if offset else default

    def _target(self, field: int) -> int | None:
        offset = self._offset(field)
        if not offset:
            return None
        at = self.pos + offset
        target: int = at + struct.unpack_from("<I", self.buf, at)[0]
        return target

    def table(self, field: int) -> _Table | None:
        at = self._target(field)
        return None if at is None else _Table(self.buf, at)

    def string(self, field: int) -> str | None:
        at = self._target(field)
        if at is None:
            return None
        length = struct.unpack_from("<I", self.buf, at)[0]
        return bytes(self.buf[at + 4:at + 4 + length]).decode()

    def tables(self, field: int) -> list[_Table]:
        at = self._target(field)
        if at is None:
            return []
        count = struct.unpack_from("<I", self.buf, at)[0]
        out = []
        for i in range(count):
            element = at + 4 + 4 * i
            out.append(_Table(self.buf, element + struct.unpack_from("<I", self.buf, element)[0]))
        return out

    def structs(self, field: int, fmt: str) -> list[tuple[Any, ...]]:
        at = self._target(field)
        if at is None:
            return []
        count = struct.unpack_from("<I", self.buf, at)[0]
        size = struct.calcsize("<" + fmt)
        return [struct.unpack_from("<" + fmt, self.buf, at + 4 + size * i) for i in range(count)]


@dataclasses.dataclass(frozen=True)
class ArrowType:
    """An Arrow logical type: its name (``"int"``, ``"utf8"``...) and parameters."""

    name: str
    params: tuple[Any, ...] = ()

    def __str__(self) -> str:
        """Spell the type as pyarrow does where it can: ``int64``, ``float``, ``string``..."""
        if self.name == "int":
            return f"{'' if self.params[1] else 'u'}int{self.params[0]}"
        if self.name == "float":
            return {16: "halffloat", 32: "float", 64: "double"}[int(self.params[0])]
        if self.name == "date":
            return "date32[day]" if self.params[0] == "D" else "date64[ms]"
        named = {"utf8": "string", "large_utf8": "large_string"}.get(self.name, self.name)
        return f"{named}[{', '.join(map(str, self.params))}]" if self.params else named


@dataclasses.dataclass(frozen=True)
class ArrowField:
    """One column (or a list's child): name, type, nullability, children, dictionary.

    ``dictionary`` is ``(id, index type)`` for a dictionary-encoded column, whose values have
    ``type``.
    """

    name: str
    type: ArrowType
    nullable: bool = True
    children: tuple[ArrowField, ...] = ()
    dictionary: tuple[int, ArrowType] | None = None

    def __str__(self) -> str:
        inner = f"<{', '.join(map(str, self.children))}>" if self.children else ""
        encoded = " (dictionary)" if self.dictionary else ""
        return f"{self.name}: {self.type}{inner}{encoded}"


@dataclasses.dataclass(frozen=True)
class Message:
    """One IPC message: what it is (``"schema"``, ``"record_batch"``...) and its parts."""

    kind: str
    header: _Table
    body: memoryview

    @property
    def schema(self) -> tuple[ArrowField, ...]:
        """The fields of a ``schema`` message."""
        return tuple(_field(f) for f in self.header.tables(1))


def _int_type(table: _Table | None) -> ArrowType:
    if table is None:  # the format's default dictionary index type
        return ArrowType("int", (32, True))
    return ArrowType("int", (table.scalar(0, "i"), bool(table.scalar(1, "?", False))))


def _type(type_id: int, table: _Table | None) -> ArrowType:
    name = _TYPE_NAMES.get(type_id, f"type #{type_id}")
    if table is None:
        return ArrowType(name)
    if name == "int":
        return _int_type(table)
    if name == "float":
        return ArrowType(name, (16 << table.scalar(0, "h"),))
    if name == "date":
        return ArrowType(name, ("D" if table.scalar(0, "h", 1) == 0 else "ms",))
    if name in ("timestamp", "duration", "time"):
        unit = table.scalar(0, "h", 0 if name == "timestamp" else 1)
        zone = table.string(1) if name == "timestamp" else None
        return ArrowType(name, (_TIME_UNITS[unit], zone) if zone else (_TIME_UNITS[unit],))
    if name in ("fixed_size_list", "fixed_size_binary"):
        return ArrowType(name, (table.scalar(0, "i"),))
    if name == "decimal":
        return ArrowType(name, (table.scalar(0, "i"), table.scalar(1, "i")))
    return ArrowType(name)


def _field(table: _Table) -> ArrowField:
    dictionary = table.table(4)
    return ArrowField(
        name=table.string(0) or "",
        type=_type(table.scalar(2, "B"), table.table(3)),
        nullable=bool(table.scalar(1, "?", False)),
        children=tuple(_field(c) for c in table.tables(5)),
        dictionary=None if dictionary is None
        else (dictionary.scalar(0, "q"), _int_type(dictionary.table(1))),
    )


def parse_message(header: bytes | memoryview, body: bytes | memoryview = b"") -> Message:
    """Return the message whose flatbuffer is ``header`` (a Flight ``data_header``).

    Raises
    ------
    UnsupportedArrowError
        If ``header`` is not an Arrow IPC message.
    """
    buf = memoryview(header)
    try:
        root = _Table(buf, struct.unpack_from("<I", buf, 0)[0])
        kind = {_SCHEMA: "schema", _DICTIONARY_BATCH: "dictionary_batch",
                _RECORD_BATCH: "record_batch"}.get(root.scalar(1, "B"), "other")
        content = root.table(2)
    except (struct.error, IndexError) as exc:
        raise UnsupportedArrowError(f"not an Arrow IPC message: {exc}") from None
    if content is None:
        raise UnsupportedArrowError("an Arrow IPC message without a header")
    return Message(kind, content, memoryview(body))


def read_stream(data: bytes | memoryview) -> Iterator[Message]:
    """Yield the messages of an encapsulated IPC stream.

    That is ``pa.ipc.new_stream``'s bytes or ``pa.Schema.serialize()``: each message a
    length-prefixed flatbuffer, then its body.

    Raises
    ------
    UnsupportedArrowError
        If a message is truncated or not an Arrow IPC message.
    """
    buf = memoryview(data)
    pos = 0
    while pos + 4 <= len(buf):
        if struct.unpack_from("<I", buf, pos)[0] == _CONTINUATION:
            pos += 4
        length = struct.unpack_from("<i", buf, pos)[0] if pos + 4 <= len(buf) else 0
        if length <= 0:  # the end-of-stream marker
            return
        start = pos + 4
        if start + length > len(buf):
            raise UnsupportedArrowError("a truncated Arrow IPC message")
        header = buf[start:start + length]
        root = _Table(header, struct.unpack_from("<I", header, 0)[0])
        body_length = root.scalar(3, "q")
        body_start = start + length
        yield parse_message(header, buf[body_start:body_start + body_length])
        pos = body_start + body_length


def read_schema(encapsulated: bytes) -> tuple[ArrowField, ...]:
    """Return the fields of an encapsulated IPC schema message (``pa.Schema.serialize()``).

    Raises
    ------
    UnsupportedArrowError
        If the bytes hold no schema message.
    """
    message = next(read_stream(encapsulated), None)
    if message is None or message.kind != "schema":
        raise UnsupportedArrowError(
            f"expected an Arrow schema message, got {message.kind if message else 'nothing'}")
    return message.schema


def describe_schema(fields: Sequence[ArrowField]) -> str:
    """Return ``"x: double, label: int64"``: the fields for an error message."""
    return ", ".join(str(f) for f in fields)


class _BatchReader:
    """Walks one record batch's field nodes and buffers in the order the format lays them out."""

    def __init__(self, batch: _Table, body: memoryview) -> None:
        if batch.table(3) is not None:
            raise UnsupportedArrowError(
                "the data server sent a compressed record batch, which this reader does not "
                "decompress; serve the data uncompressed")
        self.length: int = batch.scalar(0, "q")
        self.nodes = iter(batch.structs(1, "qq"))
        self.buffers = iter(batch.structs(2, "qq"))
        self.body = body

    def node(self) -> tuple[int, int]:
        length, nulls = next(self.nodes)
        return int(length), int(nulls)

    def buffer(self) -> memoryview:
        offset, length = next(self.buffers)
        return self.body[offset:offset + length]


def _validity(buffer: memoryview, length: int, nulls: int) -> NDArray[np.bool_] | None:
    """Return a mask of the *null* slots, or ``None`` when nothing is null."""
    if nulls == 0 or len(buffer) == 0:
        return None
    bits = np.unpackbits(np.frombuffer(buffer, dtype=np.uint8), bitorder="little")[:length]
    mask: NDArray[np.bool_] = bits == 0
    return mask


def _with_nulls(values: NDArray[Any], nulls: NDArray[np.bool_] | None) -> NDArray[Any]:
    if nulls is None or not nulls.any():
        return values
    if values.dtype.kind == "f":
        out = values.astype(values.dtype, copy=True)
        out[nulls] = np.nan
        return out
    if values.dtype.kind in "iu":
        floats = values.astype(np.float64)
        floats[nulls] = np.nan
        return floats
    if values.dtype.kind in "mM":
        out = values.copy()
        out[nulls] = np.datetime64("NaT") if values.dtype.kind == "M" else np.timedelta64("NaT")
        return out
    objects = values.astype(object)
    objects[nulls] = None
    return objects


_INT_DTYPES = {(8, True): "i1", (16, True): "<i2", (32, True): "<i4", (64, True): "<i8",
               (8, False): "u1", (16, False): "<u2", (32, False): "<u4", (64, False): "<u8"}


def _fixed_dtype(kind: ArrowType) -> np.dtype[Any] | None:
    if kind.name == "int":
        return np.dtype(_INT_DTYPES[(int(kind.params[0]), bool(kind.params[1]))])
    if kind.name == "float":
        return np.dtype({16: "<f2", 32: "<f4", 64: "<f8"}[int(kind.params[0])])
    if kind.name == "date":
        return np.dtype("<i4") if kind.params[0] == "D" else np.dtype("<i8")
    if kind.name in ("timestamp", "duration"):
        return np.dtype("<i8")
    return None


def _as_time(values: NDArray[Any], kind: ArrowType) -> NDArray[Any]:
    if kind.name == "date":
        return values.astype(f"datetime64[{kind.params[0]}]")
    if kind.name == "timestamp":
        return values.view(f"datetime64[{kind.params[0]}]")
    if kind.name == "duration":
        return values.view(f"timedelta64[{kind.params[0]}]")
    return values


def _offsets(reader: _BatchReader, kind: ArrowType, length: int) -> NDArray[Any]:
    """The offsets buffer of a variable-size column (64-bit for the ``large_`` types)."""
    wide = kind.name.startswith("large")
    return np.frombuffer(reader.buffer(), dtype="<i8" if wide else "<i4", count=length + 1)


def _column(field: ArrowField, reader: _BatchReader, path: str,
            dictionaries: Mapping[int, NDArray[Any]]) -> NDArray[Any]:
    """Decode one field's arrays (consuming its nodes and buffers) into a numpy array."""
    length, null_count = reader.node()
    kind = field.type if field.dictionary is None else field.dictionary[1]
    if kind.name == "null":
        return np.full(length, None, dtype=object)
    nulls = _validity(reader.buffer(), length, null_count)
    if field.dictionary is not None:
        index = np.frombuffer(reader.buffer(), dtype=_fixed_dtype(kind), count=length)
        values = dictionaries.get(field.dictionary[0])
        if values is None:
            raise UnsupportedArrowError(f"column {path!r}: its dictionary batch never arrived")
        safe = np.where(nulls, 0, index) if nulls is not None else index
        return _with_nulls(values[safe] if len(values) else values.take([]), nulls)
    dtype = _fixed_dtype(kind)
    if dtype is not None:
        values = np.frombuffer(reader.buffer(), dtype=dtype, count=length)
        return _with_nulls(_as_time(values, kind), nulls)
    if kind.name == "bool":
        bits = np.unpackbits(np.frombuffer(reader.buffer(), dtype=np.uint8), bitorder="little")
        return _with_nulls(bits[:length].astype(bool), nulls)
    if kind.name in ("utf8", "binary", "large_utf8", "large_binary"):
        offsets = _offsets(reader, kind, length)
        data = bytes(reader.buffer())
        text = kind.name.endswith("utf8")
        items = [data[offsets[i]:offsets[i + 1]] for i in range(length)]
        out = np.empty(length, dtype=object)
        out[:] = [item.decode() for item in items] if text else items
        return _with_nulls(out, nulls)
    if kind.name == "fixed_size_list":
        size = int(kind.params[0])
        child = _column(field.children[0], reader, f"{path}.item", dictionaries)
        return _with_nulls(child.reshape(length, size), nulls)
    if kind.name in ("list", "large_list"):
        offsets = _offsets(reader, kind, length)
        child = _column(field.children[0], reader, f"{path}.item", dictionaries)
        out = np.empty(length, dtype=object)
        out[:] = [child[offsets[i]:offsets[i + 1]] for i in range(length)]
        return _with_nulls(out, nulls)
    raise UnsupportedArrowError(
        f"column {path!r} has Arrow type {kind}, which FLOps' built-in reader does not decode "
        "(it reads numbers, booleans, dates, timestamps, strings, binaries, lists and "
        "dictionary-encoded columns); push the data with those types, or read it with pyarrow: "
        "add pyarrow to the repository's requirements.txt and call data.to_arrow()")


def decode_batches(messages: Iterable[Message],
                   schema: Sequence[ArrowField] | None = None) -> tuple[tuple[ArrowField, ...],
                                                                        list[Columns]]:
    """Return the schema and each record batch's columns from one IPC stream's messages.

    ``schema`` is used when the stream carries none (it always does over Flight).

    Raises
    ------
    UnsupportedArrowError
        For a type or feature this reader does not decode (the message names the column), or
        a message that contradicts its own layout.
    """
    fields: tuple[ArrowField, ...] = tuple(schema or ())
    dictionaries: dict[int, NDArray[Any]] = {}
    batches: list[Columns] = []
    for message in messages:
        try:
            if message.kind == "schema":
                fields = message.schema
            elif message.kind == "dictionary_batch":
                _add_dictionary(message, fields, dictionaries)
            elif message.kind == "record_batch":
                reader = _BatchReader(message.header, message.body)
                batches.append({f.name: _column(f, reader, f.name, dictionaries)
                                for f in fields})
        except (ValueError, KeyError, IndexError, StopIteration, struct.error) as exc:
            raise UnsupportedArrowError(
                f"a malformed Arrow {message.kind} message ({type(exc).__name__}: {exc})"
            ) from None
    return fields, batches


def _add_dictionary(message: Message, fields: Sequence[ArrowField],
                    dictionaries: dict[int, NDArray[Any]]) -> None:
    data = message.header.table(1)
    if data is None:
        return
    dict_id = message.header.scalar(0, "q")
    if message.header.scalar(2, "?", False):
        raise UnsupportedArrowError("delta dictionary batches are not decoded")
    owner = _dictionary_field(fields, dict_id)
    dictionaries[dict_id] = _column(dataclasses.replace(owner, dictionary=None),
                                    _BatchReader(data, message.body), owner.name, dictionaries)


def _dictionary_field(fields: Sequence[ArrowField], dict_id: int) -> ArrowField:
    for field in fields:
        if field.dictionary is not None and field.dictionary[0] == dict_id:
            return field
    raise UnsupportedArrowError(f"a dictionary batch (id {dict_id}) for no column of the schema")


def concat(fields: Sequence[ArrowField], batches: Sequence[Columns]) -> Columns:
    """Return one array per field, the batches' rows in order (empty arrays without batches)."""
    if not batches:
        return {f.name: np.empty(0, dtype=_fixed_dtype(f.type) or object) for f in fields}
    return {f.name: np.concatenate([b[f.name] for b in batches]) for f in fields}
