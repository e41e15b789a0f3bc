"""A real ``python -m app`` process on a free port, serving the committed ``mnist`` and a
tiny deterministic model, driven by plain HTTP and by Triton's client (``tritonclient.http``)."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from tests.app.serving_process import REPO_ROOT, start_server, stop_server


@pytest.fixture(scope="module")
def server_url(tiny_models_dir, tmp_path_factory):
    models = tmp_path_factory.mktemp("server_models")
    (models / "mnist").symlink_to(REPO_ROOT / "models" / "mnist")
    (models / "tiny_image").symlink_to(tiny_models_dir / "tiny_image")
    process, url = start_server(models)
    try:
        yield url
    finally:
        stop_server(process)


@pytest.fixture(scope="module")
def digits(mnist_test_digits):
    x, y = mnist_test_digits
    return x[:16, ..., None], y[:16]


def test_tf_serving_predict_over_http(server_url, digits):
    x, y = digits
    reply = httpx.post(
        f"{server_url}/v1/models/mnist:predict", json={"instances": x[:4].tolist()}, timeout=30
    )
    assert reply.status_code == 200
    predictions = np.asarray(reply.json()["predictions"])
    assert predictions.shape == (4, 10)
    assert (predictions.argmax(axis=1) == y[:4]).mean() >= 0.75


def test_tritonclient_against_the_running_server(server_url, digits):
    import tritonclient.http as triton

    x, y = digits
    client = triton.InferenceServerClient(server_url.removeprefix("http://"))
    try:
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready("mnist")
        metadata = client.get_model_metadata("mnist")
        assert metadata["inputs"][0] == {
            "name": "pixels",
            "datatype": "UINT8",
            "shape": [-1, 28, 28, 1],
        }
        assert client.get_server_metadata()["name"]

        # Binary tensors both ways (the client's defaults).
        tensor = triton.InferInput("pixels", list(x.shape), "UINT8")
        tensor.set_data_from_numpy(x)
        probabilities = client.infer("mnist", [tensor]).as_numpy("output_0")
        # Top-3 classification extension.
        top = triton.InferRequestedOutput("output_0", binary_data=True, class_count=3)
        classes = client.infer("mnist", [tensor], outputs=[top]).as_numpy("output_0")
    finally:
        client.close()
    assert probabilities.shape == (16, 10)
    assert (probabilities.argmax(axis=1) == y).mean() >= 0.8
    assert classes.shape == (16, 3)
    assert all(c.decode().split(":")[2] in "0123456789" for c in classes.ravel())


def test_tritonclient_binary_and_json_tensors_agree(server_url):
    import tritonclient.http as triton

    x = np.stack([np.full((8, 8, 1), v, dtype=np.uint8) for v in (20, 128, 240, 60)])
    client = triton.InferenceServerClient(server_url.removeprefix("http://"))
    try:
        tensor = triton.InferInput("pixels", list(x.shape), "UINT8")
        tensor.set_data_from_numpy(x)
        binary = client.infer("tiny_image", [tensor]).as_numpy("output_0")
        tensor = triton.InferInput("pixels", list(x.shape), "UINT8")
        tensor.set_data_from_numpy(x, binary_data=False)
        output = triton.InferRequestedOutput("output_0", binary_data=False)
        as_json = client.infer(
            "tiny_image", [tensor], outputs=[output], model_version="1"
        ).as_numpy("output_0")
        # tritonclient's compressed requests and responses (Content-Encoding / Accept-Encoding)
        tensor = triton.InferInput("pixels", list(x.shape), "UINT8")
        tensor.set_data_from_numpy(x)
        compressed = {}
        for algorithm in ("gzip", "deflate"):
            compressed[algorithm] = client.infer(
                "tiny_image",
                [tensor],
                request_compression_algorithm=algorithm,
                response_compression_algorithm="gzip",
            ).as_numpy("output_0")
    finally:
        client.close()
    for result in compressed.values():
        np.testing.assert_array_equal(result, binary)
    assert binary.argmax(axis=1).tolist() == [2, 1, 0, 2]  # version 2: the mirrored one
    assert as_json.argmax(axis=1).tolist() == [0, 1, 2, 0]  # version 1, as asked
    np.testing.assert_allclose(binary[:, ::-1], as_json, rtol=1e-4, atol=1e-6)


def test_metrics_of_the_running_server(server_url):
    text = httpx.get(f"{server_url}/metrics", timeout=10).text
    assert 'serving_batch_size_count{model="mnist"}' in text
    assert "process_cpu_seconds_total" in text
