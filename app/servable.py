"""One served model version, KServe-style: ``load``, ``validate`` (the inputs against the
signature), ``predict`` (one batched call), and a ``state`` from which ``ready`` follows.

``ServedModel.infer`` is what every endpoint calls: it validates and converts the inputs against
the ``serving_default`` signature, then goes through the model's dynamic batcher.
"""

from __future__ import annotations

import json
import logging
import re
import time
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from app import metrics
from app.admission import deadline_after
from app.batching import DynamicBatcher
from app.config import BatchingConfig
from app.errors import (
    InvalidInputError,
    ModelNotReadyError,
    PayloadTooLargeError,
    clipped,
    first_names,
)
from app.tensors import TensorSpec, coerce, leading_size

logger = logging.getLogger(__name__)

SIGNATURE = "serving_default"
EXTRA_SIGNATURES = frozenset({"activations", "gradcam"})


class ModelState(StrEnum):
    """A version's life (TF Serving's names): START -> LOADING -> AVAILABLE | FAILED; a
    version leaving the repository goes UNLOADING (it finishes what it took) -> END."""

    START = "START"
    LOADING = "LOADING"
    AVAILABLE = "AVAILABLE"
    FAILED = "FAILED"
    UNLOADING = "UNLOADING"
    END = "END"


# The states in which a version answers requests: a draining one finishes those that chose it.
_SERVING = frozenset({ModelState.AVAILABLE, ModelState.UNLOADING})
_ABSOLUTE_PATH = re.compile(r"(?<![\w.])/(?:[\w.+-]+/)*[\w.+-]+")

Arrays = dict[str, np.ndarray]


def warmup_batch_sizes(max_batch_size: int) -> list[int]:
    """Powers of two up to ``max_batch_size``, and ``max_batch_size`` itself."""
    sizes, n = [], 1
    while n < max_batch_size:
        sizes.append(n)
        n *= 2
    return [*sizes, max_batch_size]


class ServedModel:
    """A SavedModel version with its metadata, device, readiness and batcher."""

    def __init__(
        self,
        name: str,
        version: int,
        path: Path,
        *,
        device: str,
        batching: BatchingConfig,
        max_instances: int = 1024,
    ) -> None:
        self.name = name
        self.max_instances = max_instances
        self.version = version
        self.path = Path(path)
        self.device = device
        self.batching = batching
        self.metadata: dict[str, Any] = {}
        self.inputs: dict[str, TensorSpec] = {}
        self.outputs: dict[str, TensorSpec] = {}
        self.state = ModelState.START
        self.error: str | None = None
        self.load_seconds: float | None = None
        self.fingerprint: tuple = ()  # the files it was loaded from (see repository.fingerprint)
        self.signatures: dict[str, Any] = {}
        self._loaded = None  # keeps the loaded object (and its variables) alive
        self._fn = None
        self.batcher = DynamicBatcher(
            self.predict,
            name=name,
            version=str(version),
            max_batch_size=batching.max_batch_size,
            max_wait_s=batching.max_wait_ms / 1000,
            max_queue_size=batching.max_queue_size,
            timeout_s=batching.request_timeout_ms / 1000,
        )

    def __repr__(self) -> str:
        return f"ServedModel({self.name!r}, version={self.version}, state={self.state})"

    @property
    def ready(self) -> bool:
        """Loaded and warm: takes requests."""
        return self.state in _SERVING

    @property
    def task(self) -> str | None:
        return self.metadata.get("task")

    @property
    def labels(self) -> list[str] | None:
        return self.metadata.get("labels")

    @property
    def decision_threshold(self) -> float | None:
        """A binary model's P(positive) from which it answers the positive class (metadata)."""
        value = self.metadata.get("decision_threshold")
        return float(value) if isinstance(value, int | float) else None

    # ---- load -------------------------------------------------------------------------------
    def load(self, *, warmup: bool = True) -> None:
        """Load the SavedModel onto ``device``, read ``metadata.json``, warm up; never raises:
        a failure leaves the model not ready with its ``error``."""
        import tensorflow as tf

        self.state = ModelState.LOADING
        start = time.perf_counter()
        try:
            meta_path = self.path / "metadata.json"
            if meta_path.exists():
                self.metadata = json.loads(meta_path.read_text())
            with tf.device(self.device):
                self._loaded = tf.saved_model.load(str(self.path))
            if SIGNATURE not in self._loaded.signatures:
                raise ValueError(f"SavedModel has no '{SIGNATURE}' signature")
            self._fn = self._loaded.signatures[SIGNATURE]
            # Other signatures a client may ask for by name (training/explain.py's).
            self.signatures = {
                name: fn for name, fn in self._loaded.signatures.items() if name in EXTRA_SIGNATURES
            }
            _, kwargs = self._fn.structured_input_signature
            self.inputs = {k: _spec(v) for k, v in kwargs.items()}
            self.outputs = {k: _spec(v) for k, v in self._fn.structured_outputs.items()}
            if warmup:
                self.warmup()
        except Exception as exc:
            self.state = ModelState.FAILED
            logger.error("model %s/%s failed to load: %s", self.name, self.version, exc)
            self.error = self._public_error(exc)
        else:
            self.state = ModelState.AVAILABLE
            self.error = None
        self.load_seconds = time.perf_counter() - start
        metrics.MODEL_READY.labels(self.name, str(self.version), self.device).set(int(self.ready))

    def _public_error(self, exc: Exception) -> str:
        """The load error as clients see it: one line, no filesystem paths (the log has them)."""
        text = f"{type(exc).__name__}: {exc}".splitlines()[0]
        for path in {str(self.path.resolve()), str(self.path)}:
            text = text.replace(path, f"{self.name}/{self.version}")
        return _ABSOLUTE_PATH.sub("<path>", text)[:500]

    def warmup(self) -> None:
        """One call per batch size the batcher may form (powers of two up to the maximum)."""
        for size in warmup_batch_sizes(self.batching.max_batch_size):
            self.predict(self.example_inputs(size))

    def example_inputs(self, size: int) -> Arrays:
        """Zeros (empty strings) shaped like the signature; variable dims taken as 1 (or the
        image size from metadata)."""
        image = self.metadata.get("image") or {}
        fill = {1: image.get("height"), 2: image.get("width"), 3: image.get("channels")}
        arrays = {}
        for name, spec in self.inputs.items():
            shape = [size] + [
                d if d is not None else (fill.get(i) or 1) for i, d in enumerate(spec.shape) if i
            ]
            if spec.dtype == "string":
                arrays[name] = np.full(shape, b"", dtype=object)
            else:
                arrays[name] = np.zeros(shape, dtype=spec.dtype)
        return arrays

    async def start(self) -> None:
        self.batcher.start()

    async def stop(self) -> None:
        await self.batcher.stop()
        if self.ready:
            self.state = ModelState.END

    # ---- inference --------------------------------------------------------------------------
    def admit(self) -> None:
        """Refuse at once, before the request's body is read: not ready (503) or queue full
        (429)."""
        if not self.ready:
            raise ModelNotReadyError(self.not_ready_reason())
        self.batcher.check_room()

    async def infer(self, inputs: dict[str, Any], *, timeout_s: float | None = None) -> Arrays:
        """Validate ``inputs`` (name -> array-like with a leading batch dim), run them through
        the dynamic batcher, return the signature's outputs (name -> array) for these rows."""
        arrays, size = self.validate(inputs)
        return await self.run(arrays, size, timeout_s=timeout_s)

    async def run(self, arrays: Arrays, size: int, *, timeout_s: float | None = None) -> Arrays:
        """Run inputs already :meth:`validate`-d; the deadline counts from the request's arrival
        (``timeout_s`` can only shorten the model's ``request_timeout_ms``)."""
        if not self.ready:
            raise ModelNotReadyError(self.not_ready_reason())
        timeout = (
            self.batcher.timeout_s if timeout_s is None else min(timeout_s, self.batcher.timeout_s)
        )
        return await self.batcher.submit(arrays, size, deadline=deadline_after(timeout))

    def validate(self, inputs: dict[str, Any]) -> tuple[Arrays, int]:
        """Check names, dtypes, shapes and the instance count against the signature and the
        limits; convert losslessly.

        Returns the arrays and their common batch size. Raises :class:`InvalidInputError`
        (:class:`PayloadTooLargeError` for too many instances).
        """
        missing = [k for k in self.inputs if k not in inputs]
        unknown = [k for k in inputs if k not in self.inputs]
        if unknown:
            raise InvalidInputError(
                f"unknown input(s) {first_names(unknown)}; model '{self.name}' takes "
                f"{list(self.inputs)}",
                field=clipped(unknown[0]),
            )
        if missing:
            raise InvalidInputError(
                f"missing input(s) {missing}; model '{self.name}' takes {list(self.inputs)}",
                field=missing[0],
            )
        for name in self.inputs:
            self.check_instances(leading_size(inputs[name]), name)
        arrays: Arrays = {}
        size = None
        for name, spec in self.inputs.items():
            array = coerce(name, inputs[name], spec)
            if size is None:
                size = array.shape[0]
            elif array.shape[0] != size:
                raise InvalidInputError(
                    f"inputs disagree on the batch size: '{name}' has {array.shape[0]} rows, "
                    f"others {size}",
                    field=name,
                )
            arrays[name] = array
        if not size:
            raise InvalidInputError("empty batch: at least one instance is needed")
        return arrays, size

    def check_instances(self, count: int | None, field: str | None = None) -> None:
        """:class:`PayloadTooLargeError` past ``max_instances_per_request``."""
        if count is not None and count > self.max_instances:
            raise PayloadTooLargeError(
                f"{count} instances in one request, more than the limit of {self.max_instances}"
                " (max_instances_per_request)",
                field=field,
            )

    def predict(self, inputs: Arrays) -> Arrays:
        """Run the signature on a (batched) input dict; synchronous, called in the model's
        thread by the batcher."""
        return self._run(self._fn, inputs)

    def call_signature(self, name: str, inputs: Arrays) -> Arrays:
        """Run another signature of the SavedModel (``signatures``) outside the batcher."""
        return self._run(self.signatures[name], inputs)

    def _run(self, function, inputs: Arrays) -> Arrays:
        import tensorflow as tf

        # tf.constant: the inputs are NumPy arrays, and it takes half the time of
        # tf.convert_to_tensor for them (~20 against ~40 us an input; 19 for churn).
        with tf.device(self.device):
            result = function(**{k: tf.constant(v) for k, v in inputs.items()})
        return {k: v.numpy() for k, v in result.items()}

    # ---- status -----------------------------------------------------------------------------
    def not_ready_reason(self) -> str:
        if self.state is ModelState.FAILED:
            return f"model '{self.name}' version {self.version} failed to load: {self.error}"
        return f"model '{self.name}' version {self.version} is not ready ({self.state})"

    def status(self) -> dict[str, Any]:
        """Summary for ``GET /v1/models``."""
        return {
            "name": self.name,
            "version": self.version,
            "state": self.state,
            "ready": self.ready,
            "error": self.error,
            "device": self.device,
            "task": self.task,
            "labels": self.labels,
            "inputs": {k: _spec_json(s) for k, s in self.inputs.items()},
            "outputs": {k: _spec_json(s) for k, s in self.outputs.items()},
            "batching": self.batching.model_dump(),
            "load_seconds": round(self.load_seconds, 3) if self.load_seconds else None,
        }


# ---- helpers ----------------------------------------------------------------------------------
def _spec(tensor_spec) -> TensorSpec:
    dtype = tensor_spec.dtype.name
    shape = tuple(None if d is None else int(d) for d in tensor_spec.shape.as_list())
    return TensorSpec(dtype, shape)


def _spec_json(spec: TensorSpec) -> dict[str, Any]:
    return {"dtype": spec.dtype, "shape": list(spec.shape)}
