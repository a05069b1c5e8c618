"""A minimal grayscale PNG writer (8-bit, no interlace) in the standard library: zlib + struct.

Enough for the demo's picture of digits without matplotlib or Pillow.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Sequence

_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC-32 of type + data."""
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def encode_gray_png(pixels: bytes | Sequence[int], width: int, height: int) -> bytes:
    """The PNG file bytes of an 8-bit grayscale image.

    Args:
        pixels: ``width * height`` values in [0, 255], row-major, top row first.
        width: image width in pixels (>= 1).
        height: image height in pixels (>= 1).

    Returns:
        The bytes of a valid PNG file (color type 0, bit depth 8, filter 0 on every row).
    """
    if width < 1 or height < 1:
        raise ValueError(f"PNG size must be at least 1x1, got {width}x{height}")
    data = bytes(pixels)
    if len(data) != width * height:
        raise ValueError(f"expected {width * height} pixels for {width}x{height}, got {len(data)}")
    # Each scanline starts with its filter type byte (0: none).
    raw = b"".join(b"\x00" + data[r * width : (r + 1) * width] for r in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        _SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, 9))
        + _chunk(b"IEND", b"")
    )


def write_gray_png(
    path: str | os.PathLike[str], pixels: bytes | Sequence[int], width: int, height: int
) -> None:
    """Writes an 8-bit grayscale image to `path` as PNG (see `encode_gray_png`)."""
    with open(path, "wb") as f:
        f.write(encode_gray_png(pixels, width, height))


def decode_gray_png(blob: bytes) -> tuple[int, int, bytes]:
    """(width, height, pixels) of a PNG written by `encode_gray_png` (for tests: only
    8-bit grayscale, filter 0, one IDAT chunk or several)."""
    if not blob.startswith(_SIGNATURE):
        raise ValueError("not a PNG file")
    pos, idat, width, height = len(_SIGNATURE), b"", 0, 0
    while pos < len(blob):
        (length,) = struct.unpack(">I", blob[pos : pos + 4])
        kind, data = blob[pos + 4 : pos + 8], blob[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", blob[pos + 8 + length : pos + 12 + length])
        if crc != zlib.crc32(kind + data) & 0xFFFFFFFF:
            raise ValueError(f"bad CRC in chunk {kind!r}")
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", data)
            if (depth, color, interlace) != (8, 0, 0):
                raise ValueError("only 8-bit grayscale, non-interlaced PNGs are supported")
        elif kind == b"IDAT":
            idat += data
        pos += 12 + length
    raw = zlib.decompress(idat)
    rows = [raw[r * (width + 1) : (r + 1) * (width + 1)] for r in range(height)]
    if any(row[0] != 0 for row in rows):
        raise ValueError("only filter type 0 is supported")
    return width, height, b"".join(row[1:] for row in rows)
