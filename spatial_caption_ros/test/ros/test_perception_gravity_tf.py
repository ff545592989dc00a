"""The perception node takes the camera's orientation from /tf: real TUM RGB-D frames with their
motion-capture poses published as /tf (world -> colour optical frame), the real YOLO11n and the
geometric depth source. The node's depths must be the pipeline's with the ground-truth gravity;
a stale or missing transform must give a note, a /diagnostics count and the fallback."""

import math

import numpy as np
import pytest
from geometry_msgs.msg import TransformStamped
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image
from spatial_caption_interfaces.msg import DetectionArray

from support import EVAL, MODELS, needs_shared, spin_until
from spatial_caption_ros.core.evaluation.tum import read_tum_sequence
from spatial_caption_ros.core.inputs.image import read_image_file
from spatial_caption_ros.core.rotations import matrix_to_quaternion
from spatial_caption_ros.core.params import build_config
from spatial_caption_ros.core.perception.pipeline import PerceptionConfig, PerceptionPipeline
from spatial_caption_ros.core.types import FrameHeader
from spatial_caption_ros.nodes.perception_node import PerceptionNode
from spatial_caption_ros.ros import conversions
from spatial_caption_ros.ros.qos import qos_profile

tf2_msgs = pytest.importorskip('tf2_msgs.msg', reason='tf2_msgs is built by make setup')
TUM = EVAL / 'tum_fr1_rpy'
pytestmark = [needs_shared, pytest.mark.slow, pytest.mark.usefixtures('rclpy_context'),
              pytest.mark.skipif(not (TUM / 'associations.txt').is_file(),
                                 reason='../shared/eval/tum_fr1_rpy is needed')]
CAMERA = 'tum_rgb_optical_frame'
PARAMS = {'depth_source': 'geometric', 'model_dir': str(MODELS), 'threads': 1}


def _tf(stamp_ns: int, pose: np.ndarray) -> 'tf2_msgs.TFMessage':
    """world -> camera optical frame, from a 4x4 world_from_camera pose."""
    t = TransformStamped()
    t.header.frame_id, t.child_frame_id = 'world', CAMERA
    t.header.stamp = conversions.ns_to_stamp(stamp_ns)
    t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = (
        float(v) for v in pose[:3, 3])
    r = t.transform.rotation
    r.x, r.y, r.z, r.w = matrix_to_quaternion(pose[:3, :3])
    return tf2_msgs.TFMessage(transforms=[t])


def _expected(seq, frame, gravity):
    """Depths of the same frame through the core pipeline (the node's code) with `gravity`."""
    pipeline = PerceptionPipeline(build_config(PerceptionConfig, PARAMS))
    try:
        result = pipeline.process(read_image_file(frame.rgb_path),
                                  FrameHeader(int(round(frame.rgb_stamp * 1e9)), CAMERA),
                                  seq.intrinsics, gravity=gravity)
    finally:
        pipeline.close()
    return [o.depth for o in result.objects]


def test_gravity_from_tf_on_real_tum_frames_and_the_fallback_when_it_is_stale_or_missing():
    import rclpy
    ns = '/grav_tf'
    seq = read_tum_sequence(TUM)
    # a frame where the camera pitches steeply, so gravity changes the answer
    frame = next(f for f in seq.frames if f.gravity is not None and f.gravity[2] > 0.5)
    node = PerceptionNode(namespace=ns, parameter_overrides=[
        Parameter('input_qos', value='reliable'), Parameter('gravity_frame', value='world')]
        + [Parameter(k, value=v) for k, v in PARAMS.items()])
    player = rclpy.create_node('tum_tf_player', namespace=ns)
    qos = qos_profile('reliable')
    image_pub = player.create_publisher(Image, 'image', qos)
    info_pub = player.create_publisher(CameraInfo, 'camera_info', qos)
    tf_pub = player.create_publisher(tf2_msgs.TFMessage, '/tf', qos)
    got: list[DetectionArray] = []
    player.create_subscription(DetectionArray, 'detections', got.append, qos)
    ex = MultiThreadedExecutor()
    for n in (node, player):
        ex.add_node(n)
    image = read_image_file(frame.rgb_path)
    stamp = int(round(frame.rgb_stamp * 1e9))

    def send(stamp_ns: int, frame_id: str = CAMERA) -> DetectionArray:
        header = FrameHeader(stamp_ns, frame_id)
        info_pub.publish(conversions.intrinsics_to_camera_info(seq.intrinsics, header))
        image_pub.publish(conversions.color_to_image_msg(image, header))
        count = len(got)
        assert spin_until(ex, lambda: len(got) > count, timeout=60)
        return got[-1]

    try:
        assert node.active, node.last_error
        assert spin_until(ex, lambda: image_pub.get_subscription_count() >= 1
                          and tf_pub.get_subscription_count() >= 1
                          and player.count_subscribers('detections') >= 1
                          and player.count_publishers('detections') >= 1)
        with_gravity = _expected(seq, frame, frame.gravity)
        level = _expected(seq, frame, None)
        assert any(abs(a - b) > 0.05 * b for a, b in zip(with_gravity, level, strict=True)
                   if math.isfinite(a) and math.isfinite(b))

        # the pose at the frame's stamp on /tf: the node's depths are the gravity-aware ones
        tf_pub.publish(_tf(stamp - 10_000_000, frame.pose))
        tf_pub.publish(_tf(stamp + 10_000_000, frame.pose))
        assert spin_until(ex, lambda: node.gravity.buffer.frames() >= {'world', CAMERA})
        msg = send(stamp)
        np.testing.assert_allclose([o.depth for o in msg.objects], with_gravity, rtol=1e-6)
        assert not any('/tf' in n for n in msg.notes)
        assert node.describe()['gravity_frames_from_tf'] == '1'

        # 2 s after the newest transform: stale, noted, counted, and the level fallback
        msg = send(stamp + 2_000_000_000)
        assert any('stale' in n and 'taken as level' in n for n in msg.notes), msg.notes
        np.testing.assert_allclose([o.depth for o in msg.objects], level, rtol=1e-6)
        assert node.describe()['gravity_tf_stale'] == '1'

        # an image in a frame the tree does not know: missing, noted, counted
        msg = send(stamp + 2_100_000_000, frame_id='other_camera')
        assert any("frame 'other_camera' does not exist" in n for n in msg.notes), msg.notes
        assert node.describe()['gravity_tf_missing'] == '1'
        assert '/tf (world)' in node.describe()['gravity_source']
    finally:
        ex.shutdown()
        for n in (node, player):
            n.destroy_node()
