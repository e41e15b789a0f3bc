"""``python -m bench.model_cost``: CPU per instance of SavedModels, numeric and string inputs."""

from __future__ import annotations

import re

from bench import model_cost
from tests.paths import REPO_ROOT


def test_costs_a_text_model_and_an_image_model(capsys):
    models = [str(REPO_ROOT / "models" / "spam" / "2"), str(REPO_ROOT / "models" / "mnist" / "3")]
    assert model_cost.main([*models, "--seconds", "0.2", "--rounds", "1", "--batch", "4"]) == 0
    out = capsys.readouterr().out
    for path in models:
        line = next(line for line in out.splitlines() if path in line)
        assert float(re.search(r": ([0-9.]+) \(", line).group(1)) > 0
