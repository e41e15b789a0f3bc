"""Image folders -> tf.data pipelines of uint8 pixels (decode, resize, cache, prefetch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name (so splits are repeatable)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def labelled_images(root: Path, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Paths and integer labels of ``root/<label>/*`` for each label present (index = position)."""
    paths: list[str] = []
    targets: list[int] = []
    for index, label in enumerate(labels):
        folder = root / label
        if folder.is_dir():
            files = list_images(folder)
            paths += [str(p) for p in files]
            targets += [index] * len(files)
    return np.array(paths, dtype=str), np.array(targets, dtype=np.int64)


def decode_image(
    path: tf.Tensor, size: tuple[int, int], channels: int, method: str = "area"
) -> tf.Tensor:
    """Read, decode (JPEG/PNG/BMP/GIF) and resize one image to uint8 ``(height, width, channels)``.

    Resizing squashes to the target size (no crop or padding), as the server does; ``method`` is a
    ``tf.image.resize`` method (no antialiasing, so "bilinear" matches OpenCV's default resize)."""
    image = tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)
    image = tf.image.resize(image, size, method=method)
    return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


def image_dataset(
    paths: np.ndarray,
    labels: np.ndarray,
    *,
    size: tuple[int, int],
    channels: int,
    batch_size: int,
    shuffle_seed: int | None = None,
) -> tf.data.Dataset:
    """Batched ``(pixels uint8, label)`` pairs; decoded images are cached in memory after the first
    pass, and shuffled each epoch when ``shuffle_seed`` is given (training sets)."""
    ds = tf.data.Dataset.from_tensor_slices((np.asarray(paths, dtype=str), np.asarray(labels)))
    ds = ds.map(
        lambda p, y: (decode_image(p, size, channels), y), num_parallel_calls=tf.data.AUTOTUNE
    )
    ds = ds.cache()
    if shuffle_seed is not None:
        ds = ds.shuffle(len(paths), seed=shuffle_seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def load_pixels(paths: np.ndarray, *, size: tuple[int, int], channels: int) -> np.ndarray:
    """Decode and resize images into one uint8 array ``(N, height, width, channels)``."""
    ds = tf.data.Dataset.from_tensor_slices(np.asarray(paths, dtype=str))
    ds = ds.map(lambda p: decode_image(p, size, channels), num_parallel_calls=tf.data.AUTOTUNE)
    batches = [b.numpy() for b in ds.batch(512)]
    if not batches:
        return np.zeros((0, *size, channels), dtype=np.uint8)
    return np.concatenate(batches)
