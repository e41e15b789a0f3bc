"""Unit tests of ``app/imaging.py``: decoding, guards, polarity and fitting (no model needed)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from app.errors import InvalidInputError, PayloadTooLargeError, UnsupportedMediaTypeError
from app.imaging import ImageSpec, Invert, decode_image, fit_glyph, prepare_image, should_invert

DIGIT = ImageSpec(height=28, width=28, channels=1, background="dark")
GLYPH_RGB = ImageSpec(height=32, width=32, channels=3, background="light")
PHOTO = ImageSpec(height=16, width=24, channels=3, background="natural")
MAX_PIXELS = 1_000_000


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def drawn_bar(size=(60, 90), *, ink="black", paper="white", mode="RGB") -> Image.Image:
    """A vertical bar (a '1') drawn dark-on-light, taller than wide."""
    image = Image.new(mode, size, paper)
    ImageDraw.Draw(image).line(
        [(size[0] // 2, 15), (size[0] // 2, size[1] - 15)], fill=ink, width=6
    )
    return image


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "GIF", "WEBP"])
def test_every_supported_format_decodes(fmt):
    pixels = prepare_image(encode(drawn_bar(), fmt), DIGIT, max_pixels=MAX_PIXELS)
    assert pixels.shape == (28, 28, 1) and pixels.dtype == np.uint8
    # Dark-on-light drawing inverted for the dark-background model: bright strokes, dark border.
    assert pixels[0].max() < 30 and pixels.max() > 200


def test_gif_uses_the_first_frame():
    first = Image.new("L", (20, 20), 0)
    second = Image.new("L", (20, 20), 255)
    data = encode(first, "GIF", save_all=True, append_images=[second])
    assert np.asarray(decode_image(data, max_pixels=MAX_PIXELS)).max() == 0


def test_transparent_canvas_drawing_lands_on_white():
    """Dark strokes on a transparent canvas (what drawing apps export) keep their contrast."""
    canvas = Image.new("RGBA", (50, 50), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).line([(25, 5), (25, 45)], fill=(0, 0, 0, 255), width=5)
    gray = np.asarray(decode_image(encode(canvas, "PNG"), max_pixels=MAX_PIXELS).convert("L"))
    assert gray[0, 0] == 255 and gray[25, 25] == 0


def test_sixteen_bit_png_is_scaled_not_clipped():
    values = np.full((10, 10), 30000, dtype=np.uint16)
    image = decode_image(encode(Image.fromarray(values), "PNG"), max_pixels=MAX_PIXELS)
    assert image.mode == "L" and 100 < np.asarray(image)[0, 0] < 140


def test_empty_file_is_rejected():
    with pytest.raises(InvalidInputError, match="empty"):
        decode_image(b"", max_pixels=MAX_PIXELS, name="blank.png")


def test_non_image_bytes_are_unsupported():
    with pytest.raises(UnsupportedMediaTypeError):
        decode_image(b"%PDF-1.4 not an image", max_pixels=MAX_PIXELS)


@pytest.mark.parametrize("fmt", ["TIFF", "ICO", "PCX", "PPM", "TGA"])
def test_other_image_formats_are_rejected_without_being_parsed(fmt, monkeypatch):
    from PIL import Image as PillowImage

    parsed = []
    plugin = PillowImage.OPEN[fmt][0]  # the format's image class: its _open parses the header
    monkeypatch.setattr(plugin, "_open", lambda self: parsed.append(fmt))
    with pytest.raises(UnsupportedMediaTypeError, match="PNG, JPEG, BMP, GIF or WebP"):
        decode_image(encode(drawn_bar(), fmt), max_pixels=MAX_PIXELS)
    assert parsed == []


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_image_is_rejected(fmt):
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8))
    data = encode(noise, fmt)
    with pytest.raises(InvalidInputError, match="corrupt or truncated"):
        decode_image(data[: len(data) // 2], max_pixels=MAX_PIXELS)


def test_decompression_bomb_is_refused_before_decoding():
    # 4000 x 4000 of one colour compresses to a few kB but would decode to 16 million pixels.
    data = encode(Image.new("L", (4000, 4000)), "PNG")
    assert len(data) < 100_000
    with pytest.raises(PayloadTooLargeError, match="pixels"):
        decode_image(data, max_pixels=MAX_PIXELS)


def test_photos_are_squashed_to_the_input_size_in_rgb():
    photo = Image.new("L", (300, 100), 200)
    pixels = prepare_image(encode(photo, "PNG"), PHOTO, max_pixels=MAX_PIXELS)
    assert pixels.shape == (16, 24, 3)
    assert np.all(pixels == 200)  # auto never inverts photos


def test_glyphs_keep_their_aspect_ratio():
    """A tall thin bar stays tall and thin (cropped to the strokes, fitted, not squashed)."""
    pixels = prepare_image(encode(drawn_bar((300, 100)), "PNG"), DIGIT, max_pixels=MAX_PIXELS)
    ink = np.argwhere(pixels[..., 0] > 128)
    height = ink[:, 0].max() - ink[:, 0].min() + 1
    width = ink[:, 1].max() - ink[:, 1].min() + 1
    assert height >= 15 and width <= 6
    # Centred with MNIST's margin: nothing in the outer 3 pixels.
    assert pixels[:3].max() == 0 and pixels[-3:].max() == 0


def test_light_background_models_keep_dark_strokes_and_get_all_channels():
    pixels = prepare_image(encode(drawn_bar(), "PNG"), GLYPH_RGB, max_pixels=MAX_PIXELS)
    assert pixels.shape == (32, 32, 3)
    assert np.array_equal(pixels[..., 0], pixels[..., 2])
    assert pixels[0, 0, 0] == 255 and pixels.min() < 50


def test_light_on_dark_drawing_is_inverted_for_a_light_model():
    image = drawn_bar(ink="white", paper="black")
    pixels = prepare_image(encode(image, "PNG"), GLYPH_RGB, max_pixels=MAX_PIXELS)
    assert pixels[0, 0, 0] == 255 and pixels.min() < 50


@pytest.mark.parametrize(
    ("border", "background", "invert", "expected"),
    [
        (255, "dark", Invert.auto, True),
        (0, "dark", Invert.auto, False),
        (255, "light", Invert.auto, False),
        (0, "light", Invert.auto, True),
        (0, "dark", Invert.true, True),
        (255, "dark", Invert.false, False),
    ],
)
def test_should_invert(border, background, invert, expected):
    gray = np.full((10, 10), float(border))
    assert should_invert(gray, background, invert) is expected


def test_explicit_no_invert_keeps_the_polarity():
    gray = np.asarray(drawn_bar().convert("L"), dtype=np.float64)
    out = fit_glyph(gray, DIGIT, invert=Invert.false)
    assert out[0, 0] > 200  # still a light background: the caller asked for it


def test_blank_image_does_not_fail():
    pixels = prepare_image(
        encode(Image.new("L", (40, 40), 255), "PNG"), DIGIT, max_pixels=MAX_PIXELS
    )
    assert pixels.shape == (28, 28, 1) and pixels.max() == 0
