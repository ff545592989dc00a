"""Real rclpy: the perception node with an aligned depth topic (depth_source sensor)."""

import numpy as np
import pytest
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from support import MODELS, needs_shared, spin_until
from support.rig import Camera
from spatial_caption_ros.core.types import FrameHeader
from spatial_caption_ros.nodes.perception_node import PerceptionNode
from spatial_caption_ros.ros import conversions

pytestmark = [needs_shared, pytest.mark.usefixtures('rclpy_context')]


def _run(namespace, test, **params):
    overrides = [Parameter('model_dir', value=str(MODELS)),
                 Parameter('input_qos', value='reliable'),
                 Parameter('depth_source', value='sensor'),
                 Parameter('threads', value=1)]
    overrides += [Parameter(k, value=v) for k, v in params.items()]
    node = PerceptionNode(namespace=namespace, parameter_overrides=overrides)
    camera = Camera(namespace, frame_id='camera_color_optical_frame', name='rgbd_camera')
    ex = MultiThreadedExecutor()
    ex.add_node(node)
    ex.add_node(camera.node)
    try:
        assert node.active, node.last_error
        assert spin_until(ex, lambda: camera.connected(depth=True))
        test(node, camera, ex)
    finally:
        ex.shutdown()
        node.destroy_node()
        camera.node.destroy_node()


def test_depth_topic_gives_metric_object_depth_matched_by_stamp():
    def check(node, camera, ex):
        h, w = camera.image.height, camera.image.width
        depth_mm = np.full((h, w), 4000, np.uint16)             # a wall of things at 4 m
        depth_mm[:, : w // 2] = 3000                             # the left half at 3 m
        depth_mm[::4, ::4] = 0                                   # sensor holes
        camera.publish(1_000_000_000, depth_mm, '16UC1')
        assert spin_until(ex, lambda: camera.detections, timeout=30)
        msg = camera.detections[0]
        assert msg.depth_source == 'sensor' and msg.depth_metric and msg.has_camera_info
        people = [o for o in msg.objects if o.class_name == 'person']
        assert len(people) >= 4
        for p in people:
            centre_x = 0.5 * (p.x_min + p.x_max)
            surface = 3.0 if centre_x < w / 2 else 4.0
            assert p.depth_metric and p.depth_source == 'sensor' and p.has_position
            assert p.depth == pytest.approx(surface)           # the surface the sensor sees
            assert p.position.z == pytest.approx(p.depth, rel=1e-5)
        assert {kv.key for kv in msg.stage_times} >= {'depth_match', 'decode', 'inference'}
        assert node.depth_matched == 1 and node.depth_unmatched == 0
        assert node.describe()['depth_frames_matched'] == '1'

        # 32FC1 metres with a depth stamp 5 ms off the colour stamp: still the same frame
        metres = np.full((h, w), 2.5, np.float32)
        camera.publish(2_000_000_000, metres, '32FC1', depth_stamp_ns=2_005_000_000)
        assert spin_until(ex, lambda: len(camera.detections) >= 2, timeout=30)
        second = camera.detections[1]
        assert second.depth_metric
        assert all(o.depth == pytest.approx(2.5) for o in second.objects
                   if o.class_name == 'person')
    _run('/d1', check, depth_wait=0.5)


def test_colour_frames_without_a_matching_depth_frame_say_so():
    def check(node, camera, ex):
        h, w = camera.image.height, camera.image.width
        far_off = np.full((h, w), 2000, np.uint16)
        camera.publish(3_000_000_000, far_off, '16UC1',
                       depth_stamp_ns=3_200_000_000)                   # 200 ms off
        assert spin_until(ex, lambda: camera.detections, timeout=30)
        msg = camera.detections[0]
        assert not msg.depth_metric
        assert all(np.isnan(o.depth) and not o.has_position for o in msg.objects)
        assert any('no depth frame within 15 ms' in n and '+200 ms' in n for n in msg.notes)
        assert node.depth_unmatched == 1 and node.depth_matched == 0

        # a depth frame with a broken encoding is rejected on arrival and counted; the colour
        # frame still goes out, without depth, and says why
        broken = Image(height=h, width=w, encoding='rgb8', step=w * 3, data=bytes(h * w * 3))
        broken.header = conversions.core_to_header(FrameHeader(4_000_000_000, 'c'))
        camera.depth_pub.publish(broken)
        camera.publish(4_000_000_000)
        assert spin_until(ex, lambda: len(camera.detections) >= 2, timeout=30)
        assert node.counters.snapshot().get('rejected.invalid_depth') == 1
        assert any('no depth frame within 15 ms' in n for n in camera.detections[1].notes)
    _run('/d2', check, depth_wait=0.5)
