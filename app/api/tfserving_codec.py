"""TensorFlow Serving REST v1 wire codec: a ``:predict`` body (row ``instances`` or columnar
``inputs``, bytes as ``{"b64": ...}``) to validated input arrays, and outputs to the row-format
reply. No routes here: see ``app.api.tfserving``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from starlette.responses import Response

from app.codec import decode_b64, is_b64, json_response, loads_object, numeric_instances
from app.config import Settings
from app.errors import InvalidInputError, clipped
from app.servable import SIGNATURE, ServedModel


def decode_request(
    model: ServedModel, raw: bytes, settings: Settings
) -> tuple[bool, dict[str, np.ndarray], int]:
    """A ``:predict`` body as validated input arrays: ``(columnar?, arrays, batch size)``."""
    if len(model.inputs) == 1:
        ((name, spec),) = model.inputs.items()
        # The common single-tensor body, parsed lean.
        instances = (
            numeric_instances(
                raw,
                max_rank=settings.max_tensor_rank,
                max_instances=settings.max_instances_per_request,
            )
            if spec.dtype != "string"
            else None
        )
        if instances is not None:
            return (False, *model.validate({name: instances}))
    body = loads_object(raw, max_depth=settings.max_json_depth)
    signature = body.get("signature_name")
    if signature not in (None, "", SIGNATURE):
        raise InvalidInputError(
            f"signature '{clipped(str(signature))}' not found; model '{model.name}' serves "
            f"'{SIGNATURE}'"
        )
    has_instances, has_inputs = "instances" in body, "inputs" in body
    if has_instances == has_inputs:
        raise InvalidInputError(
            "the request must have exactly one of 'instances' (row format) or 'inputs' "
            "(columnar format)"
        )
    if has_instances:
        return (False, *model.validate(_rows_to_columns(model, body["instances"])))
    return (True, *model.validate(_columnar(model, body["inputs"])))


def encode_predictions(outputs: dict[str, Any]) -> Response:
    """Row format reply: the only output's rows, or one object per row naming the outputs."""
    if len(outputs) == 1:
        return json_response({"predictions": next(iter(outputs.values()))})
    size = len(next(iter(outputs.values())))
    return json_response(
        {"predictions": [{k: v[i] for k, v in outputs.items()} for i in range(size)]}
    )


def _rows_to_columns(model: ServedModel, instances: Any) -> dict[str, Any]:
    """Row format: a list of instances, each the input value or an object naming the inputs."""
    if not isinstance(instances, list):
        raise InvalidInputError("'instances' must be a list")
    if not instances:
        raise InvalidInputError("empty batch: 'instances' has no instance")
    model.check_instances(len(instances), "instances")
    first = instances[0]
    if not _names_inputs(model, first):
        return _decode_strings(model, _only_input(model, instances, "each instance"))
    keys = set(first)
    if not all(isinstance(row, dict) and set(row) == keys for row in instances):
        raise InvalidInputError("every instance must be an object with the same input names")
    return _decode_strings(model, {k: [row[k] for row in instances] for k in first})


def _columnar(model: ServedModel, inputs: Any) -> dict[str, Any]:
    """Columnar format: the value of the only input, or an object naming every input."""
    if _names_inputs(model, inputs):
        return _decode_strings(model, inputs)
    return _decode_strings(model, _only_input(model, inputs, "'inputs'"))


def _names_inputs(model: ServedModel, value: Any) -> bool:
    """An object naming the inputs, not a ``{"b64": ...}`` value of the only input."""
    return isinstance(value, dict) and not (is_b64(value) and "b64" not in model.inputs)


def _only_input(model: ServedModel, value: Any, what: str) -> dict[str, Any]:
    """``value`` as the model's only input; a model with several needs them named."""
    names = list(model.inputs)
    if len(names) != 1:
        raise InvalidInputError(
            f"model '{model.name}' has several inputs {names}: {what} must be an object naming them"
        )
    return {names[0]: value}


def _decode_strings(model: ServedModel, columns: dict[str, Any]) -> dict[str, Any]:
    """``{"b64": ...}`` values become bytes for string inputs."""
    for name, value in columns.items():
        spec = model.inputs.get(name)
        if spec is not None and spec.dtype == "string":
            columns[name] = decode_b64(value)
    return columns
