"""A TUM RGB-D sequence folder written as a rosbag2 recording (e.g. ../shared/eval/tum_fr1_rpy).

The folder: associations.txt, rgb/, depth/, camera.yaml, groundtruth.txt.

Messages are serialized with rosbags' own type store (not rclpy): the recordings come from an
implementation independent of the reader's, as a real `ros2 bag record` would.
Topics: /camera/color/image_raw (rgb8 or bgr8), /camera/depth/image_raw (16UC1, registered to the
colour image, 1 step = 1/5000 m, stamped with its own depth stamps), /camera/color/camera_info
(the benchmark's fr1 intrinsics from camera.yaml), /tf (the ground-truth camera poses, world ->
camera_color_optical_frame at 100 Hz). The depth unit is in the recording's metadata
(custom_data depth_unit_m), as `ros2 bag record --custom-data` would put it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import get_typestore, Stores
import yaml

from spatial_caption_ros.core.perception.models import repository_root

TUM = (repository_root() or Path.cwd()).parent / 'shared' / 'eval' / 'tum_fr1_rpy'
STORE = get_typestore(Stores.ROS2_KILTED)
COLOR = '/camera/color/image_raw'
DEPTH = '/camera/depth/image_raw'
INFO = '/camera/color/camera_info'
TF = '/tf'
OPTICAL_FRAME = 'camera_color_optical_frame'
DEPTH_UNIT_M = 1 / 5000
T = STORE.types


@dataclass
class Raw:
    """One message to write: topic, type, log time and CDR bytes."""

    topic: str
    msgtype: str
    log_time_ns: int
    data: bytes


def _ns(seconds: str) -> int:
    whole, _, frac = seconds.partition('.')
    return int(whole) * 1_000_000_000 + int((frac + '000000000')[:9])


def _header(stamp_ns: int, frame_id: str = OPTICAL_FRAME):
    return T['std_msgs/msg/Header'](
        stamp=T['builtin_interfaces/msg/Time'](sec=stamp_ns // 1_000_000_000,
                                               nanosec=stamp_ns % 1_000_000_000),
        frame_id=frame_id)


def serialize(msg, msgtype: str) -> bytes:
    return bytes(STORE.serialize_cdr(msg, msgtype))


def image_bytes(stamp_ns: int, pixels: np.ndarray, encoding: str, width: int | None = None,
                height: int | None = None, step: int | None = None) -> bytes:
    """An Image message; width/height/step override the pixels' own (for broken images)."""
    pixels = np.ascontiguousarray(pixels)
    msg = T['sensor_msgs/msg/Image'](
        header=_header(stamp_ns), height=pixels.shape[0] if height is None else height,
        width=pixels.shape[1] if width is None else width, encoding=encoding, is_bigendian=0,
        step=int(pixels.strides[0]) if step is None else step,
        data=pixels.reshape(-1).view(np.uint8))
    return serialize(msg, 'sensor_msgs/msg/Image')


def camera_info_bytes(stamp_ns: int, k: list[float] | None = None, root: Path = TUM) -> bytes:
    """The sequence's colour CameraInfo (camera.yaml); k replaces its camera matrix."""
    cam = yaml.safe_load((root / 'camera.yaml').read_text())
    k = k if k is not None else cam['camera_matrix']['data']
    fx, cx, fy, cy = k[0], k[2], k[4], k[5]
    msg = T['sensor_msgs/msg/CameraInfo'](
        header=_header(stamp_ns), height=cam['image_height'], width=cam['image_width'],
        distortion_model=cam['distortion_model'],
        d=np.array(cam['distortion_coefficients']['data'], dtype=np.float64),
        k=np.array(k, dtype=np.float64),
        r=np.array([1, 0, 0, 0, 1, 0, 0, 0, 1], dtype=np.float64),
        p=np.array([fx, 0, cx, 0, 0, fy, cy, 0, 0, 0, 1, 0], dtype=np.float64),
        binning_x=0, binning_y=0,
        roi=T['sensor_msgs/msg/RegionOfInterest'](x_offset=0, y_offset=0, height=0, width=0,
                                                  do_rectify=False))
    return serialize(msg, 'sensor_msgs/msg/CameraInfo')


def tf_bytes(stamp_ns: int, pose: list[float]) -> bytes:
    tx, ty, tz, qx, qy, qz, qw = pose
    transform = T['geometry_msgs/msg/TransformStamped'](
        header=_header(stamp_ns, 'world'), child_frame_id=OPTICAL_FRAME,
        transform=T['geometry_msgs/msg/Transform'](
            translation=T['geometry_msgs/msg/Vector3'](x=tx, y=ty, z=tz),
            rotation=T['geometry_msgs/msg/Quaternion'](x=qx, y=qy, z=qz, w=qw)))
    return serialize(T['tf2_msgs/msg/TFMessage'](transforms=[transform]),
                     'tf2_msgs/msg/TFMessage')


def tum_frames(limit: int | None = None, root: Path = TUM) -> list[tuple[int, Path, int, Path]]:
    """(colour stamp ns, colour png, depth stamp ns, depth png) of the slice's frames."""
    rows = []
    for line in (root / 'associations.txt').read_text().splitlines():
        if line.startswith('#') or not line.strip():
            continue
        rgb_t, rgb, depth_t, depth = line.split()
        rows.append((_ns(rgb_t), root / rgb, _ns(depth_t), root / depth))
    return rows[:limit]


def tum_messages(limit: int | None = None, colour: str = 'rgb8', depth: bool = True,
                 camera_info: bool = True, tf: bool = True, root: Path = TUM) -> list[Raw]:
    """The slice's messages in log-time order (log time = header stamp, as recorded)."""
    frames = tum_frames(limit, root)
    out: list[Raw] = []
    for rgb_t, rgb, depth_t, depth_png in frames:
        bgr = cv2.imread(str(rgb), cv2.IMREAD_COLOR)
        pixels = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) if colour == 'rgb8' else bgr
        out.append(Raw(COLOR, 'sensor_msgs/msg/Image', rgb_t,
                       image_bytes(rgb_t, pixels, colour)))
        if camera_info:
            out.append(Raw(INFO, 'sensor_msgs/msg/CameraInfo', rgb_t,
                           camera_info_bytes(rgb_t, root=root)))
        if depth:
            mm = cv2.imread(str(depth_png), cv2.IMREAD_UNCHANGED)
            out.append(Raw(DEPTH, 'sensor_msgs/msg/Image', depth_t,
                           image_bytes(depth_t, mm, '16UC1')))
    if tf and frames:
        first, last = frames[0][0], frames[-1][0]
        for line in (root / 'groundtruth.txt').read_text().splitlines():
            if line.startswith('#') or not line.strip():
                continue
            stamp, *pose = line.split()
            t = _ns(stamp)
            if first - 50_000_000 <= t <= last + 50_000_000:
                out.append(Raw(TF, 'tf2_msgs/msg/TFMessage', t,
                               tf_bytes(t, [float(v) for v in pose])))
    out.sort(key=lambda m: m.log_time_ns)
    return out


def write_recording(path: Path, messages: list[Raw], storage: str = 'mcap',
                    custom: dict[str, str] | None = None) -> Path:
    """A rosbag2 folder with these messages (types registered in the order first used)."""
    plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
    writer = Writer(path, version=9, storage_plugin=plugin)
    for key, value in (custom if custom is not None
                       else {'depth_unit_m': repr(DEPTH_UNIT_M)}).items():
        writer.set_custom_data(key, value)
    writer.open()
    connections = {}
    for m in messages:
        if m.topic not in connections:
            connections[m.topic] = writer.add_connection(m.topic, m.msgtype, typestore=STORE)
        writer.write(connections[m.topic], m.log_time_ns, m.data)
    writer.close()
    return path


def write_tum_recording(path: Path, storage: str = 'mcap', limit: int | None = None,
                        **kwargs) -> Path:
    """The TUM slice (or its first `limit` frames) as a rosbag2 recording."""
    return write_recording(path, tum_messages(limit, **kwargs), storage)
