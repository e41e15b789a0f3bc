"""Input tensors checked and converted against a signature: lossless conversions only, one
clear :class:`InvalidInputError` per problem (naming the input).

Shared by the servable (``ServedModel.validate``) and the protocol codecs (KServe ``data``).
"""

from __future__ import annotations

from itertools import chain
from typing import Any, NamedTuple

import numpy as np

from app.errors import InvalidInputError


class TensorSpec(NamedTuple):
    """A signature tensor: dtype name (``uint8``, ``float32``, ``string``, ...) and shape
    (``None`` for a variable dimension; the first one is the batch)."""

    dtype: str
    shape: tuple[int | None, ...]


_INT_KINDS = "iu"


def leading_size(value: Any) -> int | None:
    """Rows of an input before it is converted (an array's or a list's length)."""
    if isinstance(value, np.ndarray):
        return value.shape[0] if value.ndim else None
    return len(value) if isinstance(value, list) else None


def coerce(name: str, value: Any, spec: TensorSpec) -> np.ndarray:
    """``value`` as an array of the spec's dtype and shape, or :class:`InvalidInputError`.

    Lossless conversions only: integers into any integer type whose range holds them, integers
    or floats into floats, text or bytes into strings. A rank-1 array is accepted for a
    ``(None, 1)`` input (and gets its trailing axis).
    """
    if spec.dtype == "string":
        array = as_string_array(name, value)
    else:
        try:
            if isinstance(value, np.ndarray):
                array = value
            else:
                array = _nested_numbers_to_array(value, len(spec.shape))
                if array is None:
                    array = np.asarray(value)
        except (ValueError, TypeError) as exc:
            raise InvalidInputError(
                f"input '{name}': not a regular (rectangular) array: {exc}", field=name
            ) from None
        array = coerce_numeric(name, array, np.dtype(spec.dtype))

    expected = spec.shape
    if array.ndim == len(expected) - 1 and len(expected) >= 2 and expected[-1] == 1:
        array = array[..., None]
    if array.ndim != len(expected) or any(
        d is not None and d != a for d, a in zip(expected[1:], array.shape[1:], strict=True)
    ):
        raise InvalidInputError(
            f"input '{name}': shape {list(array.shape)} does not match the signature's "
            f"{[-1 if d is None else d for d in expected]} (-1: any size)",
            field=name,
        )
    return array


def _nested_numbers_to_array(value: Any, rank: int) -> np.ndarray | None:
    """``np.asarray`` of a rectangular nested list of numbers, faster on parsed JSON (flattened
    level by level in C, then one array call); ``None`` when ``value`` is anything else (the
    caller then falls back to ``np.asarray`` and its error messages)."""
    if type(value) is not list or rank < 1:
        return None
    shape = []
    level: list = [value]
    try:
        for _ in range(rank):
            lengths = set(map(len, level))  # TypeError where a number sits too high
            if len(lengths) != 1:
                return None  # ragged
            shape.append(lengths.pop())
            level = list(chain.from_iterable(level))
        array = np.array(level)
    except (TypeError, ValueError):
        return None
    if array.ndim != 1 or array.dtype.kind not in "iufb":
        return None  # too deep, strings, None, mixed
    return array.reshape(shape)


def coerce_numeric(name: str, array: np.ndarray, target: np.dtype) -> np.ndarray:
    kind = array.dtype.kind
    if array.dtype == target:
        return array
    if array.size == 0:
        return array.astype(target)
    if target.kind == "b":
        if kind == "b":
            return array
        if kind in _INT_KINDS and np.isin(array, (0, 1)).all():
            return array.astype(bool)
    elif target.kind in _INT_KINDS:
        if kind == "f" and np.isfinite(array).all() and (array == np.round(array)).all():
            kind = "i"
        if kind in _INT_KINDS or kind == "b":
            info = np.iinfo(target)
            if array.min() >= info.min and array.max() <= info.max:
                return array.astype(target)
            raise InvalidInputError(
                f"input '{name}': values out of range for {target.name} [{info.min}, {info.max}]",
                field=name,
            )
    elif target.kind == "f" and kind in "iufb":
        if kind == "f" and np.abs(array).max() > np.finfo(target).max:
            raise InvalidInputError(
                f"input '{name}': values out of range for {target.name}", field=name
            )
        return array.astype(target)
    raise InvalidInputError(
        f"input '{name}': expected {target.name} values, got {_describe(array)}", field=name
    )


def _describe(array: np.ndarray) -> str:
    if array.dtype.kind in "US":
        return "strings"
    if array.dtype.kind == "O":
        return "mixed or non-numeric values"
    return f"{array.dtype.name} values"


def as_string_array(name: str, value: Any) -> np.ndarray:
    """Text or bytes (nested lists) as an object array of UTF-8 ``bytes``."""
    if type(value) is list and all(type(item) is str for item in value):
        # The common case (a column of texts or categories): encoded in one pass.
        array = np.empty(len(value), dtype=object)
        array[:] = [item.encode("utf-8") for item in value]
        return array
    if isinstance(value, np.ndarray) and value.dtype.kind == "O":
        array = value
    else:
        try:
            array = np.asarray(value, dtype=object)
        except (ValueError, TypeError) as exc:
            raise InvalidInputError(
                f"input '{name}': not a regular (rectangular) array: {exc}", field=name
            ) from None
    flat = array.reshape(-1)
    for i, item in enumerate(flat):
        if isinstance(item, str):
            flat[i] = item.encode("utf-8")
        elif not isinstance(item, bytes):
            raise InvalidInputError(
                f"input '{name}': expected strings, got {type(item).__name__}", field=name
            )
    return flat.reshape(array.shape)
