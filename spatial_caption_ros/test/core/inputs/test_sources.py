"""Folder sources: what is taken, what is skipped and why, and what is left out (named)."""

import cv2
import numpy as np
import pytest

from spatial_caption_ros.core.errors import ConfigError, InvalidImageError
from spatial_caption_ros.core.inputs.image import read_image_file
from spatial_caption_ros.core.inputs.sources import FrameSource


def _png(path, h=8, w=8):
    cv2.imwrite(str(path), np.full((h, w, 3), 100, np.uint8))
    return path


def test_files_of_a_folder_that_are_not_taken_are_named_not_dropped_silently(tmp_path):
    """A video or an image type the source does not read used to vanish from a batch without a
    word; label and notes files beside photos (.txt, .md, .json...) are expected and not named."""
    _png(tmp_path / 'a.png')
    (tmp_path / 'clip.mp4').write_bytes(b'\x00' * 16)
    (tmp_path / 'photo.gif').write_bytes(b'GIF89a')
    (tmp_path / 'a.txt').write_text('labels')
    (tmp_path / 'MANIFEST.md').write_text('notes')
    (tmp_path / '.hidden').write_text('')
    (tmp_path / 'sub').mkdir()
    source = FrameSource(tmp_path)
    assert [f.name for f in source.files] == ['a.png']
    ignored = dict(source.ignored)
    assert set(ignored) == {'clip.mp4', 'photo.gif'}
    assert 'video' in ignored['clip.mp4'] and '--input' not in ignored['clip.mp4']
    assert '.gif' in ignored['photo.gif']


def test_a_folder_with_only_a_video_says_so(tmp_path):
    (tmp_path / 'clip.mp4').write_bytes(b'\x00' * 16)
    with pytest.raises(ConfigError, match=r'no images .* in .*: clip\.mp4 \(a video'):
        FrameSource(tmp_path)


def test_a_truncated_png_is_named_as_truncated(tmp_path):
    data = cv2.imencode('.png', np.random.default_rng(0).integers(
        0, 255, (64, 64, 3), dtype=np.uint8))[1].tobytes()
    (tmp_path / 'cut.png').write_bytes(data[:len(data) // 2])
    with pytest.raises(InvalidImageError, match='truncated PNG'):
        read_image_file(tmp_path / 'cut.png')


def test_an_image_file_declaring_a_giant_size_is_refused_before_decoding(tmp_path):
    """Checked from the header, as for compressed messages: a 20000 x 20000 PNG is refused with
    its size (OpenCV would otherwise allocate 1.2 GB, or refuse it as 'not an image')."""
    path = _png(tmp_path / 'giant.png')
    data = bytearray(path.read_bytes())
    data[16:24] = (20000).to_bytes(4, 'big') + (20000).to_bytes(4, 'big')   # IHDR width, height
    path.write_bytes(bytes(data))
    with pytest.raises(InvalidImageError, match='20000x20000 exceeds the 16384 px side limit'):
        read_image_file(path)
