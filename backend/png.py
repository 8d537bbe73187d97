"""A tiny PNG encoder and decoder: numpy, zlib and struct only (Blender-side code may not use PIL).

8-bit grey, grey+alpha, RGB and RGBA, no interlace. Rows are stored top to bottom, as PNG requires.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type
_CHANNELS = {v: k for k, v in _COLOR_TYPES.items()}


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_png(path, array) -> None:
    """Write an H×W or H×W×C (C = 1..4) uint8 array; row 0 is the top of the image."""
    Path(path).write_bytes(png_bytes(array))


def png_bytes(array) -> bytes:
    """The PNG file of an H×W or H×W×C (C = 1..4) uint8 array; row 0 is the top of the image."""
    pixels = np.asarray(array)
    if pixels.dtype != np.uint8:
        raise TypeError(f"write_png needs uint8 pixels, got {pixels.dtype}")
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.ndim != 3 or pixels.shape[2] not in _COLOR_TYPES:
        raise ValueError(f"write_png needs H×W or H×W×C with C in 1..4, got shape {pixels.shape}")
    height, width, channels = pixels.shape
    header = struct.pack(">IIBBBBB", width, height, 8, _COLOR_TYPES[channels], 0, 0, 0)
    rows = np.empty((height, 1 + width * channels), np.uint8)
    rows[:, 0] = 0  # filter type 0 (None) on every row
    rows[:, 1:] = pixels.reshape(height, -1)
    data = _SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows, 6))
    return data + _chunk(b"IEND", b"")


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _unfilter(raw: bytes, height: int, stride: int, bpp: int) -> np.ndarray:
    out = np.zeros((height, stride), np.uint8)
    prev = np.zeros(stride, np.uint8)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], np.frombuffer(raw, np.uint8, stride, start + 1)
        if kind == 0:
            row = line.copy()
        elif kind == 2:
            row = line + prev
        else:  # Sub, Average and Paeth depend on the bytes just decoded to the left
            row, up = bytearray(line.tobytes()), prev.tobytes()
            for i in range(stride):
                left = row[i - bpp] if i >= bpp else 0
                corner = up[i - bpp] if i >= bpp else 0
                if kind == 1:
                    add = left
                elif kind == 3:
                    add = (left + up[i]) >> 1
                elif kind == 4:
                    add = _paeth(left, up[i], corner)
                else:
                    raise ValueError(f"unknown PNG filter type {kind}")
                row[i] = (row[i] + add) & 0xFF
            row = np.frombuffer(bytes(row), np.uint8)
        out[y] = row
        prev = out[y]
    return out


def read_png(path) -> np.ndarray:
    """Read an 8-bit, non-interlaced PNG as an H×W×C uint8 array (C = 1, 2, 3 or 4), row 0 at the top."""
    data = Path(path).read_bytes()
    if not data.startswith(_SIGNATURE):
        raise ValueError(f"{path} is not a PNG file")
    pos, idat, header = len(_SIGNATURE), [], None
    while pos < len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if header is None:
        raise ValueError(f"{path} has no IHDR chunk")
    width, height, depth, color_type, _, _, interlace = header
    if depth != 8 or color_type not in _CHANNELS or interlace:
        raise ValueError(
            f"{path}: only 8-bit non-interlaced grey/RGB/RGBA PNGs are supported "
            f"(bit depth {depth}, colour type {color_type}, interlace {interlace})"
        )
    channels = _CHANNELS[color_type]
    pixels = _unfilter(zlib.decompress(b"".join(idat)), height, width * channels, channels)
    return pixels.reshape(height, width, channels)
