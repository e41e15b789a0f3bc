"""Small plain PNGs decoded in one C call (libspng, through ``pyspng``), where Pillow opens a PNG
through about 230 Python calls: 25 µs of the 32 it takes to decode and fit a 28x28 digit alone,
and about four times that in a busy server, on the event loop (``python -m bench.image_path``).

"Plain" means nothing in the file can make two decoders disagree: 8-bit gray or RGB samples
(Pillow's modes ``L`` and ``RGB``), not interlaced, no palette, no transparency, no compressed
metadata, only the chunks listed below, every chunk's CRC right and ``IEND`` present. Decoding
such a file is exact, so libspng gives the very pixels Pillow would. Any other PNG, a larger
one, or one that libspng refuses is read by Pillow as before, and Pillow's verdict (a 4xx) is
the answer.

Only small pictures (``MAX_PIXELS``, ``MAX_BYTES``) take this path: pyspng holds the GIL while it
decodes (a 128x128 RGB picture of noise in 22 µs, against Pillow's 84 µs, most of which it
spends without the GIL; at 256x256, 0.5 ms against 0.8 ms, and 25 % fewer pictures served by
two cores: ``python -m bench.starvation --scenarios plain_pictures``), and it checks no CRC
itself, so this module checks them, which costs one pass over the file.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np
import pyspng

from app.image_headers import PNG_SIGNATURE

MAX_PIXELS = 128 * 128
MAX_BYTES = 64 * 1024
MAX_CHUNKS = 64
# Chunks that carry no pixels and that neither decoder applies to them (gamma, chromaticity,
# rendering intent, density, time, significant bits, background colour, plain text).
PASSIVE_CHUNKS = frozenset({b"gAMA", b"cHRM", b"sRGB", b"pHYs", b"tIME", b"sBIT", b"bKGD", b"tEXt"})
MODES = {0: "L", 2: "RGB"}  # PNG colour type -> Pillow mode, at bit depth 8
_IHDR = struct.Struct(">I4sIIBBBBB")  # length, type, width, height, depth, colour, 3 methods


@dataclass(frozen=True)
class PlainPng:
    """A PNG that ``read_plain_png`` found plain: its bytes and header, nothing decoded yet."""

    data: bytes
    width: int
    height: int
    mode: str  # "L" or "RGB"

    def decode(self) -> np.ndarray | None:
        """``(height, width)`` uint8 for ``L``, ``(height, width, 3)`` for ``RGB``; ``None`` when
        libspng refuses the file (corrupt image data), for Pillow to say why."""
        try:
            pixels = pyspng.load(self.data)
        except RuntimeError:
            return None
        expected = (self.height, self.width) if self.mode == "L" else (self.height, self.width, 3)
        return pixels if pixels.shape == expected and pixels.dtype == np.uint8 else None


def read_plain_png(data: bytes) -> PlainPng | None:
    """The file as a ``PlainPng`` when it is one (see the module's doc), else ``None``."""
    if len(data) > MAX_BYTES or len(data) < len(PNG_SIGNATURE) + _IHDR.size + 4:
        return None
    if not data.startswith(PNG_SIGNATURE):
        return None
    length, kind, width, height, depth, colour, compression, filtering, interlace = (
        _IHDR.unpack_from(data, len(PNG_SIGNATURE))
    )
    if (
        length != 13
        or kind != b"IHDR"
        or depth != 8
        or colour not in MODES
        or (compression, filtering) != (0, 0)
        or interlace != 0  # Adam7: rare in small files, and Pillow cannot write one to test
        or not 0 < width * height <= MAX_PIXELS
    ):
        return None
    if not _chunks_are_plain(data):
        return None
    return PlainPng(data, width, height, MODES[colour])


def _chunks_are_plain(data: bytes) -> bool:
    """Every chunk whole, known and with its CRC right; image data, then ``IEND``."""
    position, chunks, seen_data = len(PNG_SIGNATURE), 0, False
    while position + 12 <= len(data) and chunks < MAX_CHUNKS:
        length, kind = struct.unpack_from(">I4s", data, position)
        end = position + 8 + length
        if end + 4 > len(data):
            return False
        (crc,) = struct.unpack_from(">I", data, end)
        if zlib.crc32(memoryview(data)[position + 4 : end]) != crc:
            return False
        chunks += 1
        if kind == b"IEND":
            return seen_data
        first = chunks == 1
        if first != (kind == b"IHDR"):  # the header first, and only there
            return False
        if kind == b"IDAT":
            seen_data = True
        elif not first and kind not in PASSIVE_CHUNKS:
            return False
        position = end + 4
    return False
