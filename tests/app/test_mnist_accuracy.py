"""The committed ``mnist`` model classifies held-out MNIST test digits at >= 98.5 % through
``:predict`` (the issue's acceptance target). Deselect with ``-m 'not slow'``."""

from __future__ import annotations

import numpy as np
import pytest

N_DIGITS = 200
TARGET_ACCURACY = 0.985


@pytest.mark.slow
def test_mnist_accuracy_through_predict(mnist_client, mnist_test_digits):
    x, y = mnist_test_digits
    # A fixed, class-stratified-enough sample: every 5th test digit (test split never trained on).
    x, y = x[::5][:N_DIGITS], y[::5][:N_DIGITS]
    predictions = []
    for start in range(0, N_DIGITS, 50):  # several requests, as clients would send them
        batch = x[start : start + 50, ..., None].tolist()
        reply = mnist_client.post("/v1/models/mnist:predict", json={"instances": batch})
        assert reply.status_code == 200, reply.text
        predictions.append(np.asarray(reply.json()["predictions"]))
    accuracy = float((np.concatenate(predictions).argmax(axis=1) == y).mean())
    print(f"mnist accuracy on {N_DIGITS} held-out test digits: {accuracy:.3f}")
    assert accuracy >= TARGET_ACCURACY


def test_served_mnist_is_deterministic(mnist_client, mnist_test_digits):
    """The same digits twice give the same probabilities: the exported graph must run in
    inference mode (random augmentation and dropout off)."""
    x, _ = mnist_test_digits
    body = {"instances": x[:32, ..., None].tolist()}
    first, second = (
        np.asarray(mnist_client.post("/v1/models/mnist:predict", json=body).json()["predictions"])
        for _ in range(2)
    )
    np.testing.assert_allclose(
        first,
        second,
        atol=1e-5,
        err_msg="models/mnist answers differently to the same input: was it exported with its "
        "augmentation layers active (model.export calls the model without training=False)?",
    )
