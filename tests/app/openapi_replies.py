"""Checking a real reply against what ``/openapi.json`` documents for its operation."""

from __future__ import annotations

import jsonschema


def assert_documented(openapi, template: str, method: str, reply) -> None:
    """``reply``'s status and media type are documented for the operation, and a JSON reply
    validates against the documented schema (its ``$ref``s resolved in the document's
    components)."""
    responses = openapi["paths"][template][method]["responses"]
    assert str(reply.status_code) in responses, (template, reply.status_code)
    content = responses[str(reply.status_code)]["content"]
    media_type = reply.headers["content-type"].split(";")[0]
    assert media_type in content, (template, media_type, list(content))
    if media_type == "application/json":
        schema = content[media_type]["schema"]
        assert schema, f"{template}: no schema documented"
        jsonschema.validate(reply.json(), {**schema, "components": openapi["components"]})
