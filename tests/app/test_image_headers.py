"""``app/image_headers.py``: files whose structure before the image data is far larger than a
picture's are refused before Pillow reads them; real pictures with their metadata pass."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image, PngImagePlugin

from app.errors import InvalidInputError
from app.image_headers import check_structure
from app.imaging import decode_image, open_image

MAX_PIXELS = 1_000_000


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def after_png_header(extra: bytes) -> bytes:
    png = encode(Image.new("L", (28, 28)), "PNG")
    return png[:33] + extra + png[33:]  # signature (8) + IHDR chunk (25), then the rest


def after_jpeg_start(extra: bytes) -> bytes:
    jpeg = encode(Image.new("L", (28, 28)), "JPEG")
    return jpeg[:2] + extra + jpeg[2:]


def before_gif_image(extra: bytes) -> bytes:
    gif = encode(Image.new("L", (28, 28)), "GIF")
    flags = gif[10]
    start = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    return gif[:start] + extra + gif[start:]


ICC_BOMB = b"p\x00\x00" + zlib.compress(b"\0" * 1_000_000, 9)  # 1 KB that inflates to 1 MB

HOSTILE = {
    # Each of these costs Pillow tens to hundreds of milliseconds to read (its module docstring).
    "png: 20 compressed ICC profiles": after_png_header(png_chunk(b"iCCP", ICC_BOMB) * 20),
    "png: 20 compressed texts": after_png_header(png_chunk(b"zTXt", b"k\x00" + ICC_BOMB[2:]) * 20),
    "png: 5,000 empty chunks": after_png_header(png_chunk(b"abCd", b"") * 5000),
    "jpeg: 2,000 empty markers": after_jpeg_start(b"\xff\xef\x00\x02" * 2000),
    "jpeg: 2,000 fill bytes": after_jpeg_start(b"\xff" * 2000),
    "jpeg: 2,000 stray bytes": after_jpeg_start(b"\x00" * 2000),
    "jpeg: 300 empty scans": after_jpeg_start(b"")[:-2]
    + b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00" * 300
    + b"\xff\xd9",
    "gif: 5,000 comments": before_gif_image(b"\x21\xfe\x01x\x00" * 5000),
    "gif: a comment of 5,000 sub-blocks": before_gif_image(b"\x21\xfe" + b"\x01x" * 5000 + b"\x00"),
}


@pytest.mark.parametrize("data", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_file_of_headers_is_refused_before_pillow_reads_it(data):
    with pytest.raises(InvalidInputError, match="not a picture this service reads") as caught:
        open_image(data, max_pixels=MAX_PIXELS, name="x.img")
    assert caught.value.file == "x.img"


def real_pictures() -> dict[str, bytes]:
    photo = Image.effect_noise((64, 48), 60).convert("RGB")
    icc = bytes(range(256)) * 800  # 200 KB: stored in several 64 KB segments of a JPEG
    exif = Image.Exif()
    exif[0x010F] = "camera"
    info = PngImagePlugin.PngInfo()
    for i in range(10):
        info.add_text(f"key{i}", "value " * 50, zip=i % 2 == 0)
    info.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta/>" * 500, zip=True)
    frames = [Image.new("P", (16, 16), i) for i in range(3)]
    animated = io.BytesIO()
    frames[0].save(animated, "GIF", save_all=True, append_images=frames[1:], loop=0, comment=b"hi")
    return {
        "jpeg with EXIF and a 200 KB ICC profile": encode(
            photo, "JPEG", exif=exif, icc_profile=icc
        ),
        "progressive jpeg": encode(photo, "JPEG", progressive=True),
        "png with an ICC profile and 11 text chunks": encode(
            photo, "PNG", pnginfo=info, icc_profile=icc
        ),
        "png in 1 KB data chunks": _png_in_small_chunks(photo),
        "animated gif with a comment": animated.getvalue(),
        "webp": encode(photo, "WEBP"),
        "bmp": encode(photo, "BMP"),
    }


def _png_in_small_chunks(image: Image.Image) -> bytes:
    """A PNG whose image data is split into 1 KB IDAT chunks (some encoders write small ones)."""
    png = encode(image, "PNG", compress_level=0)
    head_end = png.index(b"IDAT") - 4
    length = struct.unpack(">I", png[head_end : head_end + 4])[0]
    data = png[head_end + 8 : head_end + 8 + length]
    chunks = b"".join(png_chunk(b"IDAT", data[i : i + 1024]) for i in range(0, len(data), 1024))
    return png[:head_end] + chunks + png[head_end + 12 + length :]


@pytest.mark.parametrize("data", real_pictures().values(), ids=real_pictures().keys())
def test_real_pictures_with_their_metadata_pass(data):
    check_structure(data, None)
    image = decode_image(data, max_pixels=MAX_PIXELS)
    assert image.width > 0
