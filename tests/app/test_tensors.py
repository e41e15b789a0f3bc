"""Input conversion against a signature (no model needed)."""

from __future__ import annotations

import numpy as np
import pytest

from app.errors import InvalidInputError
from app.tensors import TensorSpec, coerce

PIXELS = TensorSpec("uint8", (None, 2, 2, 1))
TEXT = TensorSpec("string", (None, 1))
FLOATS = TensorSpec("float32", (None, 3))


def test_integer_lists_become_uint8_pixels():
    array = coerce("pixels", [[[[0], [255]], [[7], [8]]]], PIXELS)
    assert array.dtype == np.uint8 and array.shape == (1, 2, 2, 1)


def test_integral_floats_are_accepted_for_integer_inputs():
    assert coerce("pixels", np.ones((1, 2, 2, 1)), PIXELS).dtype == np.uint8


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([[[[0], [256]], [[0], [0]]]], "out of range"),
        ([[[[0], [-1]], [[0], [0]]]], "out of range"),
        ([[[[0.5], [1]], [[0], [0]]]], "expected uint8"),
        ([[[["a"], ["b"]], [["c"], ["d"]]]], "expected uint8"),
        ([[[[0], [None]], [[0], [0]]]], "expected uint8"),
        ([[[[0], [1]], [[0]]]], "rectangular"),
        ([[[0, 1, 2], [2, 3, 4]]], "shape"),
        ([[[[0], [1], [2]], [[0], [0], [0]]]], "shape"),
    ],
)
def test_bad_pixels_are_refused(value, message):
    with pytest.raises(InvalidInputError, match=message):
        coerce("pixels", value, PIXELS)


def test_a_missing_trailing_unit_axis_is_added():
    assert coerce("pixels", [[[0, 1], [2, 3]]], PIXELS).shape == (1, 2, 2, 1)


def test_strings_become_utf8_bytes_and_get_their_trailing_axis():
    array = coerce("text", ["héllo", b"\xff\x00raw"], TEXT)
    assert array.shape == (2, 1) and array.dtype == object
    assert array[0, 0] == "héllo".encode() and array[1, 0] == b"\xff\x00raw"


def test_numbers_are_not_strings():
    with pytest.raises(InvalidInputError, match="expected strings"):
        coerce("text", [1, 2], TEXT)


def test_ints_widen_to_float():
    array = coerce("x", [[1, 2, 3]], FLOATS)
    assert array.dtype == np.float32
