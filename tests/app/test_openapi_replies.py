"""What the OpenAPI document says each reply is, against the replies themselves: the protocol
routes (documented by hand in ``app/api/protocol_route.py``), the metrics and the report plots.
(The typed endpoints' replies: ``tasks/test_schemathesis.py`` and ``test_explain.py``.)"""

from __future__ import annotations

import jsonschema
import numpy as np
import pytest

from app.examples import SEVEN_PIXELS

V1 = "/v1/models/{name}:{method}"
V2 = "/v2/models/{name}/infer"
SEVEN_V2 = {
    "name": "pixels",
    "shape": [1, 28, 28, 1],
    "datatype": "UINT8",
    "data": np.ravel(SEVEN_PIXELS).tolist(),
}


@pytest.fixture(scope="module")
def paths(mnist_client):
    return mnist_client.get("/openapi.json").json()["paths"]


def assert_documented(paths, template: str, method: str, reply) -> None:
    """``reply``'s status and media type are documented for the operation, and a JSON reply
    validates against the documented schema."""
    responses = paths[template][method]["responses"]
    assert str(reply.status_code) in responses, (template, reply.status_code)
    content = responses[str(reply.status_code)]["content"]
    media_type = reply.headers["content-type"].split(";")[0]
    assert media_type in content, (template, media_type, list(content))
    if media_type == "application/json":
        jsonschema.validate(reply.json(), content[media_type]["schema"])


@pytest.mark.parametrize(
    ("url", "body"),
    [
        ("/v1/models/mnist:predict", {"instances": [SEVEN_PIXELS]}),
        ("/v1/models/mnist:predict", {"inputs": [SEVEN_PIXELS]}),  # columnar: "outputs"
        ("/v1/models/mnist:explain", {"instances": [SEVEN_PIXELS]}),
        ("/v1/models/nope:predict", {"instances": [SEVEN_PIXELS]}),  # 404
        ("/v1/models/mnist:predict", {"instances": [[1, 2]]}),  # 400
    ],
)
def test_tf_serving_replies_are_as_documented(mnist_client, paths, url, body):
    reply = mnist_client.post(url, json=body)
    assert_documented(paths, V1, "post", reply)


def test_tf_serving_reply_keys(mnist_client):
    row = mnist_client.post("/v1/models/mnist:predict", json={"instances": [SEVEN_PIXELS]})
    columnar = mnist_client.post("/v1/models/mnist:predict", json={"inputs": [SEVEN_PIXELS]})
    assert list(row.json()) == ["predictions"] and list(columnar.json()) == ["outputs"]


@pytest.mark.parametrize(
    "body",
    [
        {"inputs": [SEVEN_V2]},
        {"id": "request-1", "inputs": [SEVEN_V2]},
        {
            "inputs": [SEVEN_V2],
            "outputs": [{"name": "output_0", "parameters": {"binary_data": True}}],
        },
        {"inputs": [{**SEVEN_V2, "shape": [1, 28, 28]}]},  # 400
    ],
)
def test_kserve_replies_are_as_documented(mnist_client, paths, body):
    reply = mnist_client.post("/v2/models/mnist/infer", json=body)
    assert_documented(paths, V2, "post", reply)
    if "id" in body:
        assert reply.json()["id"] == body["id"]


def test_metrics_and_plots_are_documented_as_what_they_are(mnist_client, paths):
    metrics = mnist_client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert_documented(paths, "/metrics", "get", metrics)
    report = mnist_client.get("/v1/models/mnist/versions/4/report").json()
    plot = mnist_client.get(report["plots"]["confusion_matrix"])
    assert plot.status_code == 200 and plot.content.startswith(b"\x89PNG")
    assert_documented(paths, "/v1/models/{name}/versions/{version}/report/{plot}", "get", plot)
