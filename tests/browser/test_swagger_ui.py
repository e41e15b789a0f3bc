"""Swagger UI and ReDoc as a new user meets them: offline, with a file picker for uploads."""

from __future__ import annotations

import json

from tests.browser.conftest import example_file


def try_it_out(page, url: str, path: str, **parameters: str):
    """The operation of ``path`` on /docs, opened, "Try it out" pressed, path parameters filled."""
    page.goto(f"{url}/docs")
    operation = page.locator(".opblock-post", has_text=path).first
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    for name, value in parameters.items():
        operation.locator(f"input[placeholder='{name}']").fill(value)
    return operation


def execute(operation) -> str:
    """Press "Execute" and return the response body Swagger UI shows."""
    operation.get_by_role("button", name="Execute").click()
    body = operation.locator(".live-responses-table .response-col_description pre").first
    body.wait_for(timeout=30_000)
    return body.inner_text()


def test_swagger_ui_uploads_a_digit_and_reads_7(page, served_url):
    operation = try_it_out(page, served_url, "/v1/images/{model}:classify", model="mnist")
    # The multipart body shows a file picker (format: binary), not a text box.
    operation.locator("input[type=file]").first.set_input_files(str(example_file("seven.png")))
    text = execute(operation)
    assert '"label": "7"' in text, text[:500]


def test_redoc_renders_offline(page, served_url):
    page.goto(f"{served_url}/redoc")
    page.get_by_text("tf-model-serving", exact=False).first.wait_for(timeout=30_000)
    assert page.locator("h1").count() >= 1


def test_swagger_ui_json_body_after_switching_the_media_type(page, served_url):
    operation = try_it_out(page, served_url, "/v1/images/{model}:classify", model="mnist")
    operation.locator(".body-param-content-type select").select_option("application/json")
    text = execute(operation)
    assert '"label": "7"' in text, text[:500]


def test_predict_example_is_a_real_digit(page, served_url):
    """The TF Serving example that "Try it out" sends is a handwritten 7, not an empty image."""
    operation = try_it_out(
        page, served_url, "/v1/models/{name}:{method}", name="mnist", method="predict"
    )
    probabilities = json.loads(execute(operation))["predictions"][0]
    assert max(range(10), key=probabilities.__getitem__) == 7
