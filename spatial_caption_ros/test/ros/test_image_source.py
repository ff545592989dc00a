"""The image source node looping a folder: frames in order, decoded once (real rclpy)."""

from contextlib import contextmanager
import json
import shutil

import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from std_msgs.msg import String

from support import BUS, needs_shared, SHARED, spin_until
from spatial_caption_ros.nodes.image_source_node import ImageSourceNode
from spatial_caption_ros.ros.qos import qos_profile

pytestmark = [needs_shared, pytest.mark.usefixtures('rclpy_context')]


def test_a_looped_folder_plays_in_order_and_is_decoded_once(tmp_path, monkeypatch):
    folder = tmp_path / 'frames'
    folder.mkdir()
    shutil.copy(BUS, folder / 'a_bus.jpg')
    shutil.copy(SHARED / 'data' / 'images' / 'zidane.jpg', folder / 'b_zidane.jpg')
    reads = []
    import spatial_caption_ros.core.inputs.sources as sources
    real_read = sources.read_image_file
    monkeypatch.setattr(sources, 'read_image_file', lambda p: reads.append(p) or real_read(p))
    node = ImageSourceNode(namespace='/loop', parameter_overrides=[
        Parameter('source', value=str(folder)), Parameter('loop', value=True),
        Parameter('rate', value=50.0)])
    listener = rclpy.create_node('loop_listener', namespace='/loop')
    names = []
    listener.create_subscription(String, 'image_source/frame_names',
                                 lambda m: names.append(json.loads(m.data)['name']),
                                 qos_profile('reliable'))
    with _executor(node, listener) as ex:
        assert node.active, node.last_error
        assert spin_until(ex, lambda: len(names) >= 7, timeout=20)
        first = names.index('a_bus')
        assert names[first:first + 6] == ['a_bus', 'b_zidane'] * 3
        assert len(reads) == 2          # later loops publish the frames decoded on the first
        assert [n for n, _ in node._decoded] == ['a_bus', 'b_zidane']


def test_photos_without_calibration_or_exif_get_an_assumed_camera(tmp_path):
    from sensor_msgs.msg import CameraInfo
    from spatial_caption_ros.ros.conversions import ASSUMED_CAMERA_MODEL
    folder = tmp_path / 'photos'
    folder.mkdir()
    shutil.copy(BUS, folder / 'bus.jpg')                   # no EXIF in the shared photos
    node = ImageSourceNode(namespace='/assumed', parameter_overrides=[
        Parameter('source', value=str(folder)), Parameter('rate', value=20.0)])
    listener = rclpy.create_node('info_listener', namespace='/assumed')
    infos = []
    listener.create_subscription(CameraInfo, 'camera_info', infos.append,
                                 qos_profile('reliable'))
    with _executor(node, listener) as ex:
        assert node.active, node.last_error
        assert spin_until(ex, lambda: infos, timeout=20)
        assert infos[0].distortion_model == ASSUMED_CAMERA_MODEL     # marked as assumed
        assert infos[0].k[0] > 0 and node.describe()['intrinsics.assumed'] == '1'


@contextmanager
def _executor(*nodes):
    """One executor spinning `nodes`; destroys them afterwards."""
    ex = SingleThreadedExecutor()
    for node in nodes:
        ex.add_node(node)
    try:
        yield ex
    finally:
        ex.shutdown()
        for node in nodes:
            node.destroy_node()
