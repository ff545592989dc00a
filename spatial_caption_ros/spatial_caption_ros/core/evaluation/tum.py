"""TUM RGB-D sequences (the `tum_fr1_rpy/` folder of ../shared/eval, same layout as the benchmark).

Public API (used by the evaluation, and meant for anyone who replays the sequence):

    seq = read_tum_sequence(root)          # TumSequence
    seq.intrinsics                         # CameraIntrinsics of the colour camera (camera.yaml)
    seq.depth_scale                        # metres per depth unit (1/5000 for TUM)
    for frame in seq.frames:               # TumFrame, in time order
        frame.rgb_path, frame.depth_path   # Path to the 8-bit colour / 16-bit depth PNG
        frame.rgb_stamp, frame.depth_stamp # seconds (float, as in associations.txt)
        frame.pose                         # 4x4 world_from_camera (optical frame), or None
        frame.gravity                      # "down" in the optical frame (world z is up), or None
        depth = seq.read_depth(frame)      # float32 metres, NaN where the Kinect has no reading

Files read (../shared/eval/README.md): `associations.txt` (`rgb_stamp rgb_file depth_stamp
depth_file`), `groundtruth.txt` (`stamp tx ty tz qx qy qz qw`, the colour camera's optical
centre in the motion-capture world), `camera.yaml` (ROS camera_calibration layout plus
`depth_scale`, the depth units per metre: 5000). Poses are interpolated to the colour stamp:
linearly for the translation and by slerp for the rotation, between the two ground-truth rows
around it; a frame farther than `max_pose_gap` from any row on either side gets pose None.
The depth images are registered to the colour images (same size, same pixels).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from spatial_caption_ros.core.errors import ConfigError
from spatial_caption_ros.core.rotations import pose_matrix, quaternion_slerp
from spatial_caption_ros.core.inputs.sources import load_camera_info_file
from spatial_caption_ros.core.types import CameraIntrinsics

TUM_DEPTH_UNITS_PER_METRE = 5000.0     # the TUM RGB-D benchmark's convention
# Ground truth is sampled at 100 Hz: two rows more than 0.1 s apart around a frame mean the
# motion capture lost the camera there, and an interpolated pose would be a guess.
MAX_POSE_GAP_S = 0.1


@dataclass(frozen=True)
class TumFrame:
    """One associated colour/depth pair with its interpolated ground-truth pose."""

    rgb_path: Path
    depth_path: Path
    rgb_stamp: float
    depth_stamp: float
    pose: np.ndarray | None        # 4x4 world_from_camera, camera = colour optical frame

    @property
    def name(self) -> str:
        return self.rgb_path.stem

    @property
    def gravity(self) -> np.ndarray | None:
        """The "down" direction in the camera optical frame, None without a pose.

        The motion-capture world's z axis points up (the camera is held about 1.5 m above its
        origin, looking down at the desk).
        """
        return None if self.pose is None else self.pose[:3, :3].T @ np.array([0.0, 0.0, -1.0])


@dataclass(frozen=True)
class TumSequence:
    """A TUM RGB-D sequence folder: frames, colour intrinsics, depth scale."""

    root: Path
    frames: list[TumFrame]
    intrinsics: CameraIntrinsics
    depth_scale: float             # metres per depth unit (metres = value * depth_scale)

    def read_depth(self, frame: TumFrame) -> np.ndarray:
        """The frame's depth in metres (float32), NaN where there is no reading (value 0)."""
        return read_depth_png(frame.depth_path, self.depth_scale)


def read_depth_png(path: Path, depth_scale: float) -> np.ndarray:
    """A 16-bit depth PNG in metres (value * depth_scale), NaN for 0 (no reading)."""
    import cv2
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None or raw.ndim != 2 or raw.dtype != np.uint16:
        raise ConfigError(f'{path}: not a 16-bit single-channel depth PNG')
    depth = raw.astype(np.float32) * np.float32(depth_scale)
    depth[raw == 0] = np.nan
    return depth


def _rows(path: Path, columns: int) -> list[list[str]]:
    if not path.is_file():
        raise ConfigError(f'{path.parent} is not a TUM RGB-D folder: no {path.name}')
    out = []
    for n, line in enumerate(path.read_text(encoding='utf-8').splitlines(), 1):
        fields = line.split()
        if not fields or fields[0].startswith('#'):
            continue
        if len(fields) < columns:
            raise ConfigError(f'{path}:{n}: expected {columns} fields, got {len(fields)}')
        out.append(fields)
    return out


def interpolate_pose(stamps: np.ndarray, poses: np.ndarray, t: float,
                     max_gap: float = MAX_POSE_GAP_S) -> np.ndarray | None:
    """world_from_camera at time t from sorted ground-truth rows (tx ty tz qx qy qz qw).

    None when t lies outside the rows or the rows around it are more than max_gap apart.
    """
    k = int(np.searchsorted(stamps, t))
    if k < len(stamps) and stamps[k] == t:
        return pose_matrix(poses[k, :3], poses[k, 3:])
    if k == 0 or k == len(stamps) or stamps[k] - stamps[k - 1] > max_gap:
        return None
    a = (t - stamps[k - 1]) / (stamps[k] - stamps[k - 1])
    translation = (1.0 - a) * poses[k - 1, :3] + a * poses[k, :3]
    return pose_matrix(translation, quaternion_slerp(poses[k - 1, 3:], poses[k, 3:], a))


def read_tum_sequence(root: str | Path, max_pose_gap: float = MAX_POSE_GAP_S) -> TumSequence:
    """Read a TUM RGB-D folder (see the module docstring for what each field holds)."""
    root = Path(root)
    camera = root / 'camera.yaml'
    if not camera.is_file():
        raise ConfigError(f'{root} is not a TUM RGB-D folder: no camera.yaml')
    doc = yaml.safe_load(camera.read_text(encoding='utf-8')) or {}
    intrinsics = load_camera_info_file(camera, int(doc.get('image_width', 0)),
                                       int(doc.get('image_height', 0)))
    units = float(doc.get('depth_scale', TUM_DEPTH_UNITS_PER_METRE))
    if not units > 0.0:
        raise ConfigError(f'{camera}: depth_scale must be positive (units per metre)')
    truth = _rows(root / 'groundtruth.txt', 8)
    values = np.array([[float(v) for v in row[:8]] for row in truth])
    order = np.argsort(values[:, 0], kind='stable')
    stamps, poses = values[order, 0], values[order, 1:]
    frames = []
    for row in _rows(root / 'associations.txt', 4):
        rgb_stamp = float(row[0])
        frames.append(TumFrame(
            rgb_path=root / row[1], depth_path=root / row[3], rgb_stamp=rgb_stamp,
            depth_stamp=float(row[2]),
            pose=interpolate_pose(stamps, poses, rgb_stamp, max_pose_gap)))
    frames.sort(key=lambda f: f.rgb_stamp)
    return TumSequence(root, frames, intrinsics, 1.0 / units)
