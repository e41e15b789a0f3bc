"""Service endpoints: OpenAPI docs and /healthz (a failed model is listed, others serve)."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_openapi_documents_the_protocol_routes(tiny_client):
    assert tiny_client.get("/docs").status_code == 200
    paths = tiny_client.get("/openapi.json").json()["paths"]
    for path in (
        "/v1/models",
        "/v1/models/{name}:{method}",
        "/v1/models/{name}/versions/{version}:{method}",
        "/v2/models/{name}/infer",
        "/v2/health/ready",
        "/metrics",
    ):
        assert path in paths, path


def test_the_openapi_schema_is_serialized_once_and_names_a_proxy_prefix(tiny_client):
    app = tiny_client.app
    schema = tiny_client.get("/openapi.json").json()
    assert schema == app.openapi() and "servers" not in schema
    first = app.state.openapi_json[""]
    tiny_client.get("/openapi.json")
    assert app.state.openapi_json[""] is first  # the same bytes: not serialized again

    prefixed = TestClient(app, root_path="/serving")  # (no lifespan: the app is running)
    schema = prefixed.get("/openapi.json").json()
    assert schema["servers"][0] == {"url": "/serving"}
    assert schema["paths"] == app.openapi()["paths"]
    assert "/serving/openapi.json" in prefixed.get("/docs").text


def test_healthz_lists_every_model_state(tiny_client):
    reply = tiny_client.get("/healthz")
    body = reply.json()
    assert reply.status_code == 503  # a version failed to load: not ready (strict readiness)
    assert body["live"] and not body["ready"] and body["device"] == "/CPU:0"
    assert body["models"]["broken/1"] == "FAILED"
    assert body["models"]["tiny_image/2"] == "AVAILABLE"


def test_each_route_is_registered_once(tiny_client):
    """One route per path and method: the one that is documented is the one that serves."""
    seen: dict[tuple[str, str], int] = {}
    for route in tiny_client.app.routes:
        for method in getattr(route, "methods", None) or ():
            key = (route.path, method)
            seen[key] = seen.get(key, 0) + 1
    assert {key: n for key, n in seen.items() if n > 1} == {}
    operations = tiny_client.get("/openapi.json").json()["paths"]
    assert "post" in operations["/v1/models/{name}/labels/{label}:{method}"]
    infer = operations["/v2/models/{name}/versions/{version}/infer"]["post"]
    assert [p["name"] for p in infer["parameters"]] == ["name", "version"]
