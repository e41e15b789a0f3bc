"""A served app and a headless Chromium (Debian's, driven by Playwright) for the browser tests.

Screenshots go to ``test-artifacts/`` (git-ignored). The tests are skipped where no Chromium is
installed; ``.ci/run`` installs Debian's ``chromium``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.app.serving_process import start_server, stop_server
from tests.paths import REPO_ROOT

ARTIFACTS = REPO_ROOT / "test-artifacts"
# What the pages under test need: an image model, a text model, a tabular model, the X-rays.
MODELS = ["mnist", "sentiment", "churn", "chest_xray"]


def chromium_path() -> str | None:
    return (
        os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )


@pytest.fixture(scope="session")
def served_url() -> Iterator[str]:
    process, url = start_server(
        REPO_ROOT / "models", model_names=json.dumps(MODELS), log_level="warning"
    )
    try:
        yield url
    finally:
        stop_server(process)


# Module scope: Playwright's sync API keeps an event loop running in this thread while it is
# open, and later tests that call asyncio.run() (the scale-out test) must not find one.
@pytest.fixture(scope="module")
def browser():
    executable = chromium_path()
    if executable is None:
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, request):
    """A fresh page that fails the test on any request to another host (the pages must work
    offline) or anything its Content-Security-Policy blocks, and leaves a screenshot named
    after the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    outside: list[str] = []
    blocked: list[str] = []
    page.blocked_by_csp = blocked  # a test that provokes a block takes its messages
    page.on(
        "console",
        lambda message: (
            blocked.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )

    def only_local(route):
        if route.request.url.startswith(("http://127.0.0.1", "data:", "blob:")):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    yield page
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()
    assert not outside, f"the page asked for outside resources: {outside}"
    assert not blocked, f"the page's Content-Security-Policy blocked: {blocked}"


def example_file(name: str) -> Path:
    return REPO_ROOT / "app" / "static" / "examples" / name
