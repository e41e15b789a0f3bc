"""Explanations: what a model saw and why it decided (course 000, exercises 7 and 9).

- **Image CNNs** carry two extra signatures exported by ``training/explain.py``: ``activations``
  (each convolution block's output, the hidden dense layer) and ``gradcam`` (Grad-CAM heat map
  of the predicted class). Here they are run and drawn: feature maps as a PNG grid, the heat map
  over the image as a PNG.
- **Text and tabular models** show their intermediate layers through an ``activations``
  signature where their version has one (exported by their training modules): a text bag as its
  strongest terms with their TF-IDF weights, the encoded feature vector, each hidden dense layer.
  They are explained by occlusion through ``serving_default``: a token's
  contribution is P(positive class) minus P(positive class) with that token left out (and the
  same in log-odds, ``log_odds_contribution``, which stays readable when P is near 0 or 1); a
  column's is P minus P with the column at its default (the training data's most common value
  or median, from ``metadata.json``). Why occlusion, not integrated gradients: these models
  start from strings and categories (TF-IDF, lookup tables), through which there is no gradient
  with respect to a word or a category; occlusion is exact, model-agnostic, and answers the
  question a person asks ("what if this word were not there, this customer had the usual
  contract"). It costs one model input per token or column, which the limits bound.

Every call runs in the :class:`Explainer`'s own threads, at most ``explain_concurrency`` at once,
never in a model's batcher: explanations cannot take the predictions' turn.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from PIL import Image

from app.admission import deadline_after
from app.classification import as_class_probabilities
from app.errors import DeadlineExceededError, InvalidInputError, QueueFullError
from app.servable import ServedModel

EXPLAIN_SIGNATURES = ("activations", "gradcam")
OCCLUSION_TASKS = ("text_classification", "tabular_classification")
_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)


class Explainer:
    """A bounded pool for explanation calls: ``concurrency`` threads and ``max_waiting``
    requests waiting for one (429 past that); each call within ``timeout_s`` of the request's
    arrival (504 past it)."""

    def __init__(
        self, concurrency: int, max_waiting: int, timeout_s: float, niceness: int = 10
    ) -> None:
        self._pool = ThreadPoolExecutor(
            concurrency,
            thread_name_prefix="explain",
            initializer=_lower_priority,
            initargs=(niceness,),
        )
        self._limit = concurrency + max_waiting
        self.timeout_s = timeout_s
        self._admitted = 0

    async def run(self, function, *args) -> Any:
        if self._admitted >= self._limit:
            raise QueueFullError("too many explanation requests at once; retry later")
        self._admitted += 1
        try:
            remaining = max(deadline_after(self.timeout_s) - time.monotonic(), 0.0)
            async with asyncio.timeout(remaining):
                return await asyncio.get_running_loop().run_in_executor(self._pool, function, *args)
        except TimeoutError:
            raise DeadlineExceededError(
                f"the explanation did not finish within {self.timeout_s:g} s of the request's "
                "arrival (explain_timeout_ms)"
            ) from None
        finally:
            self._admitted -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _lower_priority(niceness: int) -> None:
    """Run this thread at a lower OS priority (Linux: niceness is per thread), so that the
    drawing and the other Python work of an explanation yield the CPU to the predictions."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)


def require_signatures(model: ServedModel) -> None:
    missing = [name for name in EXPLAIN_SIGNATURES if name not in model.signatures]
    if missing:
        versions = "a version exported by training/explain.py"
        raise InvalidInputError(
            f"model '{model.name}' version {model.version} has no {' / '.join(missing)} "
            f"signature: explanations of image CNNs need {versions}; binary text and tabular "
            "classifiers are explained by occlusion"
        )


def require_explainable(model: ServedModel) -> None:
    """400 unless the protocol ``:explain`` verb can explain ``model``: a binary text or
    tabular classifier (by occlusion), or an image CNN with the explanation signatures."""
    if model.task not in OCCLUSION_TASKS:
        require_signatures(model)


def explain_arrays(
    model: ServedModel, arrays: dict[str, np.ndarray], size: int, values: bool, max_tokens: int
) -> list[dict[str, Any]]:
    """The protocol ``:explain`` verb: a decoded ``:predict`` body of a model that passed
    :func:`require_explainable`, explained the way its kind allows (occlusion and activations
    for a text or tabular classifier; Grad-CAM and activations for an image CNN)."""
    if model.task == "text_classification":
        ((_, texts),) = arrays.items()
        return explain_texts(model, [_text(t) for t in np.ravel(texts)], max_tokens)
    if model.task == "tabular_classification":
        rows = {name: _column(array, size) for name, array in arrays.items()}
        return explain_rows(model, rows, size)
    ((_, pixels),) = arrays.items()
    return explain_images(model, pixels, values)


def _column(array: np.ndarray, size: int) -> list | np.ndarray:
    """One value per row, as the typed endpoints pass columns: strings or float32 numbers."""
    flat = np.asarray(array).reshape(size, -1)[:, 0]
    if flat.dtype.kind in "OSU":
        return [_text(v) for v in flat]
    return flat.astype(np.float32)


# ---- image CNNs ---------------------------------------------------------------------------
def explain_images(model: ServedModel, pixels: np.ndarray, values: bool) -> list[dict[str, Any]]:
    """Grad-CAM and activations of each image (``pixels`` already fitted to the input)."""
    gradcam = model.call_signature("gradcam", {"pixels": pixels})
    activations = model.call_signature("activations", {"pixels": pixels})
    labels = model.labels or []
    results = []
    for i in range(len(pixels)):
        heatmap = gradcam["heatmap"][i]
        index = int(gradcam["class_index"][i])
        layers = []
        for name in sorted(activations, key=_layer_order):
            layer = activations[name][i]
            entry: dict[str, Any] = {"name": name, "shape": list(layer.shape)}
            if layer.ndim == 3:
                entry["png"] = _b64(feature_grid(layer))
            if values:
                entry["values"] = np.round(layer.astype(np.float64), 5).tolist()
            layers.append(entry)
        results.append(
            {
                "label": labels[index] if index < len(labels) else str(index),
                "class_index": index,
                "probability": float(gradcam["probability"][i]),
                "gradcam": {
                    "layer": (model.metadata.get("explain") or {}).get("gradcam", {}).get("layer"),
                    "heatmap": np.round(heatmap.astype(np.float64), 4).tolist(),
                    "png": _b64(overlay(pixels[i], heatmap)),
                },
                "activations": layers,
            }
        )
    return results


def _layer_order(name: str) -> tuple[int, int]:
    kind, _, number = name.partition("_")
    return (0 if kind == "conv" else 1, int(number) if number.isdigit() else 1)


def overlay(pixels: np.ndarray, heatmap: np.ndarray, scale: int = 8) -> bytes:
    """The image with the heat map over it (red: what drove the decision), enlarged so small
    inputs are visible, as PNG bytes."""
    height, width = pixels.shape[:2]
    base = pixels[..., 0] if pixels.shape[-1] == 1 else pixels.mean(axis=-1)
    gray = Image.fromarray(base.astype(np.uint8)).resize((width * scale, height * scale))
    heat = Image.fromarray((np.clip(heatmap, 0, 1) * 255).astype(np.uint8))
    heat = np.asarray(heat.resize(gray.size, Image.BILINEAR), dtype=np.float32) / 255
    rgb = np.repeat(np.asarray(gray, dtype=np.float32)[..., None], 3, axis=-1) * 0.6
    rgb[..., 0] += 255 * heat * 0.8
    rgb[..., 1] += 80 * heat * 0.4
    return _png(np.clip(rgb, 0, 255).astype(np.uint8))


def feature_grid(layer: np.ndarray, cell: int = 56, most: int = 64) -> bytes:
    """The first ``most`` feature maps of a ``(h, w, channels)`` activation, each scaled to
    [0, 255] on its own, in a grid of about ``cell``-pixel tiles (nearest-neighbour), as PNG."""
    maps = layer[..., :most].astype(np.float32)
    height, width, count = maps.shape
    low = maps.min(axis=(0, 1), keepdims=True)
    span = maps.max(axis=(0, 1), keepdims=True) - low
    scaled = np.where(span > 0, (maps - low) / np.where(span > 0, span, 1) * 255, 0)
    scale = max(1, cell // max(height, width))
    tiles = scaled.astype(np.uint8).repeat(scale, axis=0).repeat(scale, axis=1)  # (H, W, count)
    size = (tiles.shape[0] + 2, tiles.shape[1] + 2)
    columns = int(np.ceil(np.sqrt(count)))
    rows = int(np.ceil(count / columns))
    grid = np.full((rows * size[0], columns * size[1]), 255, dtype=np.uint8)
    for k in range(count):
        r, c = divmod(k, columns)
        top, left = r * size[0], c * size[1]
        grid[top : top + tiles.shape[0], left : left + tiles.shape[1]] = tiles[..., k]
    return _png(grid)


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG", optimize=False)
    return buffer.getvalue()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# ---- occlusion: text and tabular ----------------------------------------------------------
def positive_probability(model: ServedModel, inputs: dict[str, Any]) -> np.ndarray:
    arrays, _ = model.validate(inputs)
    outputs = model.predict(arrays)
    return as_class_probabilities(outputs["output_0"])[:, 1]


def log_odds(probabilities: np.ndarray) -> np.ndarray:
    """log(p / (1 - p)), clipped away from 0 and 1: a confident model's occlusion moves the
    probability by thousandths (0.9998 -> 0.9994) but its log-odds by whole units, so
    ``log_odds_contribution`` still ranks the tokens or columns that matter."""
    p = np.clip(probabilities.astype(np.float64), 1e-7, 1 - 1e-7)
    return np.log(p) - np.log1p(-p)


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


# ---- text and tabular activations ----------------------------------------------------------
def feature_layers(model: ServedModel, inputs: dict[str, Any], count: int) -> list[list[dict]]:
    """Per item, the model's intermediate layers from its ``activations`` signature (empty
    lists for a version without one): ``{"name", "kind", "shape", "values"}`` for a feature
    vector or hidden layer; ``{"name", "kind": "bag", "shape", "top_terms"}`` for a text bag,
    its terms of non-zero weight, strongest first."""
    if "activations" not in model.signatures:
        return [[] for _ in range(count)]
    arrays, _ = model.validate(inputs)
    outputs = model.call_signature("activations", arrays)
    described = (model.metadata.get("explain") or {}).get("layers")
    if not described:  # the signature's own names, bags first
        names = sorted({key.split("__")[0] for key in outputs})
        described = [
            {"name": n, "kind": "bag" if f"{n}__terms" in outputs else "dense"} for n in names
        ]
    items: list[list[dict]] = []
    for i in range(count):
        layers = []
        for layer in described:
            name, kind = layer["name"], layer.get("kind", "dense")
            if kind == "bag":
                terms = outputs[f"{name}__terms"][i]
                weights = outputs[f"{name}__values"][i]
                top = [
                    {"term": _text(term), "value": round(float(weight), 5)}
                    for term, weight in zip(terms, weights, strict=True)
                    if weight > 0
                ]
                layers.append(
                    {"name": name, "kind": kind, "shape": layer.get("shape"), "top_terms": top}
                )
            else:
                values = outputs[name][i]
                layers.append(
                    {
                        "name": name,
                        "kind": kind,
                        "shape": list(values.shape),
                        "values": np.round(values.astype(np.float64), 5).tolist(),
                    }
                )
        items.append(layers)
    return items


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def explain_texts(model: ServedModel, texts: list[str], max_tokens: int) -> list[dict[str, Any]]:
    """Per text: P(positive), each token's occlusion contribution, and the model's layers."""
    input_name = next(iter(model.inputs))
    layers = feature_layers(model, {input_name: list(texts)}, len(texts))
    results = []
    for i, text in enumerate(texts):
        words = tokens(text)
        if len(words) > max_tokens:
            raise InvalidInputError(
                f"text {i} has {len(words)} tokens, more than the limit of {max_tokens} "
                "(max_explain_tokens)",
                field=f"texts[{i}]",
            )
        variants = [text] + [" ".join(words[:k] + words[k + 1 :]) for k in range(len(words))]
        scores = positive_probability(model, {input_name: variants})
        odds = log_odds(scores)
        results.append(
            {
                "score": float(scores[0]),
                "tokens": [
                    {
                        "token": word,
                        "contribution": round(float(scores[0] - scores[k + 1]), 5),
                        "log_odds_contribution": round(float(odds[0] - odds[k + 1]), 4),
                    }
                    for k, word in enumerate(words)
                ],
                "activations": layers[i],
            }
        )
    return results


def explain_rows(
    model: ServedModel, inputs: dict[str, list | np.ndarray], count: int
) -> list[dict[str, Any]]:
    """Per row: P(positive) and each column's occlusion contribution (the column at its
    default from the metadata), and the model's layers."""
    columns = model.metadata.get("columns") or {}
    layers = feature_layers(model, inputs, count)
    results = []
    for row in range(count):
        values = {name: column[row] for name, column in inputs.items()}
        variants: dict[str, list] = {name: [value] for name, value in values.items()}
        occluded = []
        for name in inputs:
            baseline = columns.get(name, {}).get("default")
            if baseline is None:
                continue
            occluded.append((name, baseline))
            for other, value in values.items():
                variants[other].append(baseline if other == name else value)
        # validate() converts each column to its signature dtype, as for a request.
        scores = positive_probability(model, variants)
        odds = log_odds(scores)
        results.append(
            {
                "score": float(scores[0]),
                "features": sorted(
                    (
                        {
                            "feature": name,
                            "value": _plain(values[name]),
                            "baseline": _plain(baseline),
                            "contribution": round(float(scores[0] - scores[k + 1]), 5),
                            "log_odds_contribution": round(float(odds[0] - odds[k + 1]), 4),
                        }
                        for k, (name, baseline) in enumerate(occluded)
                    ),
                    key=lambda f: -abs(f["contribution"]),
                ),
                "activations": layers[row],
            }
        )
    return results


def _plain(value: Any) -> Any:
    """A value for the reply: float32 inputs without their binary noise (70.35, not 70.3499...)."""
    if isinstance(value, float | np.floating):
        return float(f"{float(value):.7g}")
    return value
