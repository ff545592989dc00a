"""Recordings for the tests: the TUM fr1_rpy slice (spatial_caption_ros/bag/tum.py) and damaged
variants of it, each with what processing it must give."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from spatial_caption_ros.bag.reader import DEPTH_UNIT_KEY
from spatial_caption_ros.bag.tum import (  # noqa: F401 - re-exported for the tests
    camera_info_bytes, COLOR, DEPTH, DEPTH_UNIT_M, frame_stamp_ns, image_bytes, INFO, Raw,
    serialize, STORE, T, TF, TUM, tum_frames, tum_messages, write_recording, write_tum_recording)


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
    bgr = cv2.imread(str(tum_frames(1)[0].rgb_path), cv2.IMREAD_COLOR)
    out: dict[str, Broken] = {}

    def rec(name: str, messages: list[Raw], storage: str = 'mcap') -> Path:
        return write_recording(root / name, messages, storage,
                               {DEPTH_UNIT_KEY: repr(DEPTH_UNIT_M)})

    # 1, 2: storage files cut short (the end of a recording that crashed)
    p = rec('truncated_mcap', base)
    _cut(p, '.mcap', 0.6)
    out['truncated_mcap'] = Broken(p, 1, said='whole messages recovered; the file ends inside')
    p = rec('truncated_sqlite3', base, 'sqlite3')
    _cut(p, '.db3', 0.8)     # cut nearer the start, SQLite has lost the pages of every row
    out['truncated_sqlite3'] = Broken(p, 2, said='damaged sqlite3 file')
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
        rgb = cv2.cvtColor(cv2.imread(str(tum_frames(frames)[colour.index(m)].rgb_path)),
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
