"""Property-based requests (schemathesis, from the OpenAPI schema) on the protocol endpoints:
whatever the body, path or parameters, never a 5xx (503 for the broken model aside, and for
readiness, which the broken model keeps at 503)."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings

from app.config import Settings
from app.main import create_app

MAX_EXAMPLES = 15
# Generated names would nearly always be unknown (404 before the body is read): aim most
# requests at real models so that the bodies get exercised too.
MODELS = ["tiny_image", "tiny_text", "tiny_tabular", "tiny_multi", "nope"]
PROTOCOL_PATHS = r"^/v1/models|^/v2"
# The repository API changes what the shared app serves (unload): tested on its own server.
STATEFUL_PATHS = r"^/v2/repository"

# The schema only; the requests go to the session's ``tiny_client`` (models loaded once).
schema = (
    schemathesis.openapi.from_dict(
        create_app(Settings(_env_file=None, models_dir="/nonexistent")).openapi()
    )
    .include(path_regex=PROTOCOL_PATHS)
    .exclude(path_regex=STATEFUL_PATHS)
)


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_protocol_endpoints_never_answer_5xx(case, tiny_client):
    params = case.path_parameters or {}
    if "name" in params:
        params["name"] = MODELS[len(str(params["name"])) % len(MODELS)]
    if "version" in params and len(str(params["version"])) % 2:
        params["version"] = "1"
    kwargs = case.as_transport_kwargs()
    response = tiny_client.request(
        kwargs["method"],
        kwargs["url"],
        headers=kwargs.get("headers"),
        params=kwargs.get("params"),
        json=kwargs.get("json"),
    )
    if response.status_code == 503 and "ready" in response.json():
        return  # readiness (server or model) honestly answering "not ready"
    assert response.status_code < 500, (case.method, case.formatted_path, response.text[:300])
