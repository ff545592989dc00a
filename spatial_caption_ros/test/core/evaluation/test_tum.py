"""The TUM RGB-D reader: associations, 16-bit depth and its scale, poses interpolated to the
frame stamps (slerp), intrinsics; on a generated folder with known answers and on the real
tum_fr1_rpy slice of ../shared/eval."""

import math

import cv2
import numpy as np
import pytest

from support import EVAL
from spatial_caption_ros.core.errors import ConfigError
from spatial_caption_ros.core.evaluation.tum import interpolate_pose, read_tum_sequence
from spatial_caption_ros.core.rotations import quaternion_slerp

TUM = EVAL / 'tum_fr1_rpy'
CAMERA = """image_width: 64
image_height: 48
camera_name: test
camera_matrix: {rows: 3, cols: 3, data: [50.0, 0.0, 32.0, 0.0, 51.0, 24.0, 0.0, 0.0, 1.0]}
distortion_model: plumb_bob
distortion_coefficients: {rows: 1, cols: 5, data: [0, 0, 0, 0, 0]}
depth_scale: 5000.0
"""


def _folder(tmp_path):
    (tmp_path / 'rgb').mkdir()
    (tmp_path / 'depth').mkdir()
    (tmp_path / 'camera.yaml').write_text(CAMERA)
    depth = np.full((48, 64), 10000, np.uint16)      # 2 m at 1/5000
    depth[:10, :10] = 0                               # a hole
    cv2.imwrite(str(tmp_path / 'depth' / '10.01.png'), depth)
    cv2.imwrite(str(tmp_path / 'rgb' / '10.0.png'), np.zeros((48, 64, 3), np.uint8))
    s = math.sqrt(0.5)
    (tmp_path / 'groundtruth.txt').write_text(
        '# timestamp tx ty tz qx qy qz qw\n'
        '9.96 0 0 0 0 0 0 1\n'
        f'10.04 1 2 3 0 0 {s} {s}\n'           # 90 degrees about z
        '20.0 0 0 0 0 0 0 1\n')
    (tmp_path / 'associations.txt').write_text(
        '# rgb depth\n10.0 rgb/10.0.png 10.01 depth/10.01.png\n'
        '15.0 rgb/10.0.png 15.0 depth/10.01.png\n')
    return tmp_path


def test_generated_sequence_scale_holes_and_interpolated_poses(tmp_path):
    seq = read_tum_sequence(_folder(tmp_path))
    assert seq.depth_scale == pytest.approx(1 / 5000)
    assert (seq.intrinsics.fx, seq.intrinsics.fy, seq.intrinsics.cx) == (50.0, 51.0, 32.0)
    first, second = seq.frames
    assert first.rgb_stamp == 10.0 and first.depth_stamp == 10.01
    assert first.rgb_path.name == '10.0.png' and first.depth_path.name == '10.01.png'
    depth = seq.read_depth(first)
    assert depth.dtype == np.float32 and depth[20, 20] == pytest.approx(2.0)
    assert np.isnan(depth[:10, :10]).all() and np.isfinite(depth[10:, 10:]).all()
    # halfway between the rows: half the translation, 45 degrees about z
    pose = first.pose
    assert pose[:3, 3] == pytest.approx([0.5, 1.0, 1.5])
    assert math.degrees(math.atan2(pose[1, 0], pose[0, 0])) == pytest.approx(45.0)
    assert pose[:3, :3] @ pose[:3, :3].T == pytest.approx(np.eye(3))
    assert second.pose is None           # rows 5 s apart around it: no pose is guessed


def test_slerp_takes_the_short_way_and_interpolation_stays_inside():
    q0, q1 = np.array([0, 0, 0, 1.0]), np.array([0, 0, -math.sqrt(0.5), -math.sqrt(0.5)])
    q = quaternion_slerp(q0, q1, 0.5)    # -q1 is +90 degrees about z: halfway is +45
    assert abs(q[3]) == pytest.approx(math.cos(math.radians(22.5)))
    stamps = np.array([0.0, 0.01])
    poses = np.array([[0, 0, 0, 0, 0, 0, 1], [1, 0, 0, 0, 0, 0, 1.0]])
    assert interpolate_pose(stamps, poses, -0.001) is None
    assert interpolate_pose(stamps, poses, 0.011) is None
    assert interpolate_pose(stamps, poses, 0.0025)[0, 3] == pytest.approx(0.25)


def test_broken_folders_say_what_is_missing(tmp_path):
    with pytest.raises(ConfigError, match='camera.yaml'):
        read_tum_sequence(tmp_path)
    folder = _folder(tmp_path)
    (folder / 'associations.txt').write_text('10.0 rgb/10.0.png\n')
    with pytest.raises(ConfigError, match='expected 4 fields'):
        read_tum_sequence(folder)
    (folder / 'groundtruth.txt').unlink()
    with pytest.raises(ConfigError, match='groundtruth.txt'):
        read_tum_sequence(folder)


@pytest.mark.skipif(not (TUM / 'associations.txt').is_file(),
                    reason='../shared/eval/tum_fr1_rpy is needed')
def test_real_tum_fr1_rpy_slice():
    seq = read_tum_sequence(TUM)
    assert len(seq.frames) == 87
    assert (seq.intrinsics.fx, seq.intrinsics.fy) == (517.3, 516.5)
    assert seq.depth_scale == pytest.approx(1 / 5000)
    stamps = [f.rgb_stamp for f in seq.frames]
    assert stamps == sorted(stamps)
    assert all(abs(f.rgb_stamp - f.depth_stamp) < 0.02 for f in seq.frames)
    assert all(f.pose is not None for f in seq.frames)
    for f in seq.frames[::20]:
        r = f.pose[:3, :3]
        assert r @ r.T == pytest.approx(np.eye(3), abs=1e-9)
    # consecutive frames (0.13 s apart) of a hand-held camera: centimetres, not metres
    steps = [np.linalg.norm(b.pose[:3, 3] - a.pose[:3, 3])
             for a, b in zip(seq.frames[:-1], seq.frames[1:], strict=True)]
    assert max(steps) < 0.2
    depth = seq.read_depth(seq.frames[0])
    valid = np.isfinite(depth)
    assert depth.shape == (480, 640) and 0.5 < valid.mean() < 1.0   # a Kinect has holes
    assert 0.4 < float(np.median(depth[valid])) < 4.0               # a desk, in metres
