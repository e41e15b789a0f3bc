"""Seed ensembles served as one graph: the members' class probabilities averaged in the model."""

from __future__ import annotations

import keras
import numpy as np


def average(members: list[keras.Model], *, name: str, mirror: bool = False) -> keras.Model:
    """One model that averages ``members``' class probabilities on the same raw input.

    ``mirror`` also averages over the horizontally flipped image (test-time augmentation for
    pictures whose left and right mean the same), so it doubles the cost per image.
    """
    inputs = _input_like(members[0])
    views = [inputs, keras.ops.flip(inputs, axis=2)] if mirror else [inputs]
    outputs = [member(view, training=False) for member in members for view in views]
    if len(outputs) == 1:
        return keras.Model(inputs, outputs[0], name=name)
    return keras.Model(inputs, keras.layers.Average(name="probabilities")(outputs), name=name)


def _input_like(model: keras.Model):
    """A new input with the shape, dtype and name of ``model``'s (the served input's name)."""
    spec = model.inputs[0]
    return keras.Input(shape=spec.shape[1:], dtype=spec.dtype, name=spec.name.split(":")[0])


# Weightless layers that act on each channel alone: after the shared first convolution they can
# run once on every member's channels before the channels are split between the members.
_CHANNELWISE = (
    keras.layers.MaxPooling2D,
    keras.layers.AveragePooling2D,
    keras.layers.Activation,
    keras.layers.ReLU,
)


def fused_average(members: list[keras.Model], *, name: str) -> keras.Model:
    """``average(members)`` with the members' first convolutions run as one.

    For chain-shaped members that start with the same weightless layers (scaling, augmentation)
    and then a Conv2D: one Conv2D holds every member's filters side by side, then each member's
    remaining layers run on its own slice of the channels. The answers are the same as
    ``average``'s; the cost is not: on a CPU a convolution over a one-channel image costs far
    more per pixel than per filter, so one 96-filter pass is much cheaper than three 32-filter
    passes (mnist's three nets: about 30 % less CPU per digit).
    """
    chains = [_chain(member) for member in members]
    first = [_first_conv(chain, member.name) for chain, member in zip(chains, members, strict=True)]
    stem = chains[0][: first[0]]
    for chain, at in zip(chains[1:], first[1:], strict=True):
        if at != first[0] or not all(map(_same_weightless, stem, chain[:at])):
            raise ValueError("members differ before their first convolution: cannot fuse")
    convs = [chain[at] for chain, at in zip(chains, first, strict=True)]
    config = convs[0].get_config()
    if any(
        _without(c.get_config(), "name", "filters") != _without(config, "name", "filters")
        for c in convs
    ):
        raise ValueError("members' first convolutions differ in more than filters: cannot fuse")

    inputs = _input_like(members[0])
    x = inputs
    for layer in stem:
        x = layer(x, training=False)
    shared = keras.layers.Conv2D.from_config(
        config | {"name": "shared_first_conv", "filters": sum(c.filters for c in convs)}
    )
    x = shared(x)
    kernels_and_biases = zip(*(c.get_weights() for c in convs), strict=True)
    shared.set_weights([np.concatenate(parts, axis=-1) for parts in kernels_and_biases])
    rest = [chain[at + 1 :] for chain, at in zip(chains, first, strict=True)]
    while all(r and isinstance(r[0], _CHANNELWISE) for r in rest) and all(
        _same_weightless(rest[0][0], r[0]) for r in rest
    ):
        x = rest[0][0](x)
        rest = [r[1:] for r in rest]

    outputs, start = [], 0
    for member, conv, layers in zip(members, convs, rest, strict=True):
        outputs.append(_tail(member, layers)(x[..., start : start + conv.filters]))
        start += conv.filters
    return keras.Model(inputs, keras.layers.Average(name="probabilities")(outputs), name=name)


def _tail(member: keras.Model, layers: list[keras.layers.Layer]) -> keras.Model:
    """The member's ``layers`` (its own weights) as a model of their own, named after the
    member: layer names repeat across members and must be unique within each model."""
    inputs = keras.Input(shape=layers[0].input.shape[1:], dtype=layers[0].input.dtype)
    x = inputs
    for layer in layers:
        x = layer(x, training=False)
    return keras.Model(inputs, x, name=f"{member.name}_after_first_conv")


def _chain(member: keras.Model) -> list[keras.layers.Layer]:
    """The member's layers after its input, checked to form one chain."""
    layers = [layer for layer in member.layers if not isinstance(layer, keras.layers.InputLayer)]
    previous = member.inputs[0]
    for layer in layers:
        if layer.input is not previous:
            raise ValueError(f"{member.name}: not a chain of layers at {layer.name}: cannot fuse")
        previous = layer.output
    return layers


def _first_conv(chain: list[keras.layers.Layer], member: str) -> int:
    for at, layer in enumerate(chain):
        if isinstance(layer, keras.layers.Conv2D):
            return at
        if layer.weights:
            break
    raise ValueError(f"{member}: no Conv2D after weightless layers: cannot fuse")


def _same_weightless(a: keras.layers.Layer, b: keras.layers.Layer) -> bool:
    return (
        type(a) is type(b)
        and not a.weights
        and _without(a.get_config(), "name", "seed") == _without(b.get_config(), "name", "seed")
    )


def _without(config: dict, *keys: str) -> dict:
    return {k: v for k, v in config.items() if k not in keys}
