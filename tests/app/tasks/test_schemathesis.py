"""Property-based run over the app's OpenAPI schema (schemathesis): no 5xx, and every response
matches its documented status, content type and schema.

Scope: the task endpoints and ``/healthz``, and the read-only status, metadata, report and
statistics routes of both protocols (their documented replies and 404s); the protocol inference
routes are covered by their own tests. Requests go through the suite's shared app (one
lifespan, models loaded once), bounded to ``MAX_EXAMPLES`` per operation.
"""

from __future__ import annotations

import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from task_helpers import make_settings

from app.main import create_app

MAX_EXAMPLES = 25
TASK_PATHS = (
    r"^/v1/(images/\{model\}:classify|sentiment:predict|spam:predict|sales:forecast|"
    r"churn:predict|movies:predict)$|^/healthz$"
)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

STATUS_PATHS = (
    r"^/v1/models(/\{name\}(/versions/\{version\})?(/metadata|/report)?)?$"
    r"|^/v2(/health/(live|ready)|/models/stats"
    r"|/models/\{name\}(/versions/\{version\})?(/ready|/config|/stats)?)?$"
)

# The schema only (no lifespan, no models): the requests go to the shared ``client``.
openapi = create_app(make_settings()).openapi()
schema = schemathesis.openapi.from_dict(openapi).include(path_regex=TASK_PATHS)
status_schema = schemathesis.openapi.from_dict(openapi).include(
    path_regex=STATUS_PATHS, method="GET"
)


# Reproducible and bounded: the same 25 examples per operation in every run.
BOUNDED = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


def send(client, case):
    """Encode the case like schemathesis' requests transport would, send it with ``client``."""
    kwargs = case.as_transport_kwargs()
    prepared = requests.Request(
        method=kwargs["method"],
        url="http://testserver" + kwargs["url"],
        headers=kwargs.get("headers"),
        params=kwargs.get("params"),
        json=kwargs.get("json"),
        data=kwargs.get("data"),
        files=kwargs.get("files"),
    ).prepare()
    body = prepared.body.encode() if isinstance(prepared.body, str) else prepared.body
    return client.request(
        prepared.method, prepared.url, headers=dict(prepared.headers), content=body or b""
    )


@schema.parametrize()
@BOUNDED
def test_task_api_conforms_to_its_schema(case, client):
    response = send(client, case)
    case.validate_response(response, checks=CHECKS)


@status_schema.parametrize()
@BOUNDED
def test_status_routes_conform_to_their_schema(case, client):
    response = send(client, case)
    case.validate_response(response, checks=CHECKS)
