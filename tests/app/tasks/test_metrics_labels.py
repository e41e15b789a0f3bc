"""The typed endpoints are counted under the model that answered (their paths do not name it),
and an unknown image model under ``_unknown``, never under a label of the client's choosing."""

from __future__ import annotations

import re

from task_helpers import require_model


def _count(text: str, model: str, endpoint: str) -> float:
    pattern = (
        r'serving_http_requests_total\{endpoint="'
        + re.escape(endpoint)
        + r'",method="POST",model="'
        + re.escape(model)
        + r'",status="\d+"\} ([0-9.e+]+)'
    )
    return sum(float(v) for v in re.findall(pattern, text))


def test_typed_endpoints_count_under_their_model(client):
    require_model("sentiment")
    require_model("spam")
    before = client.get("/metrics").text
    assert client.post("/v1/sentiment:predict", json={"texts": ["great"]}).status_code == 200
    assert client.post("/v1/spam:predict", json={"messages": ["hi"]}).status_code == 200
    client.post("/v1/images/no-such-model:classify", json={"images": [{"b64": "AA=="}]})
    after = client.get("/metrics").text
    for model, endpoint in (
        ("sentiment", "/v1/sentiment:predict"),
        ("spam", "/v1/spam:predict"),
        ("_unknown", "/v1/images/{model}:classify"),
    ):
        assert _count(after, model, endpoint) == _count(before, model, endpoint) + 1, model
