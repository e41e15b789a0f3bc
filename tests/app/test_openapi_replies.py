"""What the OpenAPI document says each reply is, against the replies themselves: the protocols'
inference routes (documented by hand in ``app/api/protocol_route.py``), their status, metadata,
report and repository routes (``app/api/status_replies.py``), the metrics and the report plots.
(The typed endpoints' replies: ``tasks/test_schemathesis.py`` and ``test_explain.py``.)"""

from __future__ import annotations

import jsonschema
import numpy as np
import pytest

from app.examples import SEVEN_PIXELS
from tests.app.openapi_replies import assert_documented

V1 = "/v1/models/{name}:{method}"
V2 = "/v2/models/{name}/infer"
SEVEN_V2 = {
    "name": "pixels",
    "shape": [1, 28, 28, 1],
    "datatype": "UINT8",
    "data": np.ravel(SEVEN_PIXELS).tolist(),
}


@pytest.fixture(scope="module")
def openapi(mnist_client):
    return mnist_client.get("/openapi.json").json()


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
def test_tf_serving_replies_are_as_documented(mnist_client, openapi, url, body):
    reply = mnist_client.post(url, json=body)
    assert_documented(openapi, V1, "post", reply)


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
def test_kserve_replies_are_as_documented(mnist_client, openapi, body):
    reply = mnist_client.post("/v2/models/mnist/infer", json=body)
    assert_documented(openapi, V2, "post", reply)
    if "id" in body:
        assert reply.json()["id"] == body["id"]


def test_metrics_and_plots_are_documented_as_what_they_are(mnist_client, openapi):
    metrics = mnist_client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert_documented(openapi, "/metrics", "get", metrics)
    report = mnist_client.get("/v1/models/mnist/versions/4/report").json()
    plot = mnist_client.get(report["plots"]["confusion_matrix"])
    assert plot.status_code == 200 and plot.content.startswith(b"\x89PNG")
    assert_documented(openapi, "/v1/models/{name}/versions/{version}/report/{plot}", "get", plot)


@pytest.mark.parametrize(
    ("url", "template", "status"),
    [
        ("/v1/models", "/v1/models", 200),
        ("/healthz", "/healthz", 200),
        ("/v1/models/mnist", "/v1/models/{name}", 200),
        ("/v1/models/mnist/versions/4", "/v1/models/{name}/versions/{version}", 200),
        ("/v1/models/mnist/metadata", "/v1/models/{name}/metadata", 200),
        (
            "/v1/models/mnist/versions/1/metadata",
            "/v1/models/{name}/versions/{version}/metadata",
            200,
        ),
        ("/v2", "/v2", 200),
        ("/v2/health/live", "/v2/health/live", 200),
        ("/v2/health/ready", "/v2/health/ready", 200),
        ("/v2/models/mnist", "/v2/models/{name}", 200),
        ("/v2/models/mnist/versions/4", "/v2/models/{name}/versions/{version}", 200),
        ("/v2/models/mnist/ready", "/v2/models/{name}/ready", 200),
        ("/v2/models/mnist/versions/2/ready", "/v2/models/{name}/versions/{version}/ready", 200),
        ("/v2/models/mnist/config", "/v2/models/{name}/config", 200),
        ("/v2/models/mnist/versions/4/config", "/v2/models/{name}/versions/{version}/config", 200),
        ("/v2/models/stats", "/v2/models/stats", 200),
        ("/v2/models/mnist/stats", "/v2/models/{name}/stats", 200),
        ("/v2/models/mnist/versions/4/stats", "/v2/models/{name}/versions/{version}/stats", 200),
        ("POST /v2/repository/index", "/v2/repository/index", 200),
        ("/v1/models/mnist/report", "/v1/models/{name}/report", 200),
        ("/v1/models/mnist/versions/1/report", "/v1/models/{name}/versions/{version}/report", 200),
        ("/v1/models/nope", "/v1/models/{name}", 404),
        ("/v1/models/mnist/versions/99", "/v1/models/{name}/versions/{version}", 404),
        ("/v1/models/nope/metadata", "/v1/models/{name}/metadata", 404),
        ("/v1/models/nope/report", "/v1/models/{name}/report", 404),
        ("/v1/models/mnist/report/nope.png", "/v1/models/{name}/report/{plot}", 404),
        ("/v2/models/nope", "/v2/models/{name}", 404),
        ("/v2/models/nope/ready", "/v2/models/{name}/ready", 404),
        ("/v2/models/nope/config", "/v2/models/{name}/config", 404),
        ("/v2/models/nope/stats", "/v2/models/{name}/stats", 404),
        ("POST /v2/repository/models/nope/load", "/v2/repository/models/{name}/load", 403),
    ],
)
def test_status_replies_and_404s_are_as_documented(mnist_client, openapi, url, template, status):
    """The status, metadata, report, statistics and repository routes, and each one's 404 for
    a model, version or plot that is not there (``{"error": ...}``, as both protocols)."""
    method, _, url = url.rpartition(" ")
    reply = mnist_client.request(method or "GET", url)
    assert reply.status_code == status, reply.text
    operation = (method or "GET").lower()
    assert_documented(openapi, template, operation, reply)


def test_a_documented_schema_rejects_a_wrong_reply(openapi):
    """The check above can fail: a reply missing a field, or with one of the wrong type."""
    schema = openapi["paths"]["/v2/models/{name}/ready"]["get"]["responses"]["200"]
    schema = {
        **schema["content"]["application/json"]["schema"],
        "components": openapi["components"],
    }
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"name": "mnist", "ready": True}, schema)  # no version
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"name": "mnist", "version": "4", "ready": "yes"}, schema)
