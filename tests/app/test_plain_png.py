"""``app/plain_png.py``: small 8-bit gray and RGB PNGs are decoded by libspng to exactly the pixels
Pillow gives; every other PNG, and every one libspng refuses, is read by Pillow as before."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from app import imaging
from app.errors import InvalidInputError, PayloadTooLargeError
from app.imaging import ImageSpec, Invert, open_image, prepare_image
from app.plain_png import MAX_PIXELS, PlainPng, read_plain_png

SIGNATURE = b"\x89PNG\r\n\x1a\n"
SPECS = {
    "digit": ImageSpec(28, 28, 1, "dark"),
    "glyph on light, 3 channels": ImageSpec(32, 32, 3, "light", ink_margin=0.0),
    "gray photo": ImageSpec(64, 64, 1),
    "colour photo": ImageSpec(48, 40, 3),
}


def encode(image: Image.Image, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **kwargs)
    return buffer.getvalue()


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def built(width: int, height: int, rows: bytes) -> bytes:
    """An 8-bit gray PNG written by hand around ``rows`` (filter bytes and samples): valid CRCs
    whatever the rows hold."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        SIGNATURE
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def with_gamma(png: bytes) -> bytes:
    """``png`` with a gAMA chunk (gamma 1/2.2) after its header: neither decoder applies it."""
    return png[:33] + chunk(b"gAMA", struct.pack(">I", 45455)) + png[33:]


def pictures() -> dict[str, bytes]:
    rng = np.random.default_rng(7)
    noise_gray = rng.integers(0, 256, (37, 53), dtype=np.uint8)
    noise_rgb = rng.integers(0, 256, (61, 45, 3), dtype=np.uint8)
    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 255
    text = PngImagePlugin.PngInfo()
    text.add_text("Software", "a drawing program")
    return {
        "28x28 digit": encode(Image.fromarray(digit)),
        "dark digit on white, 160x100": encode(Image.fromarray(255 - digit).resize((160, 100))),
        "gray noise": encode(Image.fromarray(noise_gray), compress_level=0),
        "rgb noise": encode(Image.fromarray(noise_rgb), compress_level=9),
        "rgb with text, gamma and dpi": with_gamma(
            encode(Image.fromarray(noise_rgb), pnginfo=text, dpi=(300, 300))
        ),
        "1x1": encode(Image.new("L", (1, 1), 200)),
    }


@pytest.mark.parametrize("name", pictures())
@pytest.mark.parametrize("spec", SPECS.values(), ids=SPECS.keys())
@pytest.mark.parametrize("invert", [Invert.auto, Invert.true])
def test_plain_pngs_give_exactly_what_pillow_gives(name, spec, invert, monkeypatch):
    data = pictures()[name]
    assert isinstance(open_image(data, max_pixels=10**7), PlainPng)
    fast = prepare_image(data, spec, invert=invert, max_pixels=10**7)
    assert fast.shape == (spec.height, spec.width, spec.channels)

    monkeypatch.setattr(imaging, "read_plain_png", lambda data: None)  # as before libspng
    assert isinstance(open_image(data, max_pixels=10**7), Image.Image)
    assert np.array_equal(fast, prepare_image(data, spec, invert=invert, max_pixels=10**7))


def not_plain() -> dict[str, bytes]:
    rgb = Image.new("RGB", (20, 20), (10, 200, 30))
    digit = encode(Image.new("L", (28, 28), 0))
    iend = digit.index(b"IEND") - 4
    bad_crc = bytearray(digit)
    bad_crc[iend - 1] ^= 1  # the IDAT chunk's CRC
    return {
        "palette": encode(rgb.convert("P")),
        "rgba": encode(rgb.convert("RGBA")),
        "gray with alpha": encode(rgb.convert("LA")),
        "16-bit": encode(Image.new("I;16", (20, 20), 3000)),
        "1-bit": encode(rgb.convert("1")),
        "gray with a transparent level": encode(Image.new("L", (20, 20)), transparency=0),
        "with an ICC profile": encode(rgb, icc_profile=b"\0" * 200),
        "a compressed text": digit[:33]
        + chunk(b"zTXt", b"k\x00\x00" + zlib.compress(b"v"))
        + digit[33:],
        "an unknown chunk": digit[:33] + chunk(b"abCd", b"") + digit[33:],
        "interlaced": digit[:8] + chunk(b"IHDR", digit[16:28] + b"\x01") + digit[33:],
        "no IEND": digit[:iend],
        "a wrong CRC": bytes(bad_crc),
        "over MAX_PIXELS": encode(Image.new("L", (MAX_PIXELS + 1, 1))),
        "jpeg": (lambda b: (rgb.save(b, "JPEG"), b.getvalue())[1])(io.BytesIO()),
    }


@pytest.mark.parametrize("data", not_plain().values(), ids=not_plain().keys())
def test_other_pngs_are_left_to_pillow(data):
    assert read_plain_png(data) is None
    assert not isinstance(open_image(data, max_pixels=10**7), PlainPng)


def test_image_data_libspng_refuses_gets_pillows_verdict():
    rows = b"".join(b"\x00" + bytes(range(28)) for _ in range(28))
    truncated = built(28, 28, rows[:-100])  # too few rows: Pillow calls it truncated
    assert read_plain_png(truncated) is not None  # well formed around its image data
    assert read_plain_png(truncated).decode() is None
    with pytest.raises(InvalidInputError, match="truncated"):
        prepare_image(truncated, SPECS["digit"], max_pixels=10**7)

    bad_filter = built(28, 28, b"\x09" + rows[1:])  # filter type 9 does not exist
    with pytest.raises(InvalidInputError, match="corrupt or truncated"):
        prepare_image(bad_filter, SPECS["digit"], max_pixels=10**7)


def test_image_data_only_pillow_accepts_is_read_by_pillow_as_before(monkeypatch):
    rows = b"".join(b"\x00" + bytes(range(i, i + 28)) for i in range(28))
    short = built(28, 28, rows[:-29])  # the last row missing: Pillow reads it, libspng not
    assert read_plain_png(short).decode() is None
    pixels = prepare_image(short, SPECS["gray photo"], max_pixels=10**7)
    monkeypatch.setattr(imaging, "read_plain_png", lambda data: None)
    assert np.array_equal(pixels, prepare_image(short, SPECS["gray photo"], max_pixels=10**7))


def test_the_pixel_limit_holds_for_plain_pngs():
    data = pictures()["gray noise"]  # 53 x 37
    with pytest.raises(PayloadTooLargeError, match="53x37 = 1961 pixels"):
        open_image(data, max_pixels=1960, name="noise.png")
