"""Real recordings for the tests: the TUM fr1_rpy slice in ../shared/eval written as rosbag2.

Messages are serialized with rosbags' own type store (not rclpy), so the recordings come from a
second, independent CDR implementation, as a real `ros2 bag record` would be to our reader.
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

TUM = repository_root().parent / 'shared' / 'eval' / 'tum_fr1_rpy'
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


def camera_info_bytes(stamp_ns: int, k: list[float] | None = None) -> bytes:
    cam = yaml.safe_load((TUM / 'camera.yaml').read_text())
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


def tum_frames(limit: int | None = None) -> list[tuple[int, Path, int, Path]]:
    """(colour stamp ns, colour png, depth stamp ns, depth png) of the slice's frames."""
    rows = []
    for line in (TUM / 'associations.txt').read_text().splitlines():
        if line.startswith('#') or not line.strip():
            continue
        rgb_t, rgb, depth_t, depth = line.split()
        rows.append((_ns(rgb_t), TUM / rgb, _ns(depth_t), TUM / depth))
    return rows[:limit]


def tum_messages(limit: int | None = None, colour: str = 'rgb8', depth: bool = True,
                 camera_info: bool = True, tf: bool = True) -> list[Raw]:
    """The slice's messages in log-time order (log time = header stamp, as recorded)."""
    frames = tum_frames(limit)
    out: list[Raw] = []
    for rgb_t, rgb, depth_t, depth_png in frames:
        bgr = cv2.imread(str(rgb), cv2.IMREAD_COLOR)
        pixels = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) if colour == 'rgb8' else bgr
        out.append(Raw(COLOR, 'sensor_msgs/msg/Image', rgb_t,
                       image_bytes(rgb_t, pixels, colour)))
        if camera_info:
            out.append(Raw(INFO, 'sensor_msgs/msg/CameraInfo', rgb_t, camera_info_bytes(rgb_t)))
        if depth:
            mm = cv2.imread(str(depth_png), cv2.IMREAD_UNCHANGED)
            out.append(Raw(DEPTH, 'sensor_msgs/msg/Image', depth_t,
                           image_bytes(depth_t, mm, '16UC1')))
    if tf and frames:
        first, last = frames[0][0], frames[-1][0]
        for line in (TUM / 'groundtruth.txt').read_text().splitlines():
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


# ---------------------------------------------------------------- broken recordings

@dataclass
class Broken:
    """A damaged recording and what processing it must give.

    processed: frames that must come out (every one that can be processed); error: text of the
    message naming why the recording cannot be processed at all (then processed is 0); said:
    text that the summary's problems, warnings or skipped items must contain.
    """

    path: Path
    processed: int
    said: str = ''
    error: str = ''


def _replace(messages: list[Raw], topic: str, nth: int, **changes) -> list[Raw]:
    """A copy of the messages with the nth message of `topic` changed."""
    out, seen = [], 0
    for m in messages:
        if m.topic == topic:
            if seen == nth:
                m = Raw(**{**m.__dict__, **changes})
            seen += 1
        out.append(m)
    return out


def _cut(path: Path, suffix: str, fraction: float) -> None:
    storage = next(path.glob(f'*{suffix}'))
    data = storage.read_bytes()
    storage.write_bytes(data[:int(len(data) * fraction)])


def broken_recordings(root: Path, frames: int = 3) -> dict[str, Broken]:
    """Ten-plus kinds of damaged recordings made from the first TUM frames."""
    base = tum_messages(frames)
    first_rgb = tum_frames(1)[0]
    bgr = cv2.imread(str(first_rgb[1]), cv2.IMREAD_COLOR)
    out: dict[str, Broken] = {}

    def rec(name: str, messages: list[Raw], storage: str = 'mcap', **custom) -> Path:
        return write_recording(root / name, messages, storage, custom or None)

    # 1, 2: storage files cut in the middle (the end of a recording that crashed)
    p = rec('truncated_mcap', base)
    _cut(p, '.mcap', 0.6)
    out['truncated_mcap'] = Broken(p, 1, said='whole messages recovered; the file ends inside')
    p = rec('truncated_sqlite3', base, 'sqlite3')
    _cut(p, '.db3', 0.6)
    out['truncated_sqlite3'] = Broken(p, 1, said='damaged sqlite3 file')
    # 3: metadata.yaml missing
    p = rec('no_metadata', base)
    (p / 'metadata.yaml').unlink()
    out['no_metadata'] = Broken(p, frames, said='metadata.yaml not usable')
    # 4: metadata.yaml that is not YAML
    p = rec('bad_metadata', base, 'sqlite3')
    (p / 'metadata.yaml').write_text('rosbag2_bagfile_information: [unclosed\n')
    out['bad_metadata'] = Broken(p, frames, said='metadata.yaml not usable')
    # 5: metadata naming a storage plugin that does not exist, wrong counts
    p = rec('wrong_metadata', base)
    meta = (p / 'metadata.yaml').read_text().replace('storage_identifier: mcap',
                                                     'storage_identifier: nosuchplugin')
    (p / 'metadata.yaml').write_text(meta.replace('message_count: ', 'message_count: 9'))
    out['wrong_metadata'] = Broken(p, frames, said='metadata.yaml not usable')
    # 6: metadata naming a storage file that is not there
    p = rec('missing_storage_file', base)
    next(p.glob('*.mcap')).unlink()
    out['missing_storage_file'] = Broken(p, 0, error='no .mcap or .db3 storage file')
    # 7: no colour topic at all
    p = rec('no_image_topic', [m for m in base if m.topic != COLOR])
    out['no_image_topic'] = Broken(p, 0, error='no colour image topic')
    # 8: no camera_info
    p = rec('no_camera_info', [m for m in base if m.topic != INFO])
    out['no_camera_info'] = Broken(p, frames, said='no camera_info topic')
    # 9: corrupt CDR bytes in the second colour message
    p = rec('corrupt_message', _replace(base, COLOR, 1, data=b'\x00\x01\x00\x00' + b'\xff' * 64))
    out['corrupt_message'] = Broken(p, frames - 1, said='frame 1')
    # 10: zero-size image
    p = rec('zero_size_image', _replace(base, COLOR, 1, data=image_bytes(
        base[0].log_time_ns, np.zeros((0, 0, 3), np.uint8), 'rgb8', 0, 0, 0)))
    out['zero_size_image'] = Broken(p, frames - 1, said='frame 1')
    # 11: encoding no decoder knows
    p = rec('unknown_encoding', _replace(base, COLOR, 1, data=image_bytes(
        base[0].log_time_ns, bgr, 'yuv422_weird')))
    out['unknown_encoding'] = Broken(p, frames - 1, said='yuv422_weird')
    # 12: data shorter than height x step says
    p = rec('short_image_data', _replace(base, COLOR, 1, data=image_bytes(
        base[0].log_time_ns, bgr[:100], 'bgr8', height=480)))
    out['short_image_data'] = Broken(p, frames - 1, said='frame 1')
    # 13: header stamps going backwards (log times in order)
    colour = [m for m in base if m.topic == COLOR]
    stamps = [m.log_time_ns for m in colour][::-1]
    swapped = list(base)
    for m, stamp in zip(colour, stamps, strict=True):
        rgb = cv2.cvtColor(cv2.imread(str(tum_frames(frames)[colour.index(m)][1])),
                           cv2.COLOR_BGR2RGB)
        swapped[swapped.index(m)] = Raw(m.topic, m.msgtype, m.log_time_ns,
                                        image_bytes(stamp, rgb, 'rgb8'))
    out['stamps_out_of_order'] = Broken(rec('stamps_out_of_order', swapped), frames)
    # 14: a topic of a message type nobody knows (its definition is in the recording)
    from rosbags.typesys import get_types_from_msg
    STORE.register(get_types_from_msg('int32 x', 'acme_msgs/msg/Widget'))
    widget = [Raw('/acme/widget', 'acme_msgs/msg/Widget', m.log_time_ns,
                  serialize(T['acme_msgs/msg/Widget'](x=1), 'acme_msgs/msg/Widget'))
              for m in colour]
    p = rec('unknown_type', sorted(base + widget, key=lambda m: m.log_time_ns))
    out['unknown_type'] = Broken(p, frames, said='acme_msgs/msg/Widget')
    # 15: camera_info with an all-zero K and P (unusable intrinsics)
    p = rec('invalid_camera_info', _replace(base, INFO, 0, data=camera_info_bytes(
        base[0].log_time_ns, [0.0] * 9)))
    out['invalid_camera_info'] = Broken(p, frames, said='invalid camera_info')
    # 16: a corrupt depth frame (the colour frame is still processed, without sensor depth)
    p = rec('corrupt_depth', _replace(base, DEPTH, 0, data=b'\x00\x01\x00\x00garbage'))
    out['corrupt_depth'] = Broken(p, frames, said='depth frame not usable')
    # 17: the same colour message recorded twice
    dup = list(base)
    dup.insert(dup.index(colour[0]) + 1, colour[0])
    out['duplicate_message'] = Broken(rec('duplicate_message', dup), frames + 1)
    # 18: a recording with topics but no messages
    p = rec('empty', [])
    out['empty'] = Broken(p, 0, error='no colour image topic')
    # 19: a storage file of random bytes with its metadata
    p = rec('garbage_storage', base)
    next(p.glob('*.mcap')).write_bytes(np.random.default_rng(0).bytes(4096))
    out['garbage_storage'] = Broken(p, 0, error='nothing readable')
    return out
