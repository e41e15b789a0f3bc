"""``python -m bench.image_path``: the image upload against ``:predict``, with its decoding and
its form parsing replaced in turn."""

from __future__ import annotations

import pytest

from app.api.tasks import images
from bench import image_path
from tests.paths import REPO_ROOT

DATASETS = REPO_ROOT.parent / "shared" / "datasets"


@pytest.mark.skipif(not (DATASETS / "mnist").is_dir(), reason="needs ../shared/datasets/mnist")
def test_each_path_is_measured_and_the_served_functions_are_put_back(capsys):
    served = images._fit_images, images._read_images
    assert image_path.main(["--rounds", "1", "-d", "0.3", "-c", "8"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "ms/req" not in line]
    assert [row.split(" | ")[0] for row in rows] == [
        "| :predict",
        "| image upload, as served",
        "| image upload, decoding replaced",
        "| image upload, decoding and form replaced",
    ]
    for row in rows:
        requests, cpu, loop_cpu, wall, ratio = row.strip("| ").split(" | ")[1:]
        assert int(requests.replace(",", "")) > 0 and float(cpu) > 0 and float(wall) > 0
    assert "open, decode and fit: " in out
    assert (images._fit_images, images._read_images) == served
