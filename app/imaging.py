"""Uploaded image bytes -> the uint8 pixel array an image model takes.

Decoding is strict: only PNG, JPEG, BMP, GIF (first frame) and WebP; an empty, truncated, corrupt
or non-image file, or one with more pixels than allowed (a decompression bomb), raises a domain
error that the API answers with a 4xx problem.

How an image is fitted to the model's input (``metadata.json["image"]``):

- ``background: natural`` (photos, X-rays): the image is squashed to the model's height x width
  (aspect ratio not kept), exactly as ``training/common/images.py`` resized the training images.
- ``background: dark`` / ``light`` (digits, glyphs): the image is turned to gray and, when needed,
  inverted so that its polarity matches the training data (``invert=auto`` compares the image's
  border with the model's background). An image that then already has the model's size is used
  as it is (a sample prepared like the training data). Any other is prepared like MNIST's own
  data: contrast stretched, strokes cropped to their bounding box, scaled to fit the input
  *keeping the aspect ratio* inside a margin (``image.ink_margin``: the fraction of each side
  left empty; default 4/28, MNIST's 20-pixel box in 28; Fashion-MNIST and HASY glyphs fill the
  box: 0), padded with the background and centred on their centre of mass.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from app.errors import (
    InvalidInputError,
    PayloadTooLargeError,
    ServingError,
    UnsupportedMediaTypeError,
)
from app.image_headers import check_structure
from app.plain_png import PlainPng, read_plain_png

# Only these plugins of Pillow's ever read an upload: the others parse their headers in Python
# too (a 786 KB TIFF of 65,535 tags cost 0.2 s to refuse), for formats no model takes.
SUPPORTED_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP")
DEFAULT_INK_MARGIN = 4 / 28  # MNIST: a 20x20 box inside 28x28
INK_THRESHOLD = 64  # gray levels above the background that count as a stroke
MIN_CONTRAST = 32  # below this between background and strongest stroke the image is blank

# Never decode half a file silently: a truncated upload must fail.
ImageFile.LOAD_TRUNCATED_IMAGES = False
# max_image_pixels, checked from the header before decoding, is the cap; Pillow's own is far
# above it (it still raises DecompressionBombError past 2x its limit, answered with a 413), and
# its warning would only repeat ours.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


class Invert(StrEnum):
    auto = "auto"
    true = "true"
    false = "false"


@dataclass(frozen=True)
class ImageSpec:
    """What an image model takes, from its ``metadata.json["image"]`` block."""

    height: int
    width: int
    channels: int
    background: str = "natural"  # dark | light | natural
    ink_margin: float = DEFAULT_INK_MARGIN

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> ImageSpec:
        block = metadata["image"]
        return cls(
            height=int(block["height"]),
            width=int(block["width"]),
            channels=int(block["channels"]),
            background=str(block.get("background", "natural")),
            ink_margin=float(block.get("ink_margin", DEFAULT_INK_MARGIN)),
        )

    @property
    def is_glyph(self) -> bool:
        """Digits/glyphs/sketches on a plain background (not photos)."""
        return self.background in ("dark", "light")


def prepare_image(
    data: bytes | Image.Image | PlainPng,
    spec: ImageSpec,
    *,
    invert: Invert = Invert.auto,
    max_pixels: int,
    name: str | None = None,
) -> np.ndarray:
    """Decode ``data`` (the file's bytes, or what ``open_image`` returned for them) and fit it
    to ``spec``: uint8 array ``(height, width, channels)``."""
    if isinstance(data, bytes):
        data = open_image(data, max_pixels=max_pixels, name=name)
    if isinstance(data, PlainPng):
        data = _decode_plain(data, max_pixels=max_pixels, name=name)
        if isinstance(data, np.ndarray):
            if spec.is_glyph and data.ndim == 2:  # gray levels already: no Pillow image
                return _fitted_glyph(data, spec, invert)
            data = Image.fromarray(data)
    image = decode_image(data, max_pixels=max_pixels, name=name, target=(spec.width, spec.height))
    if spec.is_glyph:
        return _fitted_glyph(_to_gray_array(image), spec, invert)
    image = image.convert("L" if spec.channels == 1 else "RGB")
    if invert is Invert.true:  # auto never inverts photos
        image = Image.eval(image, lambda v: 255 - v)
    pixels = np.asarray(_resize(image, (spec.width, spec.height)), dtype=np.uint8)
    return pixels.reshape(spec.height, spec.width, spec.channels)


def _fitted_glyph(gray: np.ndarray, spec: ImageSpec, invert: Invert) -> np.ndarray:
    pixels = fit_glyph(gray, spec, invert=invert)[..., None]
    return np.repeat(pixels, spec.channels, axis=-1) if spec.channels > 1 else pixels


class _DecodingErrors:
    """Pillow's many exceptions -> the domain errors the API answers with a 4xx. (A class, not
    a generator context manager: it runs twice per upload.)"""

    def __init__(self, name: str | None) -> None:
        self.name = name

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _tb) -> bool:
        if exc is None or isinstance(exc, ServingError) or not isinstance(exc, Exception):
            return False
        name = self.name
        if isinstance(exc, Image.DecompressionBombError):
            raise PayloadTooLargeError(f"the image has too many pixels ({exc})", file=name) from exc
        if isinstance(exc, UnidentifiedImageError):
            raise UnsupportedMediaTypeError(
                "the file is not a PNG, JPEG, BMP, GIF or WebP image",
                file=name,
            ) from exc
        # Pillow's plugins report truncated and corrupt data with many exception types
        # (OSError "image file is truncated", SyntaxError, ValueError, struct.error, ...).
        raise InvalidInputError(f"the image is corrupt or truncated ({exc})", file=name) from exc


def open_image(data: bytes, *, max_pixels: int, name: str | None = None) -> Image.Image | PlainPng:
    """The image's header only (nothing decoded yet): its structure (``app.image_headers``),
    format and pixel count checked. A small plain PNG is left to libspng (``app.plain_png``)."""
    if not data:
        raise InvalidInputError("the file is empty", file=name)
    plain = read_plain_png(data)  # a plain PNG's chunks are few, known and uncompressed
    if plain is None:
        check_structure(data, name)  # bounded: before Pillow reads it chunk by chunk
        return _open_with_pillow(data, max_pixels=max_pixels, name=name)
    _check_pixel_count(plain.width, plain.height, max_pixels, name)
    return plain


def _open_with_pillow(data: bytes, *, max_pixels: int, name: str | None) -> Image.Image:
    with _DecodingErrors(name):
        image = Image.open(io.BytesIO(data), formats=SUPPORTED_FORMATS)
        _check_pixel_count(*image.size, max_pixels, name)
    return image


def _decode_plain(
    plain: PlainPng, *, max_pixels: int, name: str | None
) -> np.ndarray | Image.Image:
    """libspng's pixels, or, when it refuses the file, Pillow's opened image (for its verdict)."""
    pixels = plain.decode()
    return (
        pixels
        if pixels is not None
        else _open_with_pillow(plain.data, max_pixels=max_pixels, name=name)
    )


def _check_pixel_count(width: int, height: int, max_pixels: int, name: str | None) -> None:
    if width * height > max_pixels:
        raise PayloadTooLargeError(
            f"the image has {width}x{height} = {width * height} pixels, more than the "
            f"limit of {max_pixels} (max_image_pixels)",
            file=name,
        )


def decode_image(
    data: bytes | Image.Image | PlainPng,
    *,
    max_pixels: int,
    name: str | None = None,
    target: tuple[int, int] | None = None,
) -> Image.Image:
    """Fully decoded first frame, alpha flattened, in mode ``L`` or ``RGB``.

    Memory stays near one copy of the decoded picture (about ``width x height x bands`` bytes,
    at most 4 bytes per pixel of ``max_pixels``): JPEG decodes at a reduced scale (``draft``),
    and any picture far larger than ``target`` (width, height) is reduced by an integer factor
    right after decoding, before any conversion."""
    image = open_image(data, max_pixels=max_pixels, name=name) if isinstance(data, bytes) else data
    if isinstance(image, PlainPng):
        image = _decode_plain(image, max_pixels=max_pixels, name=name)
        if isinstance(image, np.ndarray):
            return Image.fromarray(image)  # small, and already L or RGB
    with _DecodingErrors(name):
        image.seek(0)  # GIF / animated WebP: the first frame
        if target is not None and image.format == "JPEG":
            # Decode at the smallest 1/2^k scale still >= the working size.
            image.draft(image.mode, _working_size(target))
        image.load()
        if target is not None:
            image = _reduce(image, target)
    if image.width < 1 or image.height < 1:
        raise InvalidInputError("the image has no pixels", file=name)
    return _flatten(image)


MIN_WORKING_SIDE = 1024  # glyphs may be small on a big canvas: keep detail to crop them


def _working_size(target: tuple[int, int]) -> tuple[int, int]:
    """The least size worth keeping for a ``target`` input: 4x it, and 1024 px a side."""
    return max(4 * target[0], MIN_WORKING_SIDE), max(4 * target[1], MIN_WORKING_SIDE)


def _reduce(image: Image.Image, target: tuple[int, int]) -> Image.Image:
    """Shrink by the largest integer factor that keeps the working size (box average)."""
    work_w, work_h = _working_size(target)
    factor = min(image.width // work_w, image.height // work_h)
    if factor < 2:
        return image
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif image.mode not in ("L", "LA", "RGB", "RGBA", "I", "F", "I;16", "I;16L", "I;16B"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    return image.reduce(factor)


def _flatten(image: Image.Image) -> Image.Image:
    """``L`` or ``RGB``; transparency composited on a background that contrasts with the
    visible pixels (a drawing's dark strokes on a transparent canvas land on white). uint8
    operations only: no float copy of a big picture."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        values = np.asarray(image, dtype=np.float32)
        scale = 65535.0 if values.max(initial=0) > 255 else 255.0
        return Image.fromarray(np.clip(values / scale * 255, 0, 255).astype(np.uint8), "L")
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    )
    if not has_alpha:
        if image.mode in ("L", "RGB"):
            return image
        return (
            image.convert("L")
            if image.mode in ("1", "P") and _is_gray(image)
            else image.convert("RGB")
        )
    rgba = image.convert("RGBA")
    backdrop = 255 if _mean_visible_luminance(rgba) < 128 else 0
    canvas = Image.new("RGBA", rgba.size, (backdrop, backdrop, backdrop, 255))
    return Image.alpha_composite(canvas, rgba).convert("RGB")


def _mean_visible_luminance(rgba: Image.Image) -> float:
    """Mean gray level of the visible pixels, weighted by their opacity (on a thumbnail)."""
    small = (
        rgba
        if rgba.width * rgba.height <= 256 * 256
        else rgba.resize((min(rgba.width, 256), min(rgba.height, 256)), Image.Resampling.BOX)
    )
    values = np.asarray(small, dtype=np.float64)
    alpha = values[..., 3] / 255.0
    visible = float(alpha.sum())
    return float((values[..., :3].mean(axis=-1) * alpha).sum() / visible) if visible else 0.0


def _is_gray(image: Image.Image) -> bool:
    if image.mode in ("1", "L"):
        return True
    palette = image.convert("RGB")
    r, g, b = palette.split()
    return r.tobytes() == g.tobytes() == b.tobytes()


def _to_gray_array(image: Image.Image) -> np.ndarray:
    """uint8 gray levels (``fit_glyph`` turns them to floats only when it has to)."""
    return np.asarray(image if image.mode == "L" else image.convert("L"))


def border_level(gray: np.ndarray) -> float:
    """Median of the outermost rows and columns: the image's background level."""
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    border.sort()  # np.median without its generic machinery: this runs on every upload
    middle = len(border) // 2
    if len(border) % 2:
        return float(border[middle])
    return (float(border[middle - 1]) + float(border[middle])) / 2


def should_invert(gray: np.ndarray, background: str, invert: Invert) -> bool:
    """``auto``: invert when the image's background is light and the model's is dark, or the
    other way round."""
    if invert is not Invert.auto:
        return invert is Invert.true
    image_is_light = border_level(gray) >= 128
    return image_is_light != (background == "light")


def fit_glyph(gray: np.ndarray, spec: ImageSpec, *, invert: Invert = Invert.auto) -> np.ndarray:
    """A gray image of strokes (uint8 or float levels) -> ``(height, width)`` uint8 in the
    model's polarity."""
    flip = should_invert(gray, spec.background, invert)
    if gray.shape == (spec.height, spec.width) and not flip:
        # Already the model's size and polarity: a sample prepared like the training data.
        if gray.dtype == np.uint8:
            return gray
        return np.clip(np.rint(gray), 0, 255).astype(np.uint8)
    gray = gray.astype(np.float64)
    if flip:
        gray = 255.0 - gray
    # Work with bright strokes on a dark background, then turn back for light-background models.
    ink = gray if spec.background == "dark" else 255.0 - gray
    background = border_level(ink)
    peak = float(np.percentile(ink, 99.5))
    if peak - background < MIN_CONTRAST:  # blank (or inverted the wrong way on purpose)
        out = _resize_array(ink, (spec.width, spec.height))
    else:
        ink = np.clip((ink - background) / (peak - background), 0.0, 1.0) * 255.0
        out = _fit_strokes(ink, spec)
    out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out if spec.background == "dark" else 255 - out


def _fit_strokes(ink: np.ndarray, spec: ImageSpec) -> np.ndarray:
    rows = np.flatnonzero((ink > INK_THRESHOLD).any(axis=1))
    cols = np.flatnonzero((ink > INK_THRESHOLD).any(axis=0))
    strokes = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    box_h = max(1, round(spec.height * (1 - 2 * spec.ink_margin)))
    box_w = max(1, round(spec.width * (1 - 2 * spec.ink_margin)))
    scale = min(box_h / strokes.shape[0], box_w / strokes.shape[1])
    new_w = max(1, round(strokes.shape[1] * scale))
    new_h = max(1, round(strokes.shape[0] * scale))
    glyph = _resize_array(strokes, (new_w, new_h))
    canvas = np.zeros((spec.height, spec.width), dtype=np.float64)
    top, left = _centre_of_mass_offset(glyph, spec.height, spec.width)
    canvas[top : top + new_h, left : left + new_w] = glyph
    return canvas


def _centre_of_mass_offset(glyph: np.ndarray, height: int, width: int) -> tuple[int, int]:
    """Top-left corner that puts the glyph's centre of mass at the canvas centre (kept inside)."""
    total = glyph.sum()
    h, w = glyph.shape
    if total <= 0:
        com_y, com_x = (h - 1) / 2, (w - 1) / 2
    else:
        com_y = float((glyph.sum(axis=1) * np.arange(h)).sum() / total)
        com_x = float((glyph.sum(axis=0) * np.arange(w)).sum() / total)
    top = int(np.clip(round((height - 1) / 2 - com_y), 0, height - h))
    left = int(np.clip(round((width - 1) / 2 - com_x), 0, width - w))
    return top, left


def _resize_array(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    image = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")
    return np.asarray(_resize(image, size), dtype=np.float64)


def _resize(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Area averaging when shrinking (like the training pipeline's ``area`` resize), bilinear
    when enlarging."""
    if image.size == size:
        return image
    shrinking = image.width >= size[0] and image.height >= size[1]
    return image.resize(size, Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR)
