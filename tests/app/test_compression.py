"""Which clients get gzip: ``Accept-Encoding`` read with its q-values (RFC 9110, 12.5.3); and
bodies sent many times unchanged, gzipped once."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient

from app import compression
from app.compression import GzipForClientsThatAcceptIt, GzipOnce, accepts_gzip


def _headers(*values: str) -> list[tuple[bytes, bytes]]:
    return [(b"host", b"x")] + [(b"accept-encoding", value.encode()) for value in values]


@pytest.mark.parametrize(
    "values",
    [
        ("gzip",),
        ("gzip, deflate, br, zstd",),  # httpx, requests
        ("GZIP;Q=0.5",),
        ("x-gzip",),
        ("*",),
        ("deflate, *;q=0.1",),
        ("br", "gzip"),  # the header sent twice
        ("gzip;q=0, x-gzip;q=0.3",),  # the alias accepted
        ("gzip ; q=1.000",),
    ],
)
def test_gzip_is_accepted(values):
    assert accepts_gzip(_headers(*values))


@pytest.mark.parametrize(
    "values",
    [
        (),
        ("",),
        ("identity",),
        ("deflate, br",),
        ("gzip;q=0",),
        ("gzip;q=0.000, identity",),
        ("*;q=0, identity",),
        ("gzip;q=0, *;q=1",),  # named and refused: the wildcard does not override it
        ("x-gzip-not, gzipped",),
        ("gzip;q=abc",),
        ("gzip;q=2",),
        ("gzip;q=-1",),
    ],
)
def test_gzip_is_not_accepted(values):
    assert not accepts_gzip(_headers(*values))


def _app_sending(body: bytes, *, gzip_min_bytes: int) -> Starlette:
    """An app whose one route sends ``body`` through a ``GzipOnce``, behind the middleware."""
    once = GzipOnce(body)

    async def route(request):
        return once.response(request, "text/plain", {"Cache-Control": "max-age=60"})

    app = Starlette(routes=[Route("/", route)])
    app.state.settings = SimpleNamespace(gzip_min_bytes=gzip_min_bytes, gzip_level=1)
    if gzip_min_bytes:  # as create_app: 0 turns compression off
        app.add_middleware(GzipForClientsThatAcceptIt, minimum_size=gzip_min_bytes, level=1)
    return app


def test_a_body_sent_many_times_is_gzipped_once(monkeypatch):
    calls = []
    real = compression.gzip.compress
    monkeypatch.setattr(
        compression.gzip, "compress", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    body = b"serving_requests_total 1\n" * 400  # 10 KB
    with TestClient(_app_sending(body, gzip_min_bytes=1024)) as client:
        replies = [client.get("/", headers={"Accept-Encoding": "gzip"}) for _ in range(3)]
        plain = client.get("/", headers={"Accept-Encoding": "identity"})
    for reply in replies:
        # Compressed once, not again by the middleware: one decoding gives the body back.
        assert reply.headers["content-encoding"] == "gzip"
        assert reply.content == body
        assert reply.headers["vary"] == "Accept-Encoding"
        assert reply.headers["cache-control"] == "max-age=60"
    assert len(calls) == 1
    assert "content-encoding" not in plain.headers and plain.content == body
    assert plain.headers["vary"] == "Accept-Encoding"  # caches must tell the two apart


@pytest.mark.parametrize(("size", "gzip_min_bytes"), [(500, 1024), (5000, 0)])
def test_small_bodies_and_compression_off_are_sent_as_they_are(size, gzip_min_bytes):
    body = b"x" * size
    with TestClient(_app_sending(body, gzip_min_bytes=gzip_min_bytes)) as client:
        reply = client.get("/", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in reply.headers and "vary" not in reply.headers
    assert reply.content == body


@pytest.mark.parametrize("path", ["/openapi.json", "/metrics", "/docs/swagger-ui-bundle.js"])
def test_the_large_open_replies_come_gzipped_once(tiny_client, path):
    first = tiny_client.get(path, headers={"Accept-Encoding": "gzip"})
    second = tiny_client.get(path, headers={"Accept-Encoding": "gzip"})
    plain = tiny_client.get(path, headers={"Accept-Encoding": "identity"})
    assert first.status_code == second.status_code == plain.status_code == 200
    assert first.headers["content-encoding"] == second.headers["content-encoding"] == "gzip"
    assert "content-encoding" not in plain.headers
    assert first.headers["content-type"] == plain.headers["content-type"]
    if path != "/metrics":  # (the metrics text changes with every request)
        assert first.content == second.content == plain.content
    else:
        assert first.text.startswith("# HELP") and plain.text.startswith("# HELP")


def test_a_known_representation_gets_304_not_modified():
    body = b"swagger-ui-bundle;" * 1000
    with TestClient(_app_sending(body, gzip_min_bytes=1024)) as client:
        gzipped = client.get("/", headers={"Accept-Encoding": "gzip"})
        plain = client.get("/", headers={"Accept-Encoding": "identity"})
        tag, plain_tag = gzipped.headers["etag"], plain.headers["etag"]
        assert tag != plain_tag  # two representations, two strong validators (RFC 9110 8.8.3)

        again = client.get("/", headers={"Accept-Encoding": "gzip", "If-None-Match": tag})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == tag and again.headers["vary"] == "Accept-Encoding"
        assert again.headers["cache-control"] == "max-age=60"
        assert "content-encoding" not in again.headers

        for header in (f'"x", W/{plain_tag}', "*"):  # weak comparison; any representation
            identity = {"Accept-Encoding": "identity", "If-None-Match": header}
            assert client.get("/", headers=identity).status_code == 304, header
        # The validator of another representation, or of an older body, is no match.
        for header in (plain_tag, '"0123"'):
            reply = client.get("/", headers={"Accept-Encoding": "gzip", "If-None-Match": header})
            assert reply.status_code == 200 and reply.content == body, header
