"""Smoke tests: the glyph renderer, the writer-disjoint split, and greek_symbols training on a
tiny slice, exported and served with raw uint8 pixels (dark strokes on light)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from training import glyphs, greek_symbols
from training.config import TrainConfig


@pytest.fixture(scope="module")
def fonts():
    return glyphs.find_fonts()


def test_matplotlib_fonts_cover_every_symbol():
    # DejaVu and STIX ship with matplotlib, so rendering works without Debian font packages.
    mpl_fonts = glyphs.find_fonts((glyphs.matplotlib_font_dir(),))
    for label in greek_symbols.LABELS:
        assert mpl_fonts[label], f"no matplotlib font draws {label}"
    assert not any("LastResort" in p.name for paths in mpl_fonts.values() for p in paths)


def test_render_glyphs_shapes_and_style(fonts):
    per_class = {"E": 3, "O": 2, "Σ": 3, "θ": 2}
    rendered = glyphs.render_glyphs(per_class, greek_symbols.LABELS, size=32, seed=1, fonts=fonts)
    assert rendered.images.shape == (10, 32, 32, 1) and rendered.images.dtype == np.uint8
    assert np.bincount(rendered.labels, minlength=4).tolist() == [3, 2, 3, 2]
    assert {k: sum(v.values()) for k, v in rendered.counts.items()} == per_class
    assert rendered.fonts
    for image in rendered.images[..., 0]:
        # light background with some dark ink, like HASY
        assert np.median(image) > 200
        assert (image < 128).mean() > 0.01


def test_pen_drawings_for_every_label():
    rng = np.random.default_rng(0)
    for label in greek_symbols.LABELS:
        ink = glyphs.render_pen_glyph(label, rng)
        assert ink.shape == (glyphs.RENDER_SIZE, glyphs.RENDER_SIZE) and ink.max() == 1.0


def test_split_keeps_writers_apart(data_dir):
    _, labels, writers = greek_symbols.load_real(data_dir)
    groups, pooled = greek_symbols.writer_groups(writers)
    rest, test = greek_symbols.grouped_split(labels, groups, greek_symbols.TEST_FOLDS, seed=42)
    assert set(np.unique(labels[test])) == {0, 1, 2, 3}  # E and O have test examples
    shared = set(writers[rest]) & set(writers[test])
    assert shared <= {pooled}


def test_greek_symbols_smoke(data_dir, tmp_path):
    cfg = TrainConfig(
        data_dir=data_dir, out_dir=tmp_path, epochs=1, limit=40, version=1, variant="cnn"
    )
    path = greek_symbols.train(cfg)

    assert path == tmp_path / "greek_symbols" / "1"
    metadata = json.loads((path / "metadata.json").read_text())
    assert metadata["labels"] == ["E", "O", "Σ", "θ"]
    assert metadata["image"] == {"height": 32, "width": 32, "channels": 1, "background": "light"}
    assert metadata["training_data"]["rendered_total"] > 0
    assert metadata["metrics"]["n"] == metadata["splits"]["test"]

    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    pixels = np.full((2, 32, 32, 1), 255, np.uint8)
    pixels[1, 8:24, 15:17] = 0
    probabilities = serve(pixels=tf.constant(pixels))["output_0"].numpy()
    assert probabilities.shape == (2, 4)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
