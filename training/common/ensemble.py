"""Seed ensembles served as one graph: the members' class probabilities averaged in the model."""

from __future__ import annotations

import keras


def average(members: list[keras.Model], *, name: str, mirror: bool = False) -> keras.Model:
    """One model that averages ``members``' class probabilities on the same raw input.

    ``mirror`` also averages over the horizontally flipped image (test-time augmentation for
    pictures whose left and right mean the same), so it doubles the cost per image.
    """
    spec = members[0].inputs[0]
    inputs = keras.Input(shape=spec.shape[1:], dtype=spec.dtype, name=spec.name.split(":")[0])
    views = [inputs, keras.ops.flip(inputs, axis=2)] if mirror else [inputs]
    outputs = [member(view, training=False) for member in members for view in views]
    if len(outputs) == 1:
        return keras.Model(inputs, outputs[0], name=name)
    return keras.Model(inputs, keras.layers.Average(name="probabilities")(outputs), name=name)
