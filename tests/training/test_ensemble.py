"""The served seed ensemble averages its members' probabilities, optionally with the mirror;
``fused_average`` gives the same answers with the members' first convolutions run as one."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from training import mnist, simpsons
from training.common.ensemble import average, fused_average
from training.common.export import serving_model, write_saved_model


def test_ensemble_averages_member_probabilities():
    members = [mnist.make_model("convnet", name=f"m{i}") for i in range(2)]
    pixels = np.random.default_rng(1).integers(0, 256, (4, 28, 28, 1), dtype=np.uint8)
    expected = np.mean([m.predict(pixels, verbose=0) for m in members], axis=0)
    served = average(members, name="ensemble")
    np.testing.assert_allclose(served.predict(pixels, verbose=0), expected, atol=1e-6)
    assert served.input.dtype == "uint8" and served.input.name == "pixels"


def test_mirror_averages_over_the_flipped_picture():
    members = [simpsons.make_model(3, name=f"s{i}") for i in range(2)]
    pixels = np.random.default_rng(2).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    flipped = pixels[:, :, ::-1]
    expected = np.mean(
        [m.predict(x, verbose=0) for m in members for x in (pixels, flipped)], axis=0
    )
    served = average(members, name="tta", mirror=True)
    np.testing.assert_allclose(served.predict(pixels, verbose=0), expected, atol=1e-6)
    # A mirrored picture gets the same answer.
    np.testing.assert_allclose(served.predict(flipped, verbose=0), expected, atol=1e-6)


def test_fused_average_answers_as_the_average_with_one_first_convolution(tmp_path):
    members = []
    for seed in range(3):
        keras.utils.set_random_seed(seed)  # members with different weights
        members.append(mnist.make_model("convnet", name=f"m{seed}"))
    pixels = np.random.default_rng(3).integers(0, 256, (5, 28, 28, 1), dtype=np.uint8)
    expected = average(members, name="ensemble").predict(pixels, verbose=0)

    fused = fused_average(members, name="fused")
    np.testing.assert_allclose(fused.predict(pixels, verbose=0), expected, atol=1e-6)
    convs = [layer for layer in fused.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [96]
    assert len(fused.weights) == 2 + 3 * (len(members[0].weights) - 2)  # no dropped copies

    # It exports and serves the same answers.
    write_saved_model(serving_model(fused), tmp_path)
    serve = tf.saved_model.load(str(tmp_path)).signatures["serving_default"]
    np.testing.assert_allclose(
        serve(pixels=tf.constant(pixels))["output_0"].numpy(), expected, atol=1e-6
    )


def test_fused_average_refuses_members_that_start_differently():
    with pytest.raises(ValueError, match="before their first convolution"):
        fused_average([mnist.make_model("convnet"), mnist.make_model("course")], name="mixed")
