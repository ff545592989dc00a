"""Turn raw image buffers (as carried by sensor_msgs/Image and CompressedImage) into numpy arrays.

Every check a malformed message can fail is here, with a message saying what was wrong. Colour
images are returned as zero-copy views whenever the buffer layout allows it; the channel order
(RGB or BGR) travels with the array so the detector's preprocessing can swap channels inside the
copy it has to make anyway, instead of a separate full-frame copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from spatial_caption_ros.core.errors import InvalidImageError

# Largest side accepted; bigger images are almost certainly a corrupt header (and would allocate
# gigabytes). 16384 covers every camera we know of, including 8K and stitched panoramas.
MAX_SIDE = 16384

# encoding -> (channels, numpy dtype, channel order of colour images)
COLOR_ENCODINGS = {
    'rgb8': (3, np.uint8, 'rgb'),
    'bgr8': (3, np.uint8, 'bgr'),
    'rgba8': (4, np.uint8, 'rgb'),
    'bgra8': (4, np.uint8, 'bgr'),
    '8UC3': (3, np.uint8, 'bgr'),     # OpenCV convention for untyped 3-channel images
    'mono8': (1, np.uint8, 'gray'),
    '8UC1': (1, np.uint8, 'gray'),
    'mono16': (1, np.uint16, 'gray'),
    '16UC1': (1, np.uint16, 'gray'),
}
DEPTH_ENCODINGS = {
    '16UC1': (1, np.uint16),          # millimetres (REP 118), 0 = no reading
    'mono16': (1, np.uint16),         # some drivers label millimetre depth this way
    '32FC1': (1, np.float32),         # metres (REP 118), NaN/inf/0 = no reading
}


@dataclass(frozen=True)
class ColorImage:
    """An HxWx3 uint8 image and its channel order; pixels may be a view into a message buffer."""

    pixels: np.ndarray
    order: str  # 'rgb' or 'bgr'

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    def rgb(self) -> np.ndarray:
        """The image in RGB order (a copy only when the order must change)."""
        return self.pixels if self.order == 'rgb' else self.pixels[..., ::-1]

    def bgr(self) -> np.ndarray:
        """The image in BGR order, contiguous (for OpenCV drawing and encoding)."""
        arr = self.pixels if self.order == 'bgr' else self.pixels[..., ::-1]
        return np.ascontiguousarray(arr)


def _check_size(width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise InvalidImageError(f'empty image: {width}x{height}')
    if width > MAX_SIDE or height > MAX_SIDE:
        raise InvalidImageError(f'image {width}x{height} exceeds the {MAX_SIDE} px side limit')


def _check_layout(width: int, height: int, step: int, size: int, channels: int,
                  dtype: np.dtype, encoding: str) -> None:
    """Every size field of a raw image buffer agrees (O(1): no pixel is touched)."""
    _check_size(width, height)
    itemsize = np.dtype(dtype).itemsize
    row_bytes = width * channels * itemsize
    if step < row_bytes:
        raise InvalidImageError(
            f'{encoding} image {width}x{height}: step {step} is smaller than one row '
            f'({row_bytes} bytes)')
    if step % itemsize:
        raise InvalidImageError(f'{encoding} image: step {step} is not a multiple of {itemsize}')
    if size != step * height:
        raise InvalidImageError(
            f'{encoding} image {width}x{height}: data has {size} bytes, expected step*height '
            f'= {step * height} (truncated or mismatched)')


def check_raw_image(width: int, height: int, encoding: str, step: int, size: int,
                    depth: bool = False) -> None:
    """Reject a malformed raw image from its header alone, before any decoding.

    Cheap enough for a subscription callback: bad messages are refused there and never take
    the place of a good frame waiting to be processed. `depth` checks the depth encodings.
    """
    table = DEPTH_ENCODINGS if depth else COLOR_ENCODINGS
    spec = table.get(encoding)
    if spec is None:
        kind = 'depth encoding' if depth else 'image encoding'
        shown = encoding if len(encoding) <= 40 else encoding[:40] + '...'
        raise InvalidImageError(
            f'unsupported {kind} {shown!r}; supported: {", ".join(table)}')
    _check_layout(width, height, step, size, spec[0], spec[1], encoding)


def _view(width: int, height: int, step: int, data, channels: int, dtype: np.dtype,
          is_bigendian: bool, encoding: str) -> np.ndarray:
    """Zero-copy HxWxC view of a row-padded buffer, after checking every size field."""
    buf = np.frombuffer(data, dtype=np.uint8)
    _check_layout(width, height, step, buf.size, channels, dtype, encoding)
    itemsize = np.dtype(dtype).itemsize
    typed = buf.view(np.dtype(dtype).newbyteorder('>' if is_bigendian else '<'))
    rows = typed.reshape(height, step // itemsize)[:, :width * channels]
    arr = rows.reshape(height, width, channels)
    if itemsize > 1 and is_bigendian == np.little_endian:  # not in native byte order
        arr = arr.astype(np.dtype(dtype).newbyteorder('='))
    return arr


# Leading bytes of the compressed formats OpenCV decodes (JPEG, PNG, BMP, WebP, TIFF).
# The end marker of a JPEG (FFD9) or PNG (IEND) must lie in the last TAIL_BYTES: encoders may
# pad a little after it.
TAIL_BYTES = 64
_MAGIC = (b'\xff\xd8\xff', b'\x89PNG\r\n\x1a\n', b'BM', b'II*\x00', b'MM\x00*')


def check_compressed(fmt: str, data) -> None:
    """Reject an empty or unrecognisable compressed image from its first bytes (O(1))."""
    head = bytes(memoryview(data)[:12]) if len(data) else b''
    if not head:
        raise InvalidImageError(f'empty compressed image (format {fmt[:40]!r})')
    if not (head.startswith(_MAGIC) or (head[:4] == b'RIFF' and head[8:12] == b'WEBP')):
        raise InvalidImageError(
            f'compressed image (format {fmt[:40]!r}, {len(data)} bytes) is not JPEG, PNG, BMP, '
            f'WebP or TIFF (first bytes {head[:4].hex()})')
    # A JPEG or PNG cut short still half-decodes (grey rows, no error): check that it ends.
    tail = bytes(memoryview(data)[-TAIL_BYTES:])
    if head.startswith(b'\xff\xd8') and b'\xff\xd9' not in tail:
        raise InvalidImageError(f'JPEG of {len(data)} bytes has no end-of-image marker: '
                                'truncated')
    if head.startswith(b'\x89PNG') and b'IEND' not in tail:
        raise InvalidImageError(f'PNG of {len(data)} bytes has no IEND chunk: truncated')


def raw_to_color(width: int, height: int, encoding: str, step: int, data,
                 is_bigendian: bool = False) -> ColorImage:
    """Decode a raw sensor_msgs/Image buffer to a colour image (view when possible)."""
    spec = COLOR_ENCODINGS.get(encoding)
    if spec is None:
        check_raw_image(width, height, encoding, step, 0)   # raises with a bounded message
    channels, dtype, order = spec
    arr = _view(width, height, step, data, channels, dtype, is_bigendian, encoding)
    if order == 'gray':
        plane = arr[..., 0]
        if plane.dtype != np.uint8:
            plane = (plane >> 8).astype(np.uint8)
        return ColorImage(np.repeat(plane[..., None], 3, axis=2), 'rgb')
    return ColorImage(arr[..., :3], order)


def _declared_size(buf: np.ndarray) -> tuple[int, int] | None:
    """Width and height a PNG or JPEG header declares (None when not found)."""
    head = buf[:65536].tobytes()
    if head.startswith(b'\x89PNG') and len(head) >= 24:
        return int.from_bytes(head[16:20], 'big'), int.from_bytes(head[20:24], 'big')
    if head.startswith(b'\xff\xd8'):
        i = 2
        while i + 9 < len(head):
            if head[i] != 0xFF:
                return None
            marker = head[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:   # no length field
                i += 2
                continue
            length = int.from_bytes(head[i + 2:i + 4], 'big')
            if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD,
                          0xCE, 0xCF):   # start of frame: precision, height, width
                return (int.from_bytes(head[i + 7:i + 9], 'big'),
                        int.from_bytes(head[i + 5:i + 7], 'big'))
            i += 2 + length
    return None


def compressed_to_color(fmt: str, data) -> ColorImage:
    """Decode a sensor_msgs/CompressedImage (JPEG, PNG...) to a colour image."""
    check_compressed(fmt, data)
    buf = np.frombuffer(data, dtype=np.uint8)
    declared = _declared_size(buf)
    if declared is not None:   # refuse decompression bombs before OpenCV allocates the pixels
        _check_size(*declared)
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if img is None:
        raise InvalidImageError(
            f'compressed image (format {fmt[:40]!r}, {buf.size} bytes) could not be decoded: '
            'corrupt or not an image format OpenCV reads')
    _check_size(img.shape[1], img.shape[0])
    return ColorImage(img, 'bgr')


# Metres per unit of a 16UC1 depth image by REP 118 (millimetres). Recordings with another unit
# (TUM RGB-D: 1/5000 m) pass theirs (the perception parameter depth_image_scale).
MILLIMETRE = 0.001


def raw_to_depth_metres(width: int, height: int, encoding: str, step: int, data,
                        is_bigendian: bool = False, scale: float = MILLIMETRE) -> np.ndarray:
    """Decode a depth image to float32 metres; readings that are not valid become NaN.

    16UC1 values are multiplied by `scale` (metres per unit); 32FC1 values are metres.
    """
    spec = DEPTH_ENCODINGS.get(encoding)
    if spec is None:
        check_raw_image(width, height, encoding, step, 0, depth=True)
    channels, dtype = spec
    arr = _view(width, height, step, data, channels, dtype, is_bigendian, encoding)[..., 0]
    if dtype == np.uint16:
        metres = arr.astype(np.float32) * np.float32(scale)
    else:
        metres = arr.astype(np.float32, copy=True)
    metres[~np.isfinite(metres) | (metres <= 0.0)] = np.nan
    return metres


def read_image_file(path: str | Path) -> ColorImage:
    """Read an image file from disk; an unreadable one raises InvalidImageError saying why.

    Reasons: the file cannot be opened, is empty, is a JPEG or PNG cut short (no end-of-image
    marker or IEND chunk: OpenCV would decode the part that is there and grey out the rest, or
    fail with a bare library message), declares a size over the limit in its header (refused
    before OpenCV allocates it), or is not an image.
    """
    path = Path(path)
    try:
        with open(path, 'rb') as f:
            head = f.read(65536)
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 64))
            tail = f.read()
    except OSError as exc:
        raise InvalidImageError(f'{path}: cannot be read ({exc.strerror or exc})') from None
    if size == 0:
        raise InvalidImageError(f'{path}: empty file (0 bytes)')
    if head.startswith(b'\xff\xd8') and not tail.rstrip(b'\x00\r\n ').endswith(b'\xff\xd9'):
        raise InvalidImageError(f'{path}: truncated JPEG (the file ends before its '
                                'end-of-image marker)')
    if head.startswith(b'\x89PNG') and b'IEND' not in tail:
        raise InvalidImageError(f'{path}: truncated PNG (the file ends before its IEND chunk)')
    declared = _declared_size(np.frombuffer(head, dtype=np.uint8))
    if declared is not None:
        try:
            _check_size(*declared)
        except InvalidImageError as exc:
            raise InvalidImageError(f'{path}: {exc}') from None
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise InvalidImageError(f'{path}: not a readable image (not an image format OpenCV '
                                'reads, or corrupt data)')
    _check_size(img.shape[1], img.shape[0])
    return ColorImage(img, 'bgr')
