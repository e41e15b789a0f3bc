"""Bounded walks over an image file's structure, before Pillow reads it.

Pillow reads a file's header in Python, a chunk, marker or block at a time, and inflates PNG
ICC profiles and compressed text as it goes (up to 1 MB each, ``PngImagePlugin.MAX_TEXT_CHUNK``);
libjpeg passes over the whole picture once per scan of a progressive JPEG. A file built of
nothing else costs far more than its size suggests (2 vCPUs, 2026-12-07): 200 KB of compressed
ICC chunks 0.4 s, 1.2 MB of empty PNG chunks 0.3 s, 1 MB of JPEG fill bytes 0.35 s, 8 MB of
empty JPEG markers about 3 s, 90 KB of empty scans 1.55 s to decode. A real picture has a
handful of each, so each walk below counts them (8 bytes read a step, no decompression; the
JPEG's scans by a search for their marker) and stops at a limit far above what any encoder
writes; past it the file is refused (400).
"""

from __future__ import annotations

import struct

from app.errors import InvalidInputError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Every chunk, image data included: a 10 MB PNG written in 8 KB data chunks has 1,280.
MAX_PNG_CHUNKS = 4096
MAX_PNG_COMPRESSED_METADATA = 16  # iCCP, zTXt and iTXt chunks, each inflated by Pillow
# Before the first scan: a 1 MB ICC profile or XMP packet is split into 16 segments of 64 KB.
MAX_JPEG_SEGMENTS = 1024
MAX_JPEG_STRAY_BYTES = 1024  # fill bytes (0xFF) and junk between segments
# 5,000 empty scans (90 KB) in a 2048x2048 progressive JPEG: 1.55 s to decode. An encoder
# writes about 10 (libjpeg's progressive script), plus an EXIF thumbnail's or the pictures' of
# a multi-picture file.
MAX_JPEG_SCANS = 256
JPEG_STANDALONE_MARKERS = frozenset({0x00, 0x01, *range(0xD0, 0xD9)})  # no length follows
MAX_GIF_BLOCKS = 4096  # extension blocks and their sub-blocks before the first image


def check_structure(data: bytes, name: str | None) -> None:
    """Refuse a PNG, JPEG or GIF whose structure before its image data is far larger than a
    picture's (other files: Pillow's own parsing, in C or of a fixed size)."""
    if data.startswith(PNG_SIGNATURE):
        _check_png(data, name)
    elif data.startswith(b"\xff\xd8"):
        _check_jpeg(data, name)
    elif data.startswith((b"GIF87a", b"GIF89a")):
        _check_gif(data, name)


def _refuse(what: str, name: str | None) -> InvalidInputError:
    return InvalidInputError(f"{what}: not a picture this service reads", file=name)


def _check_png(data: bytes, name: str | None) -> None:
    position, chunks, metadata = len(PNG_SIGNATURE), 0, 0
    while position + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, position)
        chunks += 1
        metadata += kind in (b"iCCP", b"zTXt", b"iTXt")
        if chunks > MAX_PNG_CHUNKS or metadata > MAX_PNG_COMPRESSED_METADATA:
            raise _refuse(
                f"the PNG has more than {MAX_PNG_CHUNKS} chunks, or more than "
                f"{MAX_PNG_COMPRESSED_METADATA} compressed metadata chunks (iCCP, zTXt, iTXt)",
                name,
            )
        if kind == b"IEND":
            return
        position += length + 12  # length, type, data, CRC


def _check_jpeg(data: bytes, name: str | None) -> None:
    position, segments, stray, size = 2, 0, 0, len(data)
    while position + 1 < size:
        if data[position] != 0xFF or data[position + 1] == 0xFF:
            stray += 1  # junk, or a fill byte before a marker: Pillow reads these one by one
            position += 1
        else:
            marker = data[position + 1]
            if marker == 0xDA:  # the first scan: in entropy-coded data 0xFF is never 0xFFDA
                if data.count(b"\xff\xda", position) > MAX_JPEG_SCANS:
                    raise _refuse(f"the JPEG has more than {MAX_JPEG_SCANS} scans", name)
                return
            if marker == 0xD9:  # end of image
                return
            segments += 1
            if marker in JPEG_STANDALONE_MARKERS:
                position += 2
            elif position + 4 > size:
                return
            else:
                position += 2 + (data[position + 2] << 8 | data[position + 3])
        if segments > MAX_JPEG_SEGMENTS or stray > MAX_JPEG_STRAY_BYTES:
            raise _refuse(
                f"the JPEG has more than {MAX_JPEG_SEGMENTS} segments, or more than "
                f"{MAX_JPEG_STRAY_BYTES} fill or stray bytes, before its image data",
                name,
            )


def _check_gif(data: bytes, name: str | None) -> None:
    if len(data) < 13:
        return
    flags = data[10]
    position = 13 + (3 << ((flags & 0x07) + 1) if flags & 0x80 else 0)  # global color table
    blocks = 0
    while position < len(data) and data[position] == 0x21:  # an extension (0x2C: the image)
        position += 2  # introducer and label
        while position < len(data):  # sub-blocks, up to the empty one
            length = data[position]
            position += 1 + length
            blocks += 1
            if blocks > MAX_GIF_BLOCKS:
                raise _refuse(
                    f"the GIF has more than {MAX_GIF_BLOCKS} extension blocks before its image",
                    name,
                )
            if length == 0:
                break
