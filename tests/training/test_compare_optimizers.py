"""Smoke test: the optimizer x loss grid runs on a tiny churn slice and writes its report."""

from __future__ import annotations

import pandas as pd

from training import compare_optimizers
from training.config import TrainConfig


def test_compare_optimizers_smoke(data_dir, tmp_path):
    cfg = TrainConfig(
        data_dir=data_dir,
        epochs=1,
        limit=200,
        extra={"report_dir": tmp_path / "report", "repeats": 1},
    )
    out = compare_optimizers.train(cfg)

    table = pd.read_csv(out / "results.csv")
    assert len(table) == 9  # 3 optimizers x 3 losses
    assert set(table["optimizer"]) == {"adam", "sgd", "rmsprop"}
    assert set(table["loss"]) == set(compare_optimizers.LOSSES)
    assert table["val_accuracy_mean"].between(0, 1).all()
    assert "| optimizer | loss |" in (out / "results.md").read_text()
    assert (out / "comparison.png").stat().st_size > 0
