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

from spatial_caption_ros.bag.reader import DEPTH_UNIT_KEY
from spatial_caption_ros.core.evaluation.tum import (
    read_tum_sequence, TUM_DEPTH_UNITS_PER_METRE, TumFrame)
from spatial_caption_ros.core.perception.models import repository_root

TUM = (repository_root() or Path.cwd()).parent / 'shared' / 'eval' / 'tum_fr1_rpy'
STORE = get_typestore(Stores.ROS2_KILTED)
COLOR = '/camera/color/image_raw'
DEPTH = '/camera/depth/image_raw'
INFO = '/camera/color/camera_info'
TF = '/tf'
OPTICAL_FRAME = 'camera_color_optical_frame'
DEPTH_UNIT_M = 1 / TUM_DEPTH_UNITS_PER_METRE     # the benchmark's 16-bit depth unit
T = STORE.types


@dataclass
class Raw:
    """One message to write: topic, type, log time and CDR bytes."""

    topic: str
    msgtype: str
    log_time_ns: int
    data: bytes


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


def quaternion(rotation: np.ndarray) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a 3x3 rotation matrix (Shepperd's method, numerically stable)."""
    m = rotation
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2.0 * np.sqrt(1.0 + trace)
        return ((m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s,
                0.25 * s)
    i = int(np.argmax(np.diag(m)))
    j, k = (i + 1) % 3, (i + 2) % 3
    s = 2.0 * np.sqrt(1.0 + m[i, i] - m[j, j] - m[k, k])
    q = [0.0, 0.0, 0.0, (m[k, j] - m[j, k]) / s]
    q[i], q[j], q[k] = 0.25 * s, (m[j, i] + m[i, j]) / s, (m[k, i] + m[i, k]) / s
    return q[0], q[1], q[2], q[3]


def tf_bytes(stamp_ns: int, world_from_camera: np.ndarray) -> bytes:
    """A /tf message: world -> the colour camera's optical frame."""
    tx, ty, tz = (float(v) for v in world_from_camera[:3, 3])
    qx, qy, qz, qw = (float(v) for v in quaternion(world_from_camera[:3, :3]))
    transform = T['geometry_msgs/msg/TransformStamped'](
        header=_header(stamp_ns, 'world'), child_frame_id=OPTICAL_FRAME,
        transform=T['geometry_msgs/msg/Transform'](
            translation=T['geometry_msgs/msg/Vector3'](x=tx, y=ty, z=tz),
            rotation=T['geometry_msgs/msg/Quaternion'](x=qx, y=qy, z=qz, w=qw)))
    return serialize(T['tf2_msgs/msg/TFMessage'](transforms=[transform]),
                     'tf2_msgs/msg/TFMessage')


def _stamp_ns(seconds: float) -> int:
    """TUM stamps have microsecond resolution: round there, not to the float's last bit."""
    return int(round(seconds * 1e6)) * 1000


def tum_frames(limit: int | None = None, root: Path = TUM) -> list[TumFrame]:
    """The sequence's frames in time order (core/evaluation/tum.py reads the folder)."""
    return read_tum_sequence(root).frames[:limit]


def tum_messages(limit: int | None = None, colour: str = 'rgb8', depth: bool = True,
                 camera_info: bool = True, tf: bool = True, root: Path = TUM) -> list[Raw]:
    """The sequence's messages in log-time order (log time = header stamp, as recorded).

    /tf carries the ground-truth pose interpolated at each colour frame's stamp.
    """
    out: list[Raw] = []
    for frame in tum_frames(limit, root):
        rgb_t, depth_t = frame_stamp_ns(frame), _stamp_ns(frame.depth_stamp)
        bgr = cv2.imread(str(frame.rgb_path), cv2.IMREAD_COLOR)
        pixels = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) if colour == 'rgb8' else bgr
        out.append(Raw(COLOR, 'sensor_msgs/msg/Image', rgb_t,
                       image_bytes(rgb_t, pixels, colour)))
        if camera_info:
            out.append(Raw(INFO, 'sensor_msgs/msg/CameraInfo', rgb_t,
                           camera_info_bytes(rgb_t, root=root)))
        if depth:
            units = cv2.imread(str(frame.depth_path), cv2.IMREAD_UNCHANGED)
            out.append(Raw(DEPTH, 'sensor_msgs/msg/Image', depth_t,
                           image_bytes(depth_t, units, '16UC1')))
        if tf and frame.pose is not None:
            out.append(Raw(TF, 'tf2_msgs/msg/TFMessage', rgb_t, tf_bytes(rgb_t, frame.pose)))
    out.sort(key=lambda m: m.log_time_ns)
    return out


def frame_stamp_ns(frame: TumFrame) -> int:
    """The colour stamp of a frame in nanoseconds (the header stamp of its messages)."""
    return _stamp_ns(frame.rgb_stamp)


def write_recording(path: Path, messages: list[Raw], storage: str = 'mcap',
                    custom: dict[str, str] | None = None) -> Path:
    """A rosbag2 folder with these messages (types registered in the order first used)."""
    plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
    writer = Writer(path, version=9, storage_plugin=plugin)
    for key, value in (custom or {}).items():
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
    """The TUM sequence (or its first `limit` frames) as a rosbag2 recording.

    Its depth unit goes into the recording's metadata (custom_data depth_unit_m).
    """
    root = kwargs.get('root', TUM)
    return write_recording(path, tum_messages(limit, **kwargs), storage,
                           {DEPTH_UNIT_KEY: repr(read_tum_sequence(root).depth_scale)})
