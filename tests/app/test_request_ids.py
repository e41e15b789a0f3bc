"""``X-Request-ID``: a request's own ID comes back on its answer and in its problem body; a
server error of a request without one gets a new ID, in the answer and in the log line."""

from __future__ import annotations

import logging
import re

import pytest

from app import request_ids
from app.errors import InferenceError

PIXELS = {"instances": [[[[0]] * 8] * 8]}


def test_a_requests_own_id_comes_back_whatever_the_answer(tiny_client):
    ok = tiny_client.get("/v2/health/live", headers={"X-Request-ID": "abc-123"})
    assert ok.status_code == 200 and ok.headers["x-request-id"] == "abc-123"
    problem = tiny_client.post(
        "/v1/images/nope:classify", headers={"X-Request-ID": "trace/42"}, files={"files": b"x"}
    )
    assert problem.status_code == 404 and problem.headers["x-request-id"] == "trace/42"
    assert problem.json()["request_id"] == "trace/42"
    protocol = tiny_client.post(
        "/v1/models/nope:predict", json=PIXELS, headers={"X-Request-ID": "p-1"}
    )
    assert protocol.status_code == 404 and protocol.headers["x-request-id"] == "p-1"
    assert protocol.json() == {"error": protocol.json()["error"]}  # TF Serving's shape kept


def test_without_an_id_a_success_or_a_client_error_gets_none(tiny_client):
    assert "x-request-id" not in tiny_client.get("/v2/health/live").headers
    problem = tiny_client.post("/v1/images/nope:classify", files={"files": b"x"})
    assert "x-request-id" not in problem.headers and "request_id" not in problem.json()


@pytest.mark.parametrize("value", ["x" * (request_ids.MAX_CHARS + 1), "caf\u00e9", " "])
def test_an_unusable_id_is_ignored(tiny_client, value):
    reply = tiny_client.get("/v2/health/live", headers={"X-Request-ID": value.encode("latin-1")})
    assert reply.status_code == 200 and "x-request-id" not in reply.headers


@pytest.mark.parametrize(
    "error", [InferenceError("the model call failed"), RuntimeError("a bug")], ids=type
)
def test_a_server_error_gets_an_id_in_its_answer_and_its_log_line(
    tiny_app, tiny_client, monkeypatch, caplog, error
):
    def failing(name, version=None):
        raise error

    monkeypatch.setattr(tiny_app.state.repository, "get", failing)
    with caplog.at_level(logging.ERROR):
        reply = tiny_client.post("/v1/images/tiny_image:classify", files={"files": b"x"})
        own = tiny_client.post(
            "/v1/images/tiny_image:classify",
            files={"files": b"x"},
            headers={"X-Request-ID": "mine"},
        )
    assert reply.status_code == 500
    request_id = reply.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    assert reply.json()["request_id"] == request_id
    assert own.status_code == 500 and own.headers.get_list("x-request-id") == ["mine"]
    assert own.json()["request_id"] == "mine"
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert f"(request {request_id})" in logged and "(request mine)" in logged
