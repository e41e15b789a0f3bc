"""Which clients get gzip: ``Accept-Encoding`` read with its q-values (RFC 9110, 12.5.3)."""

from __future__ import annotations

import pytest

from app.compression import accepts_gzip


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
