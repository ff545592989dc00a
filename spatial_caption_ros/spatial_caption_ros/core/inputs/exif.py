"""Camera intrinsics from a photo's EXIF focal length (JPEG APP1 / TIFF tags, no dependency).

A photo without calibration often still says how it was taken: FocalLengthIn35mmFilm (tag
0xA405) gives the field of view directly (the equivalent focal length is defined over the
diagonal: a 36 x 24 mm frame's 43.3 mm diagonal spans the image diagonal), and
FocalLength (0x920A) with FocalPlaneXResolution (0xA20E, pixels per FocalPlaneResolutionUnit)
gives the focal length in pixels. Either is an approximation of a calibration (the equivalent
focal length is rounded, the lens distortion is ignored), far better than an assumed field of
view. Only the first 64 KiB of the file are read (EXIF must fit in one APP1 segment).
"""

from __future__ import annotations

import math
from pathlib import Path
import struct

from spatial_caption_ros.core.errors import InvalidCameraInfoError
from spatial_caption_ros.core.types import CameraIntrinsics

_EXIF_IFD = 0x8769
_FOCAL_LENGTH = 0x920A
_FOCAL_35MM = 0xA405
_PLANE_X_RES = 0xA20E
_PLANE_UNIT = 0xA210
_UNIT_MM = {2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}     # inch, cm, mm, micrometre
_FILM_DIAGONAL_MM = math.hypot(36.0, 24.0)
_TYPE_SIZES = {1: 1, 3: 2, 4: 4, 5: 8, 7: 1, 9: 4, 10: 8}
_READ_BYTES = 65536


def read_exif_tags(path: str | Path) -> dict[int, float]:
    """Numeric tags of IFD0 and the EXIF sub-IFD of a JPEG ({} when there is no EXIF)."""
    try:
        with open(path, 'rb') as f:
            data = f.read(_READ_BYTES)
    except OSError:
        return {}
    tiff = _app1_tiff(data)
    if tiff is None or len(tiff) < 8 or tiff[:2] not in (b'II', b'MM'):
        return {}
    order = '<' if tiff[:2] == b'II' else '>'
    try:
        tags = _ifd(tiff, order, struct.unpack_from(order + 'I', tiff, 4)[0])
        if _EXIF_IFD in tags:
            tags.update(_ifd(tiff, order, int(tags[_EXIF_IFD])))
    except (struct.error, ValueError, ZeroDivisionError):
        return {}
    return tags


def _app1_tiff(data: bytes) -> bytes | None:
    """The TIFF block of the first 'Exif' APP1 segment of JPEG data."""
    if data[:2] != b'\xff\xd8':
        return None
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        length = struct.unpack_from('>H', data, i + 2)[0]
        if marker == 0xE1 and data[i + 4:i + 10] == b'Exif\x00\x00':
            return data[i + 10:i + 2 + length]
        if marker in (0xDA, 0xD9):          # image data starts: no EXIF before it
            return None
        i += 2 + length
    return None


def _ifd(tiff: bytes, order: str, offset: int) -> dict[int, float]:
    """Tag -> first numeric value of one IFD (rationals as floats)."""
    out: dict[int, float] = {}
    (count,) = struct.unpack_from(order + 'H', tiff, offset)
    for n in range(count):
        tag, kind, items, value = struct.unpack_from(order + 'HHI4s', tiff, offset + 2 + 12 * n)
        size = _TYPE_SIZES.get(kind)
        if size is None or items < 1:
            continue
        raw = value if size * items <= 4 else tiff[struct.unpack(order + 'I', value)[0]:]
        if kind == 3:
            out[tag] = struct.unpack_from(order + 'H', raw)[0]
        elif kind in (4, 9):
            out[tag] = struct.unpack_from(order + ('I' if kind == 4 else 'i'), raw)[0]
        elif kind in (5, 10):
            num, den = struct.unpack_from(order + ('II' if kind == 5 else 'ii'), raw)
            if den:
                out[tag] = num / den
        elif kind == 1:
            out[tag] = raw[0]
    return out


def exif_intrinsics(path: str | Path, width: int, height: int) -> CameraIntrinsics | None:
    """Intrinsics of a photo from its EXIF focal length, None when it gives none.

    The principal point is taken at the image centre, pixels square.
    """
    tags = read_exif_tags(path)
    f_px = None
    f35 = tags.get(_FOCAL_35MM, 0.0)
    if f35 > 0:
        f_px = f35 * math.hypot(width, height) / _FILM_DIAGONAL_MM
    else:
        f_mm = tags.get(_FOCAL_LENGTH, 0.0)
        res = tags.get(_PLANE_X_RES, 0.0)
        unit = _UNIT_MM.get(int(tags.get(_PLANE_UNIT, 2)))
        if f_mm > 0 and res > 0 and unit:
            # FocalPlaneXResolution is pixels per unit of the full-resolution sensor image; the
            # file may be resized, which this cannot know: accepted only when plausible.
            f_px = f_mm * res / unit
            hfov = 2.0 * math.degrees(math.atan(0.5 * width / f_px))
            if not 10.0 <= hfov <= 150.0:
                f_px = None
    if f_px is None or not math.isfinite(f_px) or f_px <= 0:
        return None
    try:
        return CameraIntrinsics(f_px, f_px, width / 2.0, height / 2.0, width, height)
    except InvalidCameraInfoError:
        return None
