"""The request examples in the OpenAPI schema (what Swagger's "Try it out" sends) work."""

from __future__ import annotations

import pytest
from task_helpers import require_model

OPERATIONS = {
    # path: (model that must be served, media type of the example)
    "/v1/images/mnist:classify": ("mnist", "application/json"),
    "/v1/sentiment:predict": ("sentiment", "application/json"),
    "/v1/spam:predict": ("spam", "application/json"),
    "/v1/sales:forecast": ("sales", "application/json"),
    "/v1/churn:predict": ("churn", "application/json"),
    "/v1/movies:predict": ("movie_profit", "application/json"),
}


def swagger_example(openapi: dict, path: str, media_type: str) -> dict:
    """The body Swagger UI pre-fills: the media type's example, else one built from each
    property's first example or its default."""
    template = path.replace("mnist", "{model}")
    media = openapi["paths"][template]["post"]["requestBody"]["content"][media_type]
    if "example" in media:
        return media["example"]
    schema = media["schema"]
    if "$ref" in schema:
        schema = openapi["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    body = {}
    for name, prop in schema["properties"].items():
        if "examples" in prop:
            body[name] = prop["examples"][0]
        elif "default" in prop:
            body[name] = prop["default"]
    return body


@pytest.mark.parametrize("path", sorted(OPERATIONS))
def test_swagger_example_is_answered(client, path):
    model, media_type = OPERATIONS[path]
    require_model(model)
    body = swagger_example(client.get("/openapi.json").json(), path, media_type)
    response = client.post(path, json=body)
    assert response.status_code == 200, response.text
    assert response.json()["model"] == model
