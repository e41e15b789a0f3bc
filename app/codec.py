"""Fast JSON in and out of the protocol endpoints (orjson; numpy arrays serialised natively)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np
import orjson
from starlette.responses import Response

from app.errors import InvalidInputError

_DUMPS_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def loads(body: bytes) -> Any:
    """Parse a JSON request body; invalid JSON is a 400, not a 500."""
    if not body:
        raise InvalidInputError("empty request body: a JSON object is expected")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(f"invalid JSON: {exc}") from None


def loads_object(body: bytes) -> dict[str, Any]:
    data = loads(body)
    if not isinstance(data, dict):
        raise InvalidInputError("the request body must be a JSON object")
    return data


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
