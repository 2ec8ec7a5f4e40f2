"""What a photo may be in Python, turned into the encoded bytes the library decodes (nothing else is changed)."""

from __future__ import annotations

import os
import struct
import zlib
from typing import Any, Optional, Tuple

from ._errors import InvalidImage

# What `identify_many` picks up from a folder.
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def photo_bytes(photo: Any) -> Tuple[bytes, Optional[str]]:
    """The photo's encoded bytes and, when it came from a file, the file's path (for the answer's heading).

    bytes-like: as is. str or os.PathLike: the file's bytes (OSError when it cannot be read, as `open` raises).
    A PIL image or an HxWx3 uint8 numpy array: encoded as PNG, losslessly (neither library is needed otherwise).
    """
    if isinstance(photo, (bytes, bytearray, memoryview)):
        return bytes(photo), None
    if isinstance(photo, (str, os.PathLike)):
        path = os.fspath(photo)
        with open(path, "rb") as f:
            return f.read(), path
    if _is_pil_image(photo):
        import io
        buf = io.BytesIO()
        photo.convert("RGB").save(buf, format="PNG", compress_level=1)
        return buf.getvalue(), getattr(photo, "filename", None) or None
    if _is_array(photo):
        return _png_from_array(photo), None
    raise TypeError(f"a photo is bytes, a path, a PIL image or an HxWx3 uint8 numpy array, not {type(photo).__name__}")


def _is_pil_image(x: Any) -> bool:
    return any(c.__module__.startswith("PIL.") and c.__name__ == "Image" for c in type(x).__mro__)


def _is_array(x: Any) -> bool:
    return all(hasattr(x, a) for a in ("shape", "dtype", "tobytes"))


def _png_from_array(a: Any) -> bytes:
    """An HxWx3 uint8 array as an 8-bit RGB PNG (rows unfiltered, zlib level 1): exact, and no library needed."""
    shape = tuple(a.shape)
    if len(shape) != 3 or shape[2] != 3 or str(a.dtype) != "uint8":
        raise InvalidImage(f"an array photo must be HxWx3 uint8 (RGB), not {'x'.join(map(str, shape))} {a.dtype}")
    h, w = shape[0], shape[1]
    if h == 0 or w == 0:
        raise InvalidImage(f"an array photo must not be empty ({h}x{w})")
    raw = a.tobytes()  # C order whatever the array's strides
    stride = w * 3
    rows = b"".join(b"\x00" + raw[y * stride:(y + 1) * stride] for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 1)) + chunk(b"IEND", b"")
