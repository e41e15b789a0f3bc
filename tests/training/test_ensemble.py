"""The served seed ensemble averages its members' probabilities, optionally with the mirror."""

from __future__ import annotations

import numpy as np

from training import mnist, simpsons
from training.common.ensemble import average


def test_ensemble_averages_member_probabilities():
    members = [mnist.make_model("convnet", name=f"m{i}") for i in range(2)]
    pixels = np.random.default_rng(1).integers(0, 256, (4, 28, 28, 1), dtype=np.uint8)
    expected = np.mean([m.predict(pixels, verbose=0) for m in members], axis=0)
    served = average(members, name="ensemble")
    np.testing.assert_allclose(served.predict(pixels, verbose=0), expected, atol=1e-6)
    assert served.input.dtype == "uint8" and served.input.name == "pixels"


def test_mirror_averages_over_the_flipped_picture():
    members = [simpsons.make_model(3, name=f"s{i}") for i in range(2)]
    pixels = np.random.default_rng(2).integers(0, 256, (4, 28, 28, 3), dtype=np.uint8)
    flipped = pixels[:, :, ::-1]
    expected = np.mean(
        [m.predict(x, verbose=0) for m in members for x in (pixels, flipped)], axis=0
    )
    served = average(members, name="tta", mirror=True)
    np.testing.assert_allclose(served.predict(pixels, verbose=0), expected, atol=1e-6)
    # A mirrored picture gets the same answer.
    np.testing.assert_allclose(served.predict(flipped, verbose=0), expected, atol=1e-6)
