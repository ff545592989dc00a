import cv2
import numpy as np
import pytest

from spatial_caption_ros.core.errors import InvalidImageError
from spatial_caption_ros.core.inputs.image import (
    compressed_to_color, MAX_SIDE, raw_to_color, raw_to_depth_metres)


def _rgb(h=4, w=5):
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (h, w, 3), dtype=np.uint8)


def test_rgb8_is_a_zero_copy_view():
    img = _rgb()
    data = bytearray(img.tobytes())
    out = raw_to_color(5, 4, 'rgb8', 15, data)
    assert out.order == 'rgb'
    np.testing.assert_array_equal(out.pixels, img)
    data[0] = (data[0] + 1) % 256        # the view sees the buffer, no copy was made
    assert out.pixels[0, 0, 0] == data[0]


def test_bgr8_keeps_order_and_rgb_swaps():
    img = _rgb()
    out = raw_to_color(5, 4, 'bgr8', 15, img.tobytes())
    assert out.order == 'bgr'
    np.testing.assert_array_equal(out.rgb(), img[..., ::-1])


def test_padded_rows_are_skipped():
    img = _rgb()
    padded = np.zeros((4, 20), np.uint8)
    padded[:, :15] = img.reshape(4, 15)
    out = raw_to_color(5, 4, 'rgb8', 20, padded.tobytes())
    np.testing.assert_array_equal(out.pixels, img)


@pytest.mark.parametrize('encoding', ['rgba8', 'bgra8'])
def test_four_channel(encoding):
    img = np.dstack([_rgb(), np.full((4, 5), 9, np.uint8)])
    out = raw_to_color(5, 4, encoding, 20, img.tobytes())
    np.testing.assert_array_equal(out.pixels, img[..., :3])


def test_mono8_and_mono16_become_gray_rgb():
    gray = np.arange(20, dtype=np.uint8).reshape(4, 5)
    out = raw_to_color(5, 4, 'mono8', 5, gray.tobytes())
    assert out.pixels.shape == (4, 5, 3)
    np.testing.assert_array_equal(out.pixels[..., 1], gray)
    g16 = (gray.astype(np.uint16) << 8)
    out16 = raw_to_color(5, 4, 'mono16', 10, g16.tobytes())
    np.testing.assert_array_equal(out16.pixels[..., 0], gray)


def test_big_endian_mono16():
    g16 = (np.arange(20, dtype=np.uint16).reshape(4, 5) << 8)
    out = raw_to_color(5, 4, 'mono16', 10, g16.astype('>u2').tobytes(), is_bigendian=True)
    np.testing.assert_array_equal(out.pixels[..., 0], np.arange(20).reshape(4, 5))


@pytest.mark.parametrize('width,height,encoding,step,size,match', [
    (5, 4, 'rgb8', 15, 59, 'truncated'),
    (5, 4, 'rgb8', 15, 61, 'truncated'),
    (5, 4, 'rgb8', 14, 56, 'smaller than one row'),
    (0, 4, 'rgb8', 0, 0, 'empty'),
    (5, 0, 'rgb8', 15, 0, 'empty'),
    (5, 4, 'yuv422', 10, 40, 'unsupported image encoding'),
    (MAX_SIDE + 1, 1, 'mono8', MAX_SIDE + 1, MAX_SIDE + 1, 'side limit'),
    (5, 4, 'mono16', 11, 44, 'multiple of 2'),
])
def test_malformed_images_are_rejected_with_a_reason(width, height, encoding, step, size, match):
    with pytest.raises(InvalidImageError, match=match):
        raw_to_color(width, height, encoding, step, bytes(size))


def test_depth_16uc1_millimetres_and_invalid_readings():
    mm = np.array([[0, 1000], [2500, 65535]], np.uint16)
    out = raw_to_depth_metres(2, 2, '16UC1', 4, mm.tobytes())
    assert np.isnan(out[0, 0])
    assert out[0, 1] == pytest.approx(1.0)
    assert out[1, 0] == pytest.approx(2.5)


def test_depth_32fc1_metres_nan_inf_zero_negative_are_invalid():
    m = np.array([[np.nan, np.inf], [0.0, -1.0], [1.5, 3.0]], np.float32)
    out = raw_to_depth_metres(2, 3, '32FC1', 8, m.tobytes())
    assert np.isnan(out[:2]).all()
    np.testing.assert_allclose(out[2], [1.5, 3.0])


def test_depth_rejects_colour_encoding():
    with pytest.raises(InvalidImageError, match='unsupported depth encoding'):
        raw_to_depth_metres(2, 2, 'rgb8', 6, bytes(12))


def test_compressed_jpeg_and_png_decode():
    img = _rgb(32, 48)
    for ext in ('.jpg', '.png'):
        ok, buf = cv2.imencode(ext, img)
        out = compressed_to_color(ext[1:], buf.tobytes())
        assert out.pixels.shape == (32, 48, 3) and out.order == 'bgr'


@pytest.mark.parametrize('data', [b'', b'not an image at all', b'\xff\xd8\xff\xe0' + bytes(50)])
def test_corrupt_compressed_is_rejected(data):
    with pytest.raises(InvalidImageError):
        compressed_to_color('jpeg', data)
