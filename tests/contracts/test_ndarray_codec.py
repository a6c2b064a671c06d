"""The one-copy ``.npy`` codec writes and reads exactly what Flower's functions do."""

from __future__ import annotations

import io

import numpy as np
import pytest
from flwr.common import bytes_to_ndarray, ndarray_to_bytes
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from flops_contracts.ndarray_codec import (
    ndarray_to_tensor,
    ndarrays_to_tensors,
    tensor_to_ndarray,
    tensors_to_ndarrays,
)
from learner_base.contract_checks import all_finite

ARRAYS = {
    "float32 vector": np.arange(10, dtype=np.float32),
    "float64 matrix": np.arange(12.0).reshape(3, 4),
    "fortran order": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
    "non-contiguous": np.arange(20)[::3],
    "0-d": np.array(3.5),
    "empty": np.zeros((0, 3), dtype=np.float32),
    "complex": np.array([1 + 2j, -3j]),
    "bool": np.array([True, False]),
    "big-endian": np.arange(4, dtype=">i4"),
    "structured": np.zeros(2, dtype=[("a", "<i4"), ("b", "<f8")]),
}


def _same(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.flags.f_contiguous == b.flags.f_contiguous
    assert np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")


@pytest.mark.parametrize("name", list(ARRAYS))
def test_bytes_and_arrays_match_flowers_functions(name):
    array = ARRAYS[name]
    assert ndarray_to_tensor(array) == ndarray_to_bytes(array)
    decoded = tensor_to_ndarray(ndarray_to_bytes(array))
    _same(decoded, bytes_to_ndarray(ndarray_to_bytes(array)))
    assert decoded.flags.writeable


@given(hnp.arrays(dtype=st.sampled_from([np.float32, np.float64, np.int64, np.uint8]),
                  shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5)))
def test_round_trip_of_any_array(array):
    tensor = ndarray_to_tensor(array)
    assert tensor == ndarray_to_bytes(array)
    _same(tensor_to_ndarray(tensor), array)


def test_without_copy_the_array_is_a_read_only_view():
    tensor = ndarray_to_tensor(np.arange(6.0))
    view = tensor_to_ndarray(tensor, copy=False)
    assert not view.flags.writeable and np.array_equal(view, np.arange(6.0))


def test_lists_of_arrays():
    arrays: list[np.ndarray] = [np.ones(3), np.zeros((2, 2), dtype=np.int8)]
    for got, want in zip(tensors_to_ndarrays(ndarrays_to_tensors(arrays)), arrays, strict=True):
        _same(got, want)


def test_objects_are_never_unpickled():
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="objects"):
        tensor_to_ndarray(buffer.getvalue())
    with pytest.raises(ValueError):
        ndarray_to_tensor(np.array([{"a": 1}], dtype=object))


@pytest.mark.parametrize("tensor", [b"not npy", ndarray_to_bytes(np.arange(10.0))[:-8]])
def test_garbage_and_truncated_data_are_refused(tensor):
    with pytest.raises(ValueError):
        tensor_to_ndarray(tensor)


@pytest.mark.parametrize(("array", "finite"), [
    (np.arange(5.0), True),
    (np.array([1.0, np.nan], dtype=np.float32), False),
    (np.array([np.inf, 1.0]), False),
    (np.array([-np.inf]), False),
    (np.array([np.nan, np.inf, -np.inf], dtype=np.float16), False),
    (np.array([1 + 1j, complex(1, np.nan)]), False),
    (np.array([1 + 1j]), True),
    (np.zeros(0), True),
    (np.arange(5), True),
    (np.array(np.nan), False),
    (np.full((2, 3), np.finfo(np.float32).max, dtype=np.float32), True),
])
def test_all_finite(array, finite):
    assert all_finite(array) is finite
    assert finite == bool(np.isfinite(array).all()) or array.dtype.kind not in "fc"
