"""Route lookup by path ahead of the router's linear scan.

Starlette (and FastAPI's router on top of it) tries an app's routes one by one: for each a regex
match, and for FastAPI's routes a route-context lookup. The typed endpoints are registered after
the protocol routes, so ``/v1/movies:predict`` paid fifteen failed matches per request before
its own: more CPU than its reply. :func:`install` puts one route first that narrows the scan to
the routes that can match the request's path: a route's path matches only paths that start with
its literal part (what precedes its first ``{parameter}``; a path without parameters only
itself), so the candidates follow from which literal prefixes the path starts with, and are
kept per combination. It tries them in their order; when none matches fully (a wrong method, an
unknown path) it matches nothing, and the router's own scan decides as it always did: 405s,
slash redirects and 404s are untouched. With FastAPI's request telemetry on, the router's scan
runs as before too (it records the route it selects).
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import URLPath
from starlette.routing import BaseRoute, Match, NoMatchFound, Route, Router, get_route_path
from starlette.types import Receive, Scope, Send

_CHOSEN = "app.route_index.chosen"  # the scope key that hands the matched route to handle()


class PathIndexRoute(BaseRoute):
    """Matches a request by the first of the router's routes that can match its path and
    matches it fully."""

    def __init__(self, router: Router) -> None:
        self._router = router
        self._indexed = -1  # how many routes the router had when the index was built
        self._routes: list[BaseRoute] = []
        self._static: frozenset[str] = frozenset()  # the paths without parameters
        self._prefixes: tuple[str, ...] = ()  # the literal parts of the paths with parameters
        self._candidates: dict[tuple[tuple[str, ...], str | None], tuple[BaseRoute, ...]] = {}

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or scope.get("fastapi.telemetry") is not None:
            return Match.NONE, {}
        # HEAD is answered by the GET route (RFC 9110 9.1: a server must support both; a load
        # balancer's health check may send it): the server sends the head of the GET's reply.
        probe = {**scope, "method": "GET"} if scope["method"] == "HEAD" else scope
        for route in self.candidates(get_route_path(scope)):
            match, child_scope = route.matches(probe)
            if match is Match.FULL:
                return Match.FULL, {**child_scope, _CHOSEN: route}
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = scope.pop(_CHOSEN)
        if scope["method"] == "HEAD":
            # A copy: the server's own scope keeps HEAD, so it sends no body.
            scope = {**scope, "method": "GET"}
        await route.handle(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        raise NoMatchFound(name, path_params)  # the indexed routes answer for themselves

    def candidates(self, path: str) -> tuple[BaseRoute, ...]:
        """The routes that can match ``path``, in the router's order."""
        if len(self._router.routes) != self._indexed:
            self._build()
        key = (
            tuple(prefix for prefix in self._prefixes if path.startswith(prefix)),
            path if path in self._static else None,
        )
        found = self._candidates.get(key)
        if found is None:  # one per combination of prefixes and static path: a bounded set
            prefixes, static = key
            found = self._candidates[key] = tuple(
                route for route in self._routes if _may_match(route, prefixes, static)
            )
        return found

    def _build(self) -> None:
        """Index the router's routes (set at start-up; rebuilt when one is added or removed)."""
        routes = self._router.routes
        self._indexed = len(routes)
        self._routes = [route for route in routes if route is not self]
        plain = [route for route in self._routes if isinstance(route, Route)]
        self._static = frozenset(route.path for route in plain if not route.param_convertors)
        self._prefixes = tuple(
            sorted({_literal_part(route) for route in plain if route.param_convertors})
        )
        self._candidates = {}


def _literal_part(route: Route) -> str:
    return route.path.split("{", 1)[0]


def _may_match(route: BaseRoute, prefixes: tuple[str, ...], static: str | None) -> bool:
    """Whether ``route`` can match a path that starts with exactly ``prefixes`` (of the indexed
    literal parts) and is the parameter-free path ``static`` (None: none of them). Routes that
    are not plain path routes (mounts, hosts) always may."""
    if not isinstance(route, Route):
        return True
    if route.param_convertors:
        return _literal_part(route) in prefixes
    return route.path == static


def install(router: Router) -> None:
    """Put the index ahead of every route of ``router``."""
    router.routes.insert(0, PathIndexRoute(router))
