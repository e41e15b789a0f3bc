"""KServe v2 / Open Inference Protocol wire codec: an ``/infer`` body (JSON tensors, or Triton's
binary tensor data extension) to validated input arrays, and model outputs to the reply
(with the binary and classification extensions). No routes here: see ``app.api.kserve``.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np

from app.classification import as_class_probabilities, rank_classes
from app.codec import loads_object
from app.config import Settings
from app.errors import InvalidInputError, clipped
from app.servable import ServedModel
from app.tensors import as_string_array, coerce_numeric

BINARY_HEADER = "inference-header-content-length"

DATATYPES: dict[str, np.dtype | None] = {
    "BOOL": np.dtype(bool),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": None,
}
_BY_NUMPY = {dt.name: name for name, dt in DATATYPES.items() if dt is not None}


def datatype_of(dtype_name: str) -> str:
    """v2 datatype of a signature dtype name (``string`` -> ``BYTES``)."""
    return "BYTES" if dtype_name in ("string", "object") else _BY_NUMPY.get(dtype_name, "BYTES")


def decode_request(
    model: ServedModel, body: bytes, header_length: str | None, settings: Settings
) -> tuple[dict[str, Any], dict[str, np.ndarray], int, list, float | None]:
    """An ``/infer`` body as ``(payload, validated arrays, batch size, requested outputs,
    timeout)``; every check runs before a tensor is made."""
    binary = b""
    if header_length is not None:
        try:
            split = int(header_length)
        except ValueError:
            raise InvalidInputError(f"invalid {BINARY_HEADER} header") from None
        if split < 0:
            raise InvalidInputError(f"{BINARY_HEADER} must be >= 0, got {split}")
        if split > len(body):
            raise InvalidInputError(
                f"{BINARY_HEADER} ({split}) is larger than the request body ({len(body)} bytes)"
            )
        body, binary = body[:split], body[split:]
    payload = loads_object(body, max_depth=settings.max_json_depth)

    inputs = payload.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInputError("'inputs' must be a non-empty list of tensors")
    arrays: dict[str, np.ndarray] = {}
    offset = 0
    for tensor in inputs:
        name, array, offset = _decode_input(model, tensor, binary, offset, settings)
        if name in arrays:
            raise InvalidInputError(f"input '{name}' given twice", field=name)
        arrays[name] = array
    if offset != len(binary):
        raise InvalidInputError("binary data left over after the last input")

    parameters = payload.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise InvalidInputError("'parameters' must be an object")
    requested = _requested_outputs(model, payload.get("outputs"), parameters)
    timeout_s = _timeout_s(parameters.get("timeout"))
    validated, size = model.validate(arrays)
    return payload, validated, size, requested, timeout_s


def _check_shape(model: ServedModel, name: str, shape: list[int], settings: Settings) -> None:
    """Rank and instance count, before any array is allocated or reshaped."""
    if len(shape) > settings.max_tensor_rank:
        raise InvalidInputError(
            f"input '{name}': shape has {len(shape)} dimensions, more than the limit of "
            f"{settings.max_tensor_rank} (max_tensor_rank)",
            field=name,
        )
    spec = model.inputs.get(name)
    if spec is not None:
        rank = len(spec.shape)
        trailing_one = rank >= 2 and spec.shape[-1] == 1
        if len(shape) != rank and not (trailing_one and len(shape) == rank - 1):
            raise InvalidInputError(
                f"input '{name}': shape {shape} has {len(shape)} dimensions; the signature's "
                f"{[-1 if d is None else d for d in spec.shape]} has {rank}",
                field=name,
            )
    if shape:
        model.check_instances(shape[0], name)


def _decode_input(
    model: ServedModel, tensor: Any, binary: bytes, offset: int, settings: Settings
) -> tuple[str, np.ndarray, int]:
    if not isinstance(tensor, dict):
        raise InvalidInputError("each input must be an object with name, shape, datatype, data")
    name = tensor.get("name")
    if not isinstance(name, str):
        raise InvalidInputError("an input has no 'name'")
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise InvalidInputError(f"input '{name}': 'shape' must be a list of sizes >= 0", field=name)
    _check_shape(model, name, shape, settings)
    datatype = tensor.get("datatype")
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        raise InvalidInputError(
            f"input '{name}': unknown datatype {datatype!r}; one of {list(DATATYPES)}", field=name
        )
    dtype = DATATYPES[datatype]
    count = math.prod(shape)  # exact: np.prod would wrap around on absurd shapes
    params = tensor.get("parameters") or {}
    binary_size = params.get("binary_data_size") if isinstance(params, dict) else None

    if binary_size is not None:
        valid = isinstance(binary_size, int) and 0 <= binary_size <= len(binary) - offset
        if not valid:
            raise InvalidInputError(f"input '{name}': bad binary_data_size", field=name)
        chunk = binary[offset : offset + binary_size]
        offset += binary_size
        if dtype is None:
            flat = _unpack_bytes(name, chunk)
        else:
            if binary_size != count * dtype.itemsize:
                raise InvalidInputError(
                    f"input '{name}': {binary_size} bytes of binary data for {count} "
                    f"{datatype} values",
                    field=name,
                )
            flat = np.frombuffer(chunk, dtype=dtype.newbyteorder("<"))
    else:
        if "data" not in tensor:
            raise InvalidInputError(f"input '{name}': no 'data'", field=name)
        data = tensor["data"]
        if dtype is None:
            flat = as_string_array(name, data).reshape(-1)
        else:
            try:
                raw = np.asarray(data)
            except (ValueError, TypeError):
                raise InvalidInputError(
                    f"input '{name}': 'data' is not a regular array", field=name
                ) from None
            flat = coerce_numeric(name, raw, dtype).reshape(-1)
    if flat.size != count:
        raise InvalidInputError(
            f"input '{name}': {flat.size} values do not fill shape {shape}", field=name
        )
    return name, flat.reshape(shape), offset


def _unpack_bytes(name: str, chunk: bytes) -> np.ndarray:
    """Triton's BYTES wire format: each element a 4-byte little-endian length, then the bytes."""
    items, pos = [], 0
    while pos < len(chunk):
        if pos + 4 > len(chunk):
            raise InvalidInputError(f"input '{name}': truncated BYTES binary data", field=name)
        (length,) = struct.unpack_from("<I", chunk, pos)
        pos += 4
        if pos + length > len(chunk):
            raise InvalidInputError(f"input '{name}': truncated BYTES binary data", field=name)
        items.append(chunk[pos : pos + length])
        pos += length
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array


def _pack_bytes(array: np.ndarray) -> bytes:
    parts = []
    for item in array.reshape(-1):
        data = item if isinstance(item, bytes) else str(item).encode("utf-8")
        parts.append(struct.pack("<I", len(data)))
        parts.append(data)
    return b"".join(parts)


def _requested_outputs(
    model: ServedModel, outputs: Any, parameters: dict[str, Any]
) -> list[tuple[str, dict[str, Any]]]:
    """``(name, options)`` of the outputs to return: the requested ones, else all."""
    all_binary = bool(parameters.get("binary_data_output", False))
    if outputs is None:
        return [(name, {"binary_data": all_binary}) for name in model.outputs]
    if not isinstance(outputs, list):
        raise InvalidInputError("'outputs' must be a list")
    chosen: list[tuple[str, dict[str, Any]]] = []
    for item in outputs:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise InvalidInputError("each requested output must be an object with a 'name'")
        name = item["name"]
        if name not in model.outputs:
            raise InvalidInputError(
                f"unknown output '{clipped(name)}'; model '{model.name}' has {list(model.outputs)}",
                field=clipped(name),
            )
        if any(name == seen for seen, _ in chosen):  # each is computed and sent once per ask
            raise InvalidInputError(f"output '{name}' requested twice", field=name)
        options = item.get("parameters") or {}
        if not isinstance(options, dict):
            raise InvalidInputError(f"output '{name}': 'parameters' must be an object")
        classification = options.get("classification", 0)
        if (
            not isinstance(classification, int)
            or isinstance(classification, bool)
            or (classification < 0)
        ):
            raise InvalidInputError(f"output '{name}': 'classification' must be a count >= 0")
        chosen.append(
            (
                name,
                {
                    "binary_data": bool(options.get("binary_data", all_binary)),
                    "classification": classification,
                },
            )
        )
    return chosen


def _timeout_s(value: Any) -> float | None:
    """Triton's ``parameters.timeout`` (microseconds); it can only shorten the model's deadline
    (``ServedModel.run``)."""
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise InvalidInputError("parameters.timeout must be a positive number of microseconds")
    return value / 1e6


def classify(model: ServedModel, output: np.ndarray, k: int) -> np.ndarray:
    """Top-k ``"score:index:label"`` strings per row (Triton's classification extension; a
    class with no label is ``"score:index"``)."""
    probs = as_class_probabilities(output).reshape(len(output), -1)
    labels = model.labels or []
    top = rank_classes(probs, k)
    result = np.empty(top.shape, dtype=object)
    for r, indices in enumerate(top):
        for c, i in enumerate(indices):
            label = f":{labels[i]}" if i < len(labels) else ""
            result[r, c] = f"{probs[r, i]:.6f}:{i}{label}".encode()
    return result


def encode_reply(
    model: ServedModel,
    payload: dict[str, Any],
    requested: list[tuple[str, dict[str, Any]]],
    outputs: dict[str, np.ndarray],
) -> tuple[dict[str, Any], list[bytes]]:
    """The reply's JSON part and the binary blobs that follow it (in the outputs' order)."""
    tensors, blobs = [], []
    for name, options in requested:
        value = outputs[name]
        if options.get("classification"):
            value = classify(model, value, options["classification"])
        entry, blob = encode_output(name, value, options.get("binary_data", False))
        tensors.append(entry)
        if blob is not None:
            blobs.append(blob)
    reply: dict[str, Any] = {"model_name": model.name, "model_version": str(model.version)}
    if "id" in payload:
        reply["id"] = payload["id"]
    reply["outputs"] = tensors
    return reply, blobs


def encode_output(
    name: str, value: np.ndarray, binary: bool
) -> tuple[dict[str, Any], bytes | None]:
    value = np.asarray(value)
    is_bytes = value.dtype.kind in "OSU"
    entry: dict[str, Any] = {
        "name": name,
        "datatype": "BYTES" if is_bytes else datatype_of(value.dtype.name),
        "shape": list(value.shape),
    }
    if binary:
        blob = (
            _pack_bytes(value)
            if is_bytes
            else np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<")).tobytes()
        )
        entry["parameters"] = {"binary_data_size": len(blob)}
        return entry, blob
    entry["data"] = value.reshape(-1)
    return entry, None
