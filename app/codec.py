"""Fast JSON in and out of the protocol endpoints (orjson; numpy arrays serialised natively)."""

from __future__ import annotations

import base64
import binascii
import math
import re
from typing import Any

import numpy as np
import orjson
from starlette.responses import Response

from app.errors import InvalidInputError, PayloadTooLargeError

_DUMPS_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
DEFAULT_MAX_DEPTH = 32


def loads(body: bytes, *, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """Parse a JSON request body; invalid JSON, or JSON nested deeper than ``max_depth``, is a
    400, not a 500 (nor a recursion through every level later on)."""
    if not body:
        raise InvalidInputError("empty request body: a JSON object is expected")
    check_depth(body, max_depth)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(f"invalid JSON: {exc}") from None


def loads_object(body: bytes, *, max_depth: int = DEFAULT_MAX_DEPTH) -> dict[str, Any]:
    data = loads(body, max_depth=max_depth)
    if not isinstance(data, dict):
        raise InvalidInputError("the request body must be a JSON object")
    return data


# ---- nesting depth in linear time ----------------------------------------------------------------
_STEP = np.zeros(256, dtype=np.int8)
_STEP[list(b"[{")] = 1
_STEP[list(b"]}")] = -1
_QUOTE = ord('"')
_CHUNK = 1 << 20


def json_depth(body: bytes, limit: int | None = None) -> int:
    """How deep arrays and objects nest in ``body`` (brackets inside strings do not count).

    Vectorised (numpy over 1 MB windows, so memory stays small): a 20 MB body takes tens of
    milliseconds, and with ``limit`` it stops at the first window that goes deeper: a body of
    50,000 nested brackets is refused before any parser recurses into it."""
    if b"\\" in body:  # escaped backslashes, then escaped quotes, cannot open or close a string
        body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    data = np.frombuffer(body, dtype=np.uint8)
    depth = quotes = deepest = 0
    for start in range(0, len(data), _CHUNK):
        chunk = data[start : start + _CHUNK]
        is_quote = chunk == _QUOTE
        outside = ((np.cumsum(is_quote, dtype=np.int64) + quotes) & 1) == 0
        quotes += int(is_quote.sum())
        levels = np.cumsum(_STEP[chunk] * outside, dtype=np.int64) + depth
        deepest = max(deepest, int(levels.max()))
        depth = int(levels[-1])
        if limit is not None and deepest > limit:
            break
    return deepest


def check_depth(body: bytes, max_depth: int) -> None:
    # Cheap test first: a body with few brackets cannot be deep.
    if body.count(b"[") + body.count(b"{") <= max_depth:
        return
    depth = json_depth(body, max_depth)
    if depth > max_depth:
        raise InvalidInputError(
            f"the JSON body nests more than {max_depth} levels deep (max_json_depth)"
        )


# ---- numeric "instances" without the nested lists ----------------------------------------------
_INSTANCES_HEAD = re.compile(rb'\s*\{\s*"instances"\s*:\s*')
_WHITESPACE = b" \t\r\n"
_FLOAT_ONLY_CHARS = b"+.eE"
_NUMBER_CHARS = b"0123456789-" + _FLOAT_ONLY_CHARS
_INTEGER_ARRAY_CHARS = b"0123456789-" + _WHITESPACE + b"[],"
# Number characters as "0", whitespace deleted: what is left is brackets, commas and "0" runs.
_NUMBERS_AS_ZERO = bytes.maketrans(_NUMBER_CHARS, b"0" * len(_NUMBER_CHARS))
_BRACKETS_AS_SPACE = bytes.maketrans(b"[]", b"  ")
_MAX_CACHED_SKELETON = 1 << 16
_shapes: dict[bytes, tuple[int, ...]] = {}  # skeletons already found rectangular


def numeric_instances(
    body: bytes, *, max_rank: int = 8, max_instances: int | None = None
) -> np.ndarray | None:
    """The ``instances`` of a body that is exactly ``{"instances": <rectangular nested list of
    numbers>}`` as an array (int64, or float64 when a number has a fraction or an exponent);
    ``None`` for any other body: the caller then parses it the general way, with its checks and
    error messages.

    Why: a 28x28 image as JSON is ~800 numbers in ~830 nested lists; parsing builds a Python
    object for each, and walking them into an array costs twice that again: most of a
    single-image request's CPU. Here the nesting is checked on the brackets and commas alone
    (against the skeleton the inferred shape must have), and orjson parses the numbers as one
    flat list, which also holds them to JSON's spelling.

    A body nested deeper than ``max_rank`` is left to the general path (which refuses it);
    more than ``max_instances`` rows raise :class:`PayloadTooLargeError` before the numbers are
    parsed.
    """
    head = _INSTANCES_HEAD.match(body)
    if head is None:
        return None
    text = body[head.end() :].rstrip(_WHITESPACE)
    if not text.endswith(b"}"):
        return None
    text = text[:-1].rstrip(_WHITESPACE)
    if not text.startswith(b"["):
        return None
    if len(text) - len(text.lstrip(b"[")) > max_rank:
        return None  # deeper than any tensor served: the general path says so
    rest = text.translate(None, _INTEGER_ARRAY_CHARS)
    if rest and rest.translate(None, _FLOAT_ONLY_CHARS):
        return None  # other keys, strings, null, ...
    classes = text.translate(_NUMBERS_AS_ZERO, _WHITESPACE)
    if b"]0" in classes or b"0[" in classes:
        return None  # a number beside a list, as in "[[1],2[3]]"
    skeleton = classes.translate(None, b"0")
    shape = _shapes.get(skeleton) or _rectangular_shape(skeleton)
    if shape is None:
        return None  # ragged, empty, or not a list of lists of numbers
    if max_instances is not None and shape[0] > max_instances:
        raise PayloadTooLargeError(
            f"{shape[0]} instances in one request, more than the limit of {max_instances} "
            "(max_instances_per_request)",
            field="instances",
        )
    try:
        # Brackets as spaces (not deleted): "1] [2" must not read as "12".
        numbers = orjson.loads(b"[" + text.translate(_BRACKETS_AS_SPACE) + b"]")
        values = np.fromiter(numbers, dtype=np.float64 if rest else np.int64, count=len(numbers))
    except (orjson.JSONDecodeError, OverflowError, TypeError):
        return None  # not JSON numbers, or beyond int64
    if values.size != math.prod(shape):
        return None
    return values.reshape(shape)


def _rectangular_shape(skeleton: bytes) -> tuple[int, ...] | None:
    """The skeleton's shape if it is the skeleton of a rectangular array (remembered for the next
    request: clients send the same shape again and again), else None."""
    shape = _shape_of(skeleton)
    if shape is None or skeleton != _skeleton(shape):
        return None
    if len(skeleton) <= _MAX_CACHED_SKELETON and len(_shapes) < 64:
        _shapes[skeleton] = shape
    return shape


def _shape_of(skeleton: bytes) -> tuple[int, ...] | None:
    """The shape a skeleton (a nested list with its numbers removed, e.g. ``[[,,],[,,]]``) has
    if it is rectangular, read from the first list at each depth; ``None`` if no shape fits.
    A list of ``d`` items each ``w`` characters wide is ``d * (w + 1) + 1`` characters wide."""
    rank = len(skeleton) - len(skeleton.lstrip(b"["))
    shape: list[int] = []
    width = 0  # a number's width once removed
    for depth in range(rank):  # innermost first
        end = skeleton.find(b"]" * (depth + 1))
        if end < 0:
            return None
        span = end + depth - (rank - 1 - depth) + 1
        size, remainder = divmod(span - 1, width + 1)
        if remainder or size < 1:
            return None
        shape.append(size)
        width = span
    return tuple(reversed(shape)) if shape else None


def _skeleton(shape: tuple[int, ...]) -> bytes:
    """The skeleton of a rectangular nested list of ``shape`` (see ``_shape_of``); built only for
    a skeleton not yet in ``_shapes``."""
    text = b"[" + b"," * (shape[-1] - 1) + b"]"
    for size in reversed(shape[:-1]):
        text = b"[" + b",".join([text] * size) + b"]"
    return text


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_default, option=_DUMPS_OPTIONS)


def json_response(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(value), status, headers, media_type="application/json")


def bytes_to_json(value: bytes) -> str | dict[str, str]:
    """Text when it is UTF-8, else TF Serving's ``{"b64": ...}``."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(value).decode("ascii")}


def _default(value: Any) -> Any:
    """What orjson cannot write itself: string tensors, non-contiguous arrays, numpy scalars."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "OS":
            return _strings_to_json(value)
        return np.ascontiguousarray(value).tolist()
    if isinstance(value, bytes):
        return bytes_to_json(value)
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _strings_to_json(array: np.ndarray) -> Any:
    return _bytes_in_list_to_json(array.tolist())


def _bytes_in_list_to_json(value: Any) -> Any:
    if isinstance(value, list):
        return [_bytes_in_list_to_json(v) for v in value]
    return bytes_to_json(value) if isinstance(value, bytes) else value


def is_b64(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and "b64" in value


def decode_b64(value: Any) -> Any:
    """Replace every ``{"b64": "..."}`` in a nested list by its decoded bytes."""
    if isinstance(value, list):
        return [decode_b64(v) for v in value]
    if isinstance(value, dict):
        if not is_b64(value) or not isinstance(value["b64"], str):
            raise InvalidInputError('expected a value or {"b64": "<base64 text>"}')
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInputError('invalid base64 in a {"b64": ...} value') from None
    return value
