"""The typed endpoints' compiled fast path (app/api/routing.py) answers exactly as FastAPI's own
request handling does, for good and bad requests alike."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from app.api.routing import TaskRoute, _FastPath


def _png() -> bytes:
    image = Image.new("L", (28, 28))
    image.paste(255, (12, 4, 16, 24))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


REQUESTS = [
    ("/v1/spam:predict", {"json": {"messages": ["Free entry! Text WIN to 80086 now"]}}),
    ("/v1/spam:predict?version=1", {"json": {"messages": ["see you at 8"]}}),
    ("/v1/spam:predict?version=bad%20label", {"json": {"messages": ["hi"]}}),
    ("/v1/spam:predict", {"json": {"messages": []}}),
    ("/v1/spam:predict", {"json": {"messages": ["hi"], "extra": 1}}),
    (
        "/v1/spam:predict",
        {"content": b"{not json", "headers": {"content-type": "application/json"}},
    ),
    ("/v1/spam:predict", {"content": b"", "headers": {"content-type": "application/json"}}),
    ("/v1/spam:predict", {"content": b"messages=hi", "headers": {"content-type": "text/plain"}}),
    ("/v1/sentiment:predict", {"json": {"texts": ["Great food, lovely staff."]}}),
    ("/v1/churn:predict", {"json": {"customers": [{"gender": "Female"}]}}),
    ("/v1/sales:forecast", {"json": {"history": [1.0] * 30, "horizon": 3}}),
    ("/v1/sales:forecast", {"json": {"history": [1.0] * 30, "horizon": "soon"}}),
    ("/v1/images/mnist:classify?top_k=2", {"files": [("files", ("a.png", _png(), "image/png"))]}),
    ("/v1/images/mnist:classify?top_k=0", {"files": [("files", ("a.png", _png(), "image/png"))]}),
    ("/v1/images/mnist:classify?invert=maybe", {"json": {"images": [{"b64": "AAAA"}]}}),
    (
        "/v1/images/mnist:classify",
        {"json": {"images": [{"b64": base64.b64encode(_png()).decode(), "name": "d.png"}]}},
    ),
    ("/v1/images/no_such_model:classify", {"json": {"images": [{"b64": "AAAA"}]}}),
]


def test_every_typed_route_has_a_fast_path(client):
    routes = [route for route in client.app.routes if isinstance(route, TaskRoute)]
    assert len(routes) >= 11
    assert all(_FastPath.compile(route) is not None for route in routes)


@pytest.mark.parametrize(("path", "kwargs"), REQUESTS, ids=[p for p, _ in REQUESTS])
def test_fast_path_answers_as_fastapi_does(client, path, kwargs, monkeypatch):
    replies = []
    reply = TaskRoute._reply

    async def counted(self, result):
        replies.append(result)
        return await reply(self, result)

    monkeypatch.setattr(TaskRoute, "_reply", counted)
    fast = client.post(path, **kwargs)
    # Well-formed requests are answered by the fast path; the others are left to FastAPI.
    assert len(replies) == (1 if fast.status_code == 200 else 0)
    # Any dependency override makes TaskRoute hand every request to FastAPI's own handler.
    client.app.dependency_overrides[_png] = _png
    try:
        generic = client.post(path, **kwargs)
    finally:
        client.app.dependency_overrides.clear()
    assert len(replies) == (1 if fast.status_code == 200 else 0)
    assert fast.status_code == generic.status_code
    assert fast.headers["content-type"] == generic.headers["content-type"]
    assert fast.json() == generic.json()
