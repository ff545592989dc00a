"""Intrinsics for every input: calibration URL, EXIF focal length, else an assumed FOV."""

import math
import struct

import cv2
import numpy as np
import pytest

from spatial_caption_ros.core.errors import ConfigError
from spatial_caption_ros.core.inputs.exif import exif_intrinsics, read_exif_tags
from spatial_caption_ros.core.inputs.sources import (
    calibration_path, ImageSourceConfig, IntrinsicsResolver)
from spatial_caption_ros.core.params import build_config


def _rational(order: str, value: float) -> bytes:
    return struct.pack(order + 'II', int(round(value * 1000)), 1000)


def jpeg_with_exif(path, width=640, height=480, focal_35mm=None, focal_mm=None,
                   plane_res=None, order='<'):
    """A real JPEG (OpenCV) with an EXIF APP1 segment written here (IFD0 -> EXIF sub-IFD)."""
    entries = []                                 # (tag, type, count, payload bytes)
    if focal_35mm is not None:
        entries.append((0xA405, 3, 1, struct.pack(order + 'H', focal_35mm) + b'\0\0'))
    if focal_mm is not None:
        entries.append((0x920A, 5, 1, _rational(order, focal_mm)))
    if plane_res is not None:
        entries.append((0xA20E, 5, 1, _rational(order, plane_res)))
        entries.append((0xA210, 3, 1, struct.pack(order + 'H', 4) + b'\0\0'))   # per mm
    head = (b'II' if order == '<' else b'MM') + struct.pack(order + 'HI', 42, 8)
    ifd0_size = 2 + 12 + 4
    exif_offset = 8 + ifd0_size
    ifd0 = struct.pack(order + 'H', 1) + struct.pack(order + 'HHII', 0x8769, 4, 1,
                                                      exif_offset) + b'\0\0\0\0'
    data_offset = exif_offset + 2 + 12 * len(entries) + 4
    table, blob = b'', b''
    for tag, kind, count, payload in sorted(entries):
        if len(payload) <= 4:
            table += struct.pack(order + 'HHI', tag, kind, count) + payload[:4]
        else:
            table += struct.pack(order + 'HHII', tag, kind, count, data_offset + len(blob))
            blob += payload
    tiff = head + ifd0 + struct.pack(order + 'H', len(entries)) + table + b'\0\0\0\0' + blob
    app1 = b'Exif\0\0' + tiff
    ok, jpg = cv2.imencode('.jpg', np.full((height, width, 3), 128, np.uint8))
    assert ok
    jpg = jpg.tobytes()
    path.write_bytes(jpg[:2] + b'\xff\xe1' + struct.pack('>H', len(app1) + 2) + app1 + jpg[2:])
    return path


@pytest.mark.parametrize('order', ['<', '>'])
def test_exif_35mm_equivalent_focal_length_gives_the_field_of_view(tmp_path, order):
    path = jpeg_with_exif(tmp_path / 'a.jpg', focal_35mm=26, order=order)
    assert read_exif_tags(path)[0xA405] == 26
    intr = exif_intrinsics(path, 640, 480)
    # 26 mm over the 43.3 mm diagonal of a 36 x 24 mm frame, scaled to the 800 px diagonal
    assert intr.fx == pytest.approx(26 * 800 / math.hypot(36, 24))
    assert (intr.cx, intr.cy, intr.assumed) == (320, 240, False)


def test_exif_focal_length_and_focal_plane_resolution(tmp_path):
    path = jpeg_with_exif(tmp_path / 'b.jpg', focal_mm=4.0, plane_res=150.0)  # 150 px per mm
    assert exif_intrinsics(path, 640, 480).fx == pytest.approx(600.0)
    implausible = jpeg_with_exif(tmp_path / 'c.jpg', focal_mm=4.0, plane_res=1.0)   # 4 px
    assert exif_intrinsics(implausible, 640, 480) is None


def test_no_exif_or_garbage_gives_none(tmp_path):
    plain = tmp_path / 'plain.jpg'
    plain.write_bytes(cv2.imencode('.jpg', np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    assert exif_intrinsics(plain, 8, 8) is None
    junk = tmp_path / 'junk.jpg'
    junk.write_bytes(b'\xff\xd8\xff\xe1\x00\x10Exif\x00\x00MM\x00*\xff\xff\xff\xff')
    assert read_exif_tags(junk) == {} and exif_intrinsics(junk, 8, 8) is None
    assert read_exif_tags(tmp_path / 'missing.jpg') == {}


def test_resolver_order_calibration_then_exif_then_assumed(tmp_path):
    exif = jpeg_with_exif(tmp_path / 'e.jpg', focal_35mm=26)
    yaml_file = tmp_path / 'cam.yaml'
    yaml_file.write_text('image_width: 640\nimage_height: 480\ncamera_matrix:\n  rows: 3\n'
                         '  cols: 3\n  data: [500, 0, 320, 0, 500, 240, 0, 0, 1]\n')
    calibrated = IntrinsicsResolver(build_config(ImageSourceConfig, {
        'camera_info_url': f'file://{yaml_file}'}))
    intr = calibrated.for_frame(1280, 960, exif)            # calibration wins, scaled
    assert intr.fx == pytest.approx(1000.0) and calibrated.kind(intr) == 'calibration'
    default = IntrinsicsResolver(build_config(ImageSourceConfig, {}))
    from_exif = default.for_frame(640, 480, exif)
    assert default.kind(from_exif) == 'exif' and not from_exif.assumed
    assumed = default.for_frame(640, 480, None)             # a video frame: no EXIF
    assert assumed.assumed and default.kind(assumed) == 'assumed'
    assert assumed.fx == pytest.approx(320 / math.tan(math.radians(30)))   # 60 deg default
    none = IntrinsicsResolver(build_config(ImageSourceConfig, {'assumed_hfov_deg': 0.0}))
    assert none.for_frame(640, 480, None) is None and none.kind(None) == 'none'


def test_camera_info_url_forms():
    assert str(calibration_path('file:///tmp/cam%20a.yaml')) == '/tmp/cam a.yaml'
    assert str(calibration_path('/tmp/cam.yaml')) == '/tmp/cam.yaml'
    for bad in ('package://my_pkg/cam.yaml', 'http://host/cam.yaml', 'file://host/cam.yaml'):
        with pytest.raises(ConfigError):
            calibration_path(bad)
    with pytest.raises(ConfigError):
        build_config(ImageSourceConfig, {'camera_info_url': '/a.yaml',
                                         'camera_info_file': '/b.yaml'})
