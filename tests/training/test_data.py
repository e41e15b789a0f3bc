"""The one rule for smoke-run slices (``--limit``) and the validation split."""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.common.data import limit_rows, smoke_indices, validation_split


def test_no_limit_keeps_every_row():
    np.testing.assert_array_equal(smoke_indices(None, 5), np.arange(5))
    np.testing.assert_array_equal(smoke_indices(10, 5), np.arange(5))


def test_a_limited_slice_is_seeded_and_spread_over_the_classes():
    labels = np.array([0] * 90 + [1] * 8 + [2] * 2)  # a rare class must still be there
    keep = smoke_indices(9, len(labels), strata=labels, seed=3)
    assert len(keep) <= 9 and set(labels[keep]) == {0, 1, 2}
    np.testing.assert_array_equal(keep, smoke_indices(9, len(labels), strata=labels, seed=3))
    assert not np.array_equal(keep, smoke_indices(9, len(labels), strata=labels, seed=4))


def test_limit_rows_cuts_numpy_and_pandas_alike():
    frame = pd.DataFrame({"x": range(20)}, index=range(100, 120))
    y = np.arange(20) % 2
    cut_frame, cut_y = limit_rows(6, frame, y, strata=y, seed=0)
    assert len(cut_frame) == len(cut_y) == 6
    np.testing.assert_array_equal(cut_frame["x"].to_numpy() % 2, cut_y)


def test_validation_split_is_stratified_on_full_runs():
    x, y = np.arange(100), np.array([0] * 80 + [1] * 20)
    (x_tr, y_tr), (x_val, y_val) = validation_split(x, y, validation_size=0.25, seed=0)
    assert len(x_val) == 25 and y_val.sum() == 5 and len(x_tr) + len(x_val) == 100
