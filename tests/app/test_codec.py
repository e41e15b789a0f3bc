"""``numeric_instances``: the lean parse of ``{"instances": <numbers>}`` agrees with JSON parsing
on every body it accepts, and declines (None) every body it cannot read exactly."""

from __future__ import annotations

import json

import numpy as np
import orjson
import pytest

from app.codec import numeric_instances


def _json_instances(body: bytes) -> np.ndarray | None:
    """What the general path makes of a body: the parsed instances as an array, or None."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict) or list(data) != ["instances"]:
        return None
    try:
        array = np.array(data["instances"])
    except ValueError:
        return None  # ragged
    return array if array.dtype.kind in "iuf" and array.size else None


@pytest.mark.parametrize(
    "dumps",
    [json.dumps, lambda v: json.dumps(v, separators=(",", ":")), lambda v: json.dumps(v, indent=2)],
)
@pytest.mark.parametrize("shape", [(1,), (3,), (1, 28, 28, 1), (2, 3, 4), (5, 1, 1), (1, 7, 1)])
def test_reads_what_json_reads(shape, dumps):
    rng = np.random.default_rng(sum(shape))
    for values in (rng.integers(-300, 300, shape), rng.normal(0, 1e3, shape).round(3)):
        body = dumps({"instances": values.tolist()}).encode()
        parsed = numeric_instances(body)
        assert parsed is not None
        assert parsed.shape == shape and parsed.dtype == values.dtype
        np.testing.assert_array_equal(parsed, values)


@pytest.mark.parametrize(
    "body",
    [
        b'{"instances": [[1,2],[3]]}',  # ragged
        b'{"instances": [[1,2,3],[4,5]]}',
        b'{"instances": [[[1]],[[2,3]]]}',
        b'{"instances": []}',  # empty
        b'{"instances": [[]]}',
        b'{"instances": [1,,2]}',  # empty slot
        b'{"instances": [1,]}',
        b'{"instances": [, 1]}',
        b'{"instances": [ , 1]}',
        b'{"instances": [07]}',  # not JSON numbers
        b'{"instances": [-01]}',
        b'{"instances": [-]}',
        b'{"instances": [1 2]}',
        b'{"instances": [1-2]}',
        b'{"instances": [--1]}',
        b'{"instances": [+1]}',
        b'{"instances": [.5]}',
        b'{"instances": [1.]}',
        b'{"instances": [1e]}',
        b'{"instances": [1e400]}',
        b'{"instances": [9223372036854775808]}',  # beyond int64
        b'{"instances": [[1,2]],[3,4]]}',  # broken nesting
        b'{"instances": [[1,2][3,4]]}',
        b'{"instances": [1]',
        b'{"instances": 5}',
        b'{"instances": ["a"]}',  # other values or keys: the general path's business
        b'{"instances": [null]}',
        b'{"instances": [true]}',
        b'{"instances": [{"b64": "AA=="}]}',
        b'{"in stances": [1]}',
        b'{"instances": [1], "signature_name": "serving_default"}',
        b'{"inputs": [1]}',
        b"[1]",
        b"",
    ],
)
def test_declines_what_it_cannot_read_exactly(body):
    assert numeric_instances(body) is None


def test_random_edits_never_disagree_with_json():
    """Bodies one to three edits away from valid: accepted only where JSON parsing gives the
    same array."""
    rng = np.random.default_rng(0)
    alphabet = b"0123456789-+.eE[], \n"
    bases = [
        json.dumps({"instances": rng.integers(-20, 120, (2, 3, 2)).tolist()}).encode(),
        json.dumps({"instances": rng.normal(0, 50, (3, 2)).round(2).tolist()}).encode(),
    ]
    accepted = 0
    for trial in range(20000):
        body = bytearray(bases[trial % 2])
        for _ in range(int(rng.integers(1, 4))):
            at = int(rng.integers(len(body)))
            char = alphabet[int(rng.integers(len(alphabet)))]
            edit = int(rng.integers(3))
            if edit == 0:
                body[at] = char
            elif edit == 1:
                body.insert(at, char)
            else:
                del body[at]
        body = bytes(body)
        parsed, expected = numeric_instances(body), _json_instances(body)
        if parsed is not None:
            accepted += 1
            assert expected is not None, body
            assert parsed.shape == expected.shape and parsed.dtype == expected.dtype, body
            np.testing.assert_array_equal(parsed, expected, err_msg=str(body))
    assert accepted > 1000  # the edits that keep the body valid (a digit for a digit, ...)
