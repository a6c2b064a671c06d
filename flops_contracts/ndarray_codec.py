"""Flower's parameter tensors (``.npy`` bytes) with one copy per array instead of several.

Flower serializes every array with ``np.save`` into a ``BytesIO`` and back with ``np.load``
(``flwr.common.ndarray_to_bytes`` / ``bytes_to_ndarray``). ``np.load`` reads a ``BytesIO`` in
256 KB pieces (a fresh buffer each) and ``np.save`` writes 16 MB pieces into a growing buffer:
at 100 MB of parameters each direction costs several copies of the model, and the page faults
that come with fresh buffers. The functions here write and read the very same bytes (the
``.npy`` format, so a peer using Flower's functions understands them, and the reverse):

- :func:`ndarray_to_tensor` builds the header with numpy's own ``format`` functions and joins it
  with the array's buffer: one copy;
- :func:`tensor_to_ndarray` parses the header and views the data in place
  (``np.frombuffer``); by default it copies once, so the caller gets a writable array of its
  own, as from ``np.load``.

Arrays the fast path does not cover (object or structured dtypes) go through ``np.save`` /
``np.load`` as before; pickles are never allowed.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from numpy.lib import format as npy_format
from numpy.typing import NDArray

_MAGIC = b"\x93NUMPY"


def ndarray_to_tensor(array: NDArray[Any]) -> bytes:
    """Return ``array`` as ``.npy`` bytes, identical to ``np.save`` (``allow_pickle=False``)."""
    if array.dtype.hasobject or array.dtype.names is not None:
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        return buffer.getvalue()
    header_data = npy_format.header_data_from_array_1_0(array)
    header = io.BytesIO()
    try:
        npy_format.write_array_header_1_0(header, header_data)
    except ValueError:  # a header longer than 64 KiB (a very high rank): format 2.0
        header = io.BytesIO()
        npy_format.write_array_header_2_0(header, header_data)
    data = array.T if header_data["fortran_order"] else np.ascontiguousarray(array)
    if data.size == 0:
        return header.getvalue()
    return b"".join((header.getvalue(), data.reshape(-1).view(np.uint8).data))


def tensor_to_ndarray(tensor: bytes, *, copy: bool = True) -> NDArray[Any]:
    """Read ``.npy`` bytes (as written by ``np.save`` or :func:`ndarray_to_tensor`).

    With ``copy=False`` the array is a read-only view of ``tensor`` (no copy at all).

    Raises
    ------
    ValueError
        If ``tensor`` is not ``.npy`` data, is truncated, or holds objects (pickles).
    """
    if not tensor.startswith(_MAGIC):
        raise ValueError("not .npy data: the magic string is missing")
    stream = io.BytesIO(tensor)
    version = npy_format.read_magic(stream)
    if version == (1, 0):
        shape, fortran_order, dtype = npy_format.read_array_header_1_0(stream)
    elif version == (2, 0):
        shape, fortran_order, dtype = npy_format.read_array_header_2_0(stream)
    else:  # format 3.0 (utf-8 field names): rare; numpy reads it
        return _np_load(tensor)
    if dtype.hasobject:
        raise ValueError("the array holds Python objects; pickled data is never loaded")
    count = 1
    for n in shape:
        count *= int(n)
    offset = stream.tell()
    if len(tensor) - offset != count * dtype.itemsize:
        raise ValueError(f".npy data of {len(tensor)} bytes does not hold an array of shape "
                         f"{shape} and dtype {dtype}")
    flat = np.frombuffer(tensor, dtype=dtype, count=count, offset=offset)
    array = flat.reshape(shape, order="F" if fortran_order else "C")
    return np.array(array, copy=True, order="K") if copy else array


def _np_load(tensor: bytes) -> NDArray[Any]:
    loaded: NDArray[Any] = np.load(io.BytesIO(tensor), allow_pickle=False)
    return loaded


def ndarrays_to_tensors(arrays: Iterable[NDArray[Any]]) -> list[bytes]:
    """Serialize each array with :func:`ndarray_to_tensor`."""
    return [ndarray_to_tensor(np.asarray(a)) for a in arrays]


def tensors_to_ndarrays(tensors: Sequence[bytes], *, copy: bool = True) -> list[NDArray[Any]]:
    """Deserialize each tensor with :func:`tensor_to_ndarray`."""
    return [tensor_to_ndarray(t, copy=copy) for t in tensors]
