"""Explanation signatures for the image CNNs (course 000, exercises 7 and 9), exported as a new
version beside ``serving_default``, so the server explains without any Keras code.

``python -m training.explain mnist [--from-version 3]`` rebuilds the served version's network
with the module's own ``make_model``, copies its weights in (``load_exported_weights``), checks
that the rebuilt graph answers exactly as the served one, and exports the next version with:

- ``activations(pixels)``: the output of every convolution block (after its batch norm and
  activation, where it has them), named ``conv_1``, ``conv_2``, ... and of the hidden dense
  layer (``dense``): what the network sees at each stage (exercise 7).
- ``gradcam(pixels)``: Grad-CAM (Selvaraju et al. 2017) of the predicted class at the last
  convolution block: ``heatmap`` ``(N, h, w)`` in [0, 1] (the block's resolution; the server
  scales it to the image), ``class_index`` ``(N,)`` and ``probability`` ``(N,)``. The gradient
  is that of the class's log-probability, which does not vanish when the softmax saturates.

The weights, the metrics and the plots are the source version's (the metadata says so); only
the signatures are new. Versions are immutable, so this is a new version, never a rewrite.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import shutil
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from training.common import manifest
from training.common.export import (
    input_signature,
    load_exported_weights,
    next_version,
    serving_model,
    write_metadata,
    write_saved_model,
)
from training.config import DEFAULT_OUT_DIR

IMAGE_MODELS = ("mnist", "fashion_mnist", "greek_symbols", "chest_xray")
_BLOCK_TAIL = (keras.layers.BatchNormalization, keras.layers.Activation, keras.layers.ReLU)


def rebuild(name: str, version_dir: Path) -> keras.Model:
    """The version's network, built by its training module, with the version's weights."""
    metadata = json.loads((version_dir / "metadata.json").read_text())
    module = importlib.import_module(f"training.{name}")
    variant = metadata.get("variant")
    model = module.make_model(variant) if variant else module.make_model()
    return load_exported_weights(model, version_dir)


def conv_blocks(model: keras.Model) -> list[keras.layers.Layer]:
    """The last layer of each convolution block: a Conv2D and the batch norm / activation
    layers right after it."""
    blocks: list[keras.layers.Layer] = []
    in_block = False
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            blocks.append(layer)
            in_block = True
        elif in_block and isinstance(layer, _BLOCK_TAIL):
            blocks[-1] = layer
        else:
            in_block = False
    if not blocks:
        raise ValueError(f"{model.name} has no convolution: Grad-CAM needs one")
    return blocks


def hidden_dense(model: keras.Model) -> dict[str, keras.KerasTensor]:
    """The output of every Dense layer but the classifier (the one that makes the model's
    output), by position ("dense", "dense_2", ...) unless it was named on purpose (the gated
    sentiment model's "language_gate", "expert_es", ...)."""
    outputs = keras.tree.flatten(model.outputs)
    hidden = [
        layer
        for layer in model.layers
        if isinstance(layer, keras.layers.Dense) and not any(layer.output is o for o in outputs)
    ]
    named = {}
    for i, layer in enumerate(hidden):
        positional = "dense" if i == 0 else f"dense_{i + 1}"
        named[positional if re.fullmatch(r"dense(_\d+)?", layer.name) else layer.name] = (
            layer.output
        )
    return named


def explain_functions(model: keras.Model) -> dict[str, tf.types.experimental.Function]:
    """``activations`` and ``gradcam`` as tf.functions over the model's variables."""
    blocks = conv_blocks(model)
    named = {f"conv_{i + 1}": layer.output for i, layer in enumerate(blocks)}
    named |= hidden_dense(model)
    activation_model = keras.Model(model.inputs, named, name=f"{model.name}_activations")
    gradcam_model = keras.Model(model.inputs, [blocks[-1].output, model.output])
    spec = tf.TensorSpec((None, *model.input.shape[1:]), model.input.dtype, name="pixels")

    @tf.function(input_signature=[spec])
    def activations(pixels):
        return activation_model(pixels, training=False)

    @tf.function(input_signature=[spec])
    def gradcam(pixels):
        with tf.GradientTape() as tape:
            features, probabilities = gradcam_model(pixels, training=False)
            probabilities = tf.cast(probabilities, tf.float32)
            if probabilities.shape[-1] == 1:  # a sigmoid: the two classes' probabilities
                probabilities = tf.concat([1.0 - probabilities, probabilities], axis=-1)
            class_index = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
            probability = tf.gather(probabilities, class_index, batch_dims=1)
            score = tf.math.log(probability + 1e-12)
        gradients = tape.gradient(score, features)
        weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
        heatmap = tf.nn.relu(tf.reduce_sum(weights * features, axis=-1))
        heatmap /= tf.reduce_max(heatmap, axis=(1, 2), keepdims=True) + 1e-12
        return {"heatmap": heatmap, "class_index": class_index, "probability": probability}

    return {"activations": activations, "gradcam": gradcam}


# ---- text and tabular models: what each layer holds for the input (exercise 7) --------------
TOP_TERMS = 20  # a bag's strongest terms per text: its other entries are mostly zeros
_BAG_MODES = ("count", "tf_idf", "multi_hot")


def bag_layers(model: keras.Model) -> list[tuple[str, keras.KerasTensor, list[str]]]:
    """``(name, output, vocabulary)`` of each text bag: a TextVectorization counting terms,
    read after the layer that weights its terms (TF-IDF), if one follows it at the same width
    (a Dropout is skipped: it is the identity when served)."""
    bags = []
    for layer in model.layers:
        if not isinstance(layer, keras.layers.TextVectorization):
            continue
        if layer.get_config()["output_mode"] not in _BAG_MODES:
            continue
        output = layer.output
        for other in model.layers:
            if isinstance(other, keras.layers.Dropout | keras.layers.InputLayer):
                continue
            try:
                consumes = any(t is layer.output for t in keras.tree.flatten(other.input))
            except (AttributeError, ValueError):
                continue
            if consumes and other.output.shape[-1] == output.shape[-1]:
                output = other.output
        bags.append((layer.name, output, [str(t) for t in layer.get_vocabulary()]))
    return bags


def feature_activations(model: keras.Model) -> tuple[tf.types.experimental.Function, list]:
    """``activations(inputs)`` for a text or tabular model, over the serving signature's inputs,
    and the list of layers it returns (for ``metadata.json["explain"]["layers"]``), in order:

    - each text bag's ``TOP_TERMS`` strongest terms: ``<bag>__terms`` (strings) and
      ``<bag>__values`` (their weights after TF-IDF), per text;
    - the tabular feature vector (the Concatenate of the encoded columns);
    - each hidden Dense layer's output.
    """
    named: dict[str, keras.KerasTensor] = {}
    layers: list[dict] = []
    bags: dict[str, tuple[tf.Tensor, int]] = {}  # name -> (vocabulary, terms shown)
    for name, output, vocabulary in bag_layers(model):
        named[name] = output
        top = min(TOP_TERMS, len(vocabulary))
        bags[name] = (tf.constant(vocabulary), top)
        layers.append({"name": name, "kind": "bag", "shape": [len(vocabulary)], "top": top})
    concatenations = [c for c in model.layers if isinstance(c, keras.layers.Concatenate)]
    for layer in concatenations if not named else []:  # a text model's joined bags: shown above
        named[layer.name] = layer.output
        layers.append({"name": layer.name, "kind": "features", "shape": [layer.output.shape[-1]]})
    for layer in model.layers:  # a recurrent text model's summary of the sequence
        if isinstance(layer, keras.layers.LSTM | keras.layers.GRU):
            named[layer.name] = layer.output
            layers.append({"name": layer.name, "kind": "dense", "shape": [layer.output.shape[-1]]})
    for name, output in hidden_dense(model).items():
        named[name] = output
        layers.append({"name": name, "kind": "dense", "shape": [output.shape[-1]]})
    if not named:
        raise ValueError(f"{model.name} has no intermediate layer to show")
    activation_model = keras.Model(model.inputs, named, name=f"{model.name}_activations")

    @tf.function(input_signature=[input_signature(model)])
    def activations(inputs):
        outputs = activation_model(inputs, training=False)
        result = {}
        for name, value in outputs.items():
            if name in bags:
                vocabulary, top = bags[name]
                values, indices = tf.math.top_k(tf.cast(value, tf.float32), k=top)
                result[f"{name}__terms"] = tf.gather(vocabulary, indices)
                result[f"{name}__values"] = values
            else:
                result[name] = tf.cast(value, tf.float32)
        return result

    return activations, layers


def feature_explain_metadata(layers: list[dict]) -> dict:
    """``metadata.json["explain"]`` for a text or tabular model (docs/CONTRACTS.md)."""
    return {
        "layers": layers,
        "method": "activations of the model's intermediate layers for the input: a text bag "
        f"as its {TOP_TERMS} strongest terms (TF-IDF weights), the encoded feature vector, each "
        "hidden dense layer; attributions by occlusion in the server",
    }


def explain_metadata(functions: dict) -> dict:
    """What ``metadata.json["explain"]`` says of the signatures (docs/CONTRACTS.md)."""
    outputs = functions["activations"].get_concrete_function().structured_outputs
    return {
        "activations": {k: [None, *v.shape[1:]] for k, v in sorted(outputs.items())},
        "gradcam": {"layer": sorted(k for k in outputs if k.startswith("conv_"))[-1]},
        "method": "Grad-CAM of the predicted class's log-probability at the last "
        "convolution block; activations after each block's batch norm and activation",
    }


def check_same_answers(model: keras.Model, version_dir: Path, seed: int = 0) -> float:
    """The largest difference between the rebuilt model and the served SavedModel on random
    images; an error when they disagree (then the weights did not land where they belong)."""
    served = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    shape = (64, *model.input.shape[1:])
    pixels = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    expected = next(iter(served(pixels=tf.constant(pixels)).values())).numpy()
    got = np.asarray(serving_model(model)(pixels, training=False))
    difference = float(np.max(np.abs(expected - got)))
    if difference > 1e-4:
        raise ValueError(f"rebuilt model differs from {version_dir} by {difference}")
    return difference


def export_explainable(name: str, models_dir: Path, from_version: int | None = None) -> Path:
    source_version = from_version or next_version(models_dir / name) - 1
    source = models_dir / name / str(source_version)
    model = rebuild(name, source)
    difference = check_same_answers(model, source)
    version = next_version(models_dir / name)
    target = models_dir / name / str(version)
    functions = explain_functions(model)
    write_saved_model(serving_model(model), target, extra_endpoints=functions)

    metadata = json.loads((source / "metadata.json").read_text())
    for plot in (metadata.get("plots") or {}).values():
        shutil.copy2(source / plot, target / plot)
    metadata |= {
        "version": version,
        "explain": explain_metadata(functions),
        "derived_from": {
            "version": source_version,
            "note": f"the weights of version {source_version}, re-exported with the 'activations' "
            "and 'gradcam' signatures (python -m training.explain); its metrics and plots are "
            "that version's: the rebuilt graph answers as it does (largest difference on 64 "
            f"random images: {difference:.1e})",
        },
    }
    write_metadata(target, metadata)
    manifest.record(models_dir, name, version)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="+", choices=IMAGE_MODELS)
    parser.add_argument("--models-dir", type=Path, default=DEFAULT_OUT_DIR)
    parser.add_argument("--from-version", type=int, default=None, help="default: the highest")
    args = parser.parse_args(argv)
    for name in args.names:
        path = export_explainable(name, args.models_dir, args.from_version)
        print(f"{name}: exported to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
