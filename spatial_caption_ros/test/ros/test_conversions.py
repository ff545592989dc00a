import math

import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo

from spatial_caption_ros.core.errors import InvalidCameraInfoError
from spatial_caption_ros.core.inputs.image import ColorImage
from spatial_caption_ros.core.inputs.serialization import dict_to_graph, graph_to_dict
from spatial_caption_ros.core.types import (
    BoundingBox, Caption, CameraIntrinsics, FrameHeader, LEFT_OF, Relation, SceneGraph,
    SceneObject)
from spatial_caption_ros.ros import conversions as cv


def _graph():
    a = SceneObject(id=1, class_name='bus', class_id=5, confidence=0.9,
                    box=BoundingBox(1, 2, 300, 400), class_count=1, region='center',
                    relative_size=0.3, depth=7.5, depth_uncertainty=0.5,
                    depth_source='geometric', depth_metric=True, position=(0.5, -0.2, 7.5),
                    distance=7.52, metric_width=2.5, metric_height=3.0, salience=0.8,
                    attributes={'track_age': '3'}, knowledge=[('UsedFor', 'transport')])
    b = SceneObject(id=2, class_name='person', class_id=0, confidence=0.8,
                    box=BoundingBox(10, 20, 30, 40))
    return SceneGraph(header=FrameHeader(1_700_000_000_123_456_789, 'cam'), image_width=640,
                      image_height=480, objects=[a, b],
                      relations=[Relation(2, LEFT_OF, 1, distance=float('nan'), confidence=0.7)],
                      depth_source='geometric', depth_metric=False, has_camera_info=True,
                      notes=['n'], processing_latency=0.05, intrinsics_assumed=True)


def _same_graph(x, y):
    assert graph_to_dict(x) == graph_to_dict(y)


def test_scene_graph_message_round_trip_keeps_everything():
    g = _graph()
    back = cv.msg_to_scene_graph(cv.scene_graph_to_msg(g))
    _same_graph(g, back)
    assert back.objects[1].position is None and math.isnan(back.objects[1].distance)
    assert back.header.stamp_ns == 1_700_000_000_123_456_789
    assert back.intrinsics_assumed is True


def test_unknown_position_is_nan_not_zero_in_the_message():
    msg = cv.object_to_msg(_graph().objects[1])
    assert msg.has_position is False and math.isnan(msg.position.x)


def test_json_round_trip_uses_null_for_unknown():
    d = graph_to_dict(_graph())
    assert d['objects'][1]['depth'] is None
    _same_graph(dict_to_graph(d), _graph())


def test_caption_round_trip():
    c = Caption(FrameHeader(7, 'cam'), 'A bus.', verified=True, latency=0.1,
                intrinsics_assumed=True)
    back = cv.msg_to_caption(cv.caption_to_msg(c))
    assert back.text == 'A bus.' and back.intrinsics_assumed is True


def test_image_round_trip_bgr_and_rgb():
    pixels = np.random.default_rng(1).integers(0, 255, (6, 7, 3), dtype=np.uint8)
    for order in ('bgr', 'rgb'):
        msg = cv.color_to_image_msg(ColorImage(pixels, order), FrameHeader(3, 'cam'))
        assert msg.encoding == f'{order}8' and msg.step == 21
        back = cv.image_msg_to_color(msg)
        np.testing.assert_array_equal(back.pixels, pixels)


def test_camera_info_round_trip_and_p_fallback():
    intr = CameraIntrinsics(700.0, 710.0, 320.0, 240.0, 640, 480)
    msg = cv.intrinsics_to_camera_info(intr, FrameHeader(1, 'cam'))
    assert cv.camera_info_to_intrinsics(msg) == intr
    msg.k = [0.0] * 9
    assert cv.camera_info_to_intrinsics(msg).fx == pytest.approx(700.0)
    # an assumed field of view survives the trip (CameraInfo has no flag: a distortion model)
    assumed = CameraIntrinsics(700.0, 700.0, 320.0, 240.0, 640, 480, assumed=True)
    msg = cv.intrinsics_to_camera_info(assumed, FrameHeader(1, 'cam'))
    assert msg.distortion_model == cv.ASSUMED_CAMERA_MODEL and list(msg.d) == []
    assert cv.camera_info_to_intrinsics(msg) == assumed


@pytest.mark.parametrize('k', [[0.0] * 9, [float('nan')] + [1.0] * 8,
                               [0, 0, 320, 0, 700, 240, 0, 0, 1]])
def test_unusable_camera_info_is_rejected(k):
    msg = CameraInfo(width=640, height=480)
    msg.k = [float(v) for v in k]
    with pytest.raises(InvalidCameraInfoError):
        cv.camera_info_to_intrinsics(msg)
