"""The served ``mnist`` model classifies the official 10,000 MNIST test digits (written by other
people than the training digits) at >= 99.3 % through ``:predict``, and at the accuracy its
``metadata.json`` claims. Deselect with ``-m 'not slow'``."""

from __future__ import annotations

import numpy as np
import pytest

TARGET_ACCURACY = 0.993
REQUEST_SIZE = 1000


def served_metadata_accuracy(client) -> float:
    """The test accuracy the default version's metadata.json claims (read from its folder)."""
    import json

    from tests.paths import REPO_ROOT

    version = client.get("/v1/models/mnist").json()["model_version_status"][0]["version"]
    metadata = json.loads((REPO_ROOT / "models" / "mnist" / version / "metadata.json").read_text())
    return metadata["metrics"]["accuracy"]


@pytest.mark.slow
def test_mnist_accuracy_through_predict(mnist_client, mnist_test_digits):
    x, y = mnist_test_digits
    predictions = []
    for start in range(0, len(x), REQUEST_SIZE):  # several requests, as clients would send them
        batch = x[start : start + REQUEST_SIZE, ..., None].tolist()
        reply = mnist_client.post("/v1/models/mnist:predict", json={"instances": batch})
        assert reply.status_code == 200, reply.text
        predictions.append(np.asarray(reply.json()["predictions"]))
    accuracy = float((np.concatenate(predictions).argmax(axis=1) == y).mean())
    print(f"mnist accuracy on {len(x)} official test digits: {accuracy:.4f}")
    assert len(x) == 10_000
    assert abs(accuracy - served_metadata_accuracy(mnist_client)) < 0.001
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
