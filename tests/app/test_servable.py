"""Input validation and conversion against a signature (no model needed)."""

from __future__ import annotations

import numpy as np
import pytest

from app.errors import InvalidInputError
from app.servable import TensorSpec, _coerce, as_class_probabilities, warmup_batch_sizes

PIXELS = TensorSpec("uint8", (None, 2, 2, 1))
TEXT = TensorSpec("string", (None, 1))
FLOATS = TensorSpec("float32", (None, 3))


def test_integer_lists_become_uint8_pixels():
    array = _coerce("pixels", [[[[0], [255]], [[7], [8]]]], PIXELS)
    assert array.dtype == np.uint8 and array.shape == (1, 2, 2, 1)


def test_integral_floats_are_accepted_for_integer_inputs():
    assert _coerce("pixels", np.ones((1, 2, 2, 1)), PIXELS).dtype == np.uint8


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
        _coerce("pixels", value, PIXELS)


def test_a_missing_trailing_unit_axis_is_added():
    assert _coerce("pixels", [[[0, 1], [2, 3]]], PIXELS).shape == (1, 2, 2, 1)


def test_strings_become_utf8_bytes_and_get_their_trailing_axis():
    array = _coerce("text", ["héllo", b"\xff\x00raw"], TEXT)
    assert array.shape == (2, 1) and array.dtype == object
    assert array[0, 0] == "héllo".encode() and array[1, 0] == b"\xff\x00raw"


def test_numbers_are_not_strings():
    with pytest.raises(InvalidInputError, match="expected strings"):
        _coerce("text", [1, 2], TEXT)


def test_ints_widen_to_float():
    array = _coerce("x", [[1, 2, 3]], FLOATS)
    assert array.dtype == np.float32


def test_sigmoid_outputs_become_two_class_probabilities():
    np.testing.assert_allclose(as_class_probabilities(np.array([[0.25]])), [[0.75, 0.25]])
    softmax = np.array([[0.1, 0.2, 0.7]], dtype=np.float32)
    np.testing.assert_array_equal(as_class_probabilities(softmax), softmax)


def test_warmup_covers_every_power_of_two_up_to_the_maximum():
    assert warmup_batch_sizes(32) == [1, 2, 4, 8, 16, 32]
    assert warmup_batch_sizes(12) == [1, 2, 4, 8, 12]
    assert warmup_batch_sizes(1) == [1]
