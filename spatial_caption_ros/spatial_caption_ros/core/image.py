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


def _view(width: int, height: int, step: int, data, channels: int, dtype: np.dtype,
          is_bigendian: bool, encoding: str) -> np.ndarray:
    """Zero-copy HxWxC view of a row-padded buffer, after checking every size field."""
    _check_size(width, height)
    itemsize = np.dtype(dtype).itemsize
    row_bytes = width * channels * itemsize
    if step < row_bytes:
        raise InvalidImageError(
            f'{encoding} image {width}x{height}: step {step} is smaller than one row '
            f'({row_bytes} bytes)')
    if step % itemsize:
        raise InvalidImageError(f'{encoding} image: step {step} is not a multiple of {itemsize}')
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size != step * height:
        raise InvalidImageError(
            f'{encoding} image {width}x{height}: data has {buf.size} bytes, expected step*height '
            f'= {step * height} (truncated or mismatched)')
    typed = buf.view(np.dtype(dtype).newbyteorder('>' if is_bigendian else '<'))
    rows = typed.reshape(height, step // itemsize)[:, :width * channels]
    arr = rows.reshape(height, width, channels)
    if itemsize > 1 and is_bigendian == np.little_endian:  # not in native byte order
        arr = arr.astype(np.dtype(dtype).newbyteorder('='))
    return arr


def raw_to_color(width: int, height: int, encoding: str, step: int, data,
                 is_bigendian: bool = False) -> ColorImage:
    """Decode a raw sensor_msgs/Image buffer to a colour image (view when possible)."""
    spec = COLOR_ENCODINGS.get(encoding)
    if spec is None:
        raise InvalidImageError(
            f'unsupported image encoding {encoding!r}; supported: {", ".join(COLOR_ENCODINGS)}')
    channels, dtype, order = spec
    arr = _view(width, height, step, data, channels, dtype, is_bigendian, encoding)
    if order == 'gray':
        plane = arr[..., 0]
        if plane.dtype != np.uint8:
            plane = (plane >> 8).astype(np.uint8)
        return ColorImage(np.repeat(plane[..., None], 3, axis=2), 'rgb')
    return ColorImage(arr[..., :3], order)


def compressed_to_color(fmt: str, data) -> ColorImage:
    """Decode a sensor_msgs/CompressedImage (JPEG, PNG...) to a colour image."""
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size == 0:
        raise InvalidImageError(f'empty compressed image (format {fmt!r})')
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if img is None:
        raise InvalidImageError(
            f'compressed image (format {fmt!r}, {buf.size} bytes) could not be decoded: '
            'corrupt or not an image format OpenCV reads')
    _check_size(img.shape[1], img.shape[0])
    return ColorImage(img, 'bgr')


def raw_to_depth_metres(width: int, height: int, encoding: str, step: int, data,
                        is_bigendian: bool = False) -> np.ndarray:
    """Decode a depth image to float32 metres; readings that are not valid become NaN."""
    spec = DEPTH_ENCODINGS.get(encoding)
    if spec is None:
        raise InvalidImageError(
            f'unsupported depth encoding {encoding!r}; supported: {", ".join(DEPTH_ENCODINGS)}')
    channels, dtype = spec
    arr = _view(width, height, step, data, channels, dtype, is_bigendian, encoding)[..., 0]
    if dtype == np.uint16:
        metres = arr.astype(np.float32) * np.float32(0.001)
    else:
        metres = arr.astype(np.float32, copy=True)
    metres[~np.isfinite(metres) | (metres <= 0.0)] = np.nan
    return metres


def read_image_file(path: str | Path) -> ColorImage:
    """Read an image file from disk."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise InvalidImageError(f'could not read image file {path}')
    _check_size(img.shape[1], img.shape[0])
    return ColorImage(img, 'bgr')
