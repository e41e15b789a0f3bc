"""The route index picks the route the router's own scan would (a HEAD request: the GET's),
and leaves the rest to it."""

from __future__ import annotations

import itertools

import pytest
from fastapi.testclient import TestClient
from starlette.responses import PlainTextResponse
from starlette.routing import Match, Route

from app.api.route_index import PathIndexRoute
from app.main import create_app
from tests.paths import make_settings

# Values for every path parameter of the app's routes, including ones that look like the
# literal segments of other routes (a model called "stats", a version called "infer", ...).
PARAMETER_VALUES = {
    "name": ["mnist", "stats", "report"],
    "model": ["mnist", "spam"],
    "version": ["1", "infer", "ready"],
    "label": ["stable"],
    "method": ["predict", "classify"],
    "plot": ["confusion_matrix"],
}
METHODS = ["GET", "POST", "HEAD", "PUT"]


def scope_for(method: str, path: str) -> dict:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "query_string": b"",
        "headers": [],
    }


def paths_to_try(routes) -> list[str]:
    paths = {"/", "/nope", "/v1", "/v1/", "/v1/models/", "/v1/spam:predict/", "/v2/models//infer"}
    for route in routes:
        if not isinstance(route, Route):
            continue
        names = list(route.param_convertors)
        for values in itertools.product(*(PARAMETER_VALUES[name] for name in names)):
            path = route.path_format.format(**dict(zip(names, values, strict=True)))
            paths.update({path, path + "/", path + "x"})
    return sorted(paths)


def scanned(routes, scope: dict):
    """The router's own choice: the first route that matches fully (None: no full match)."""
    for route in routes:
        if route.matches(scope)[0] is Match.FULL:
            return route
    return None


@pytest.fixture(scope="module")
def app(tiny_models_dir):
    return create_app(make_settings(models_dir=tiny_models_dir, log_level="warning"))


def test_the_index_is_first_and_picks_what_the_scan_picks_for_every_path_and_method(app):
    index, *routes = app.router.routes
    assert isinstance(index, PathIndexRoute)
    tried = 0
    for path, method in itertools.product(paths_to_try(routes), METHODS):
        scope = scope_for(method, path)
        match, child_scope = index.matches(scope)
        expected = scanned(routes, scope)
        if expected is None and method == "HEAD":  # answered by the GET route
            expected = scanned(routes, scope_for("GET", path))
        if expected is None:
            assert match is Match.NONE, (method, path)
        else:
            assert match is Match.FULL, (method, path)
            assert child_scope["app.route_index.chosen"] is expected, (method, path)
        tried += 1
    assert tried > 500


def test_a_path_narrows_the_scan_to_the_routes_that_can_match_it(app):
    index = app.router.routes[0]
    typed = [route.path for route in index.candidates("/v1/spam:predict")]
    assert typed == ["/v1/spam:predict"]
    images = [route.path for route in index.candidates("/v1/images/mnist:classify")]
    assert images == ["/v1/images/{model}:classify", "/v1/images/{model}:explain"]
    assert index.candidates("/nope") == ()


def test_errors_stay_the_routers_own(tiny_models_dir):
    app = create_app(make_settings(models_dir=tiny_models_dir, log_level="warning"))
    with TestClient(app) as client:
        wrong_method = client.get("/v1/spam:predict")
        assert wrong_method.status_code == 405
        assert wrong_method.headers["allow"] == "POST"
        assert client.get("/nope").status_code == 404
        assert app.url_path_for("predict_spam") == "/v1/spam:predict"
        assert client.get("/v2/health/live").status_code == 200


def test_a_route_added_after_start_up_is_served(tiny_models_dir):
    app = create_app(make_settings(models_dir=tiny_models_dir, log_level="warning"))
    with TestClient(app) as client:
        assert client.get("/v2/health/live").status_code == 200  # the index is built
        shadow = Route("/v2/health/live", lambda _: PlainTextResponse("shadowed"))
        app.router.routes.insert(1, shadow)
        assert client.get("/v2/health/live").text == "shadowed"
        app.router.routes.append(Route("/added/{thing}", lambda _: PlainTextResponse("added")))
        assert client.get("/added/x").text == "added"
