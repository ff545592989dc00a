"""Real rclpy: the perception node with real publishers and subscriptions and the real YOLO11n."""

from lifecycle_msgs.srv import ChangeState, GetState
import numpy as np
import pytest
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from support import BUS, MODELS, needs_shared, spin_until
from support.rig import Camera, diagnostic_values
from spatial_caption_ros.core.inputs.image import read_image_file
from spatial_caption_ros.core.types import FrameHeader
from spatial_caption_ros.nodes.perception_node import PerceptionNode
from spatial_caption_ros.ros import conversions
from spatial_caption_ros.ros.lifecycle_client import LifecycleClient, TRANSITIONS

pytestmark = [needs_shared, pytest.mark.usefixtures('rclpy_context')]


def _make(namespace, **params):
    overrides = [Parameter('model_dir', value=str(MODELS)),
                 Parameter('input_qos', value='reliable')]
    overrides += [Parameter(k, value=v) for k, v in params.items()]
    return PerceptionNode(namespace=namespace, parameter_overrides=overrides)


def test_perception_node_detects_bus_and_people_and_keeps_the_stamp():
    node = _make('/t1')
    camera = Camera('/t1')
    ex = MultiThreadedExecutor()
    ex.add_node(node)
    ex.add_node(camera.node)
    try:
        assert node.active, node.last_error
        assert spin_until(ex, camera.connected)
        camera.publish(1234567890123)
        assert spin_until(ex, lambda: camera.detections, timeout=30)
        msg = camera.detections[0]
        names = [o.class_name for o in msg.objects]
        assert names.count('bus') == 1 and names.count('person') >= 4
        assert conversions.stamp_to_ns(msg.header.stamp) == 1234567890123
        assert msg.header.frame_id == 'camera_optical_frame'
        assert msg.has_camera_info and msg.image_width == 810
        assert {kv.key for kv in msg.stage_times} >= {'decode', 'preprocess', 'inference'}
    finally:
        ex.shutdown()
        node.destroy_node()
        camera.node.destroy_node()


def test_bad_images_are_rejected_counted_and_valid_frames_still_processed():
    node = _make('/t2')
    camera = Camera('/t2')
    ex = MultiThreadedExecutor()
    ex.add_node(node)
    ex.add_node(camera.node)
    try:
        assert spin_until(ex, camera.connected)
        bad = [
            Image(height=10, width=10, encoding='rgb8', step=30, data=bytes(100)),   # truncated
            Image(height=10, width=10, encoding='yuv422', step=20, data=bytes(200)),
            Image(height=0, width=0, encoding='rgb8', step=0, data=b''),
        ]
        for i, msg in enumerate(bad):
            msg.header.stamp.sec = i + 1
            camera.image_pub.publish(msg)
            assert spin_until(ex, lambda n=i + 1: node.counters.snapshot()['rejected'] == n)
        camera.publish(10_000_000_000)
        assert spin_until(ex, lambda: camera.detections, timeout=30)
        snap = node.counters.snapshot()
        assert snap['rejected.invalid_image'] == 3 and snap['processed'] == 1
        # the diagnostics topic reports the counts and the active backend
        assert spin_until(ex, lambda: any(diagnostic_values(s).get('rejected') == '3'
                                          for s in camera.statuses('perception')))
        last = camera.statuses('perception')[-1]
        values = diagnostic_values(last)
        assert values['backend'] == 'onnxruntime' and values['state'] == 'active'
        assert last.level == last.WARN
    finally:
        ex.shutdown()
        node.destroy_node()
        camera.node.destroy_node()


def test_failed_configure_reports_reason_then_recovers_without_restart(tmp_path):
    node = _make('/t3', detector_model=str(tmp_path / 'missing.onnx'))
    camera = Camera('/t3')
    ex = MultiThreadedExecutor()
    ex.add_node(node)
    ex.add_node(camera.node)
    client = LifecycleClient(camera.node, '/t3/perception')
    try:
        assert not node.active and node.config is None
        assert 'missing.onnx' in node.last_error
        assert spin_until(ex, lambda: client.wait_for_services(0.01))
        fut = client._get.call_async(GetState.Request())
        assert spin_until(ex, fut.done)
        assert fut.result().current_state.label == 'unconfigured'
        # fix the parameter while unconfigured (allowed), then configure + activate via services
        result = node.set_parameters([Parameter('detector_model', value='yolo11n')])[0]
        assert result.successful, result.reason
        for transition in ('configure', 'activate'):
            fut = client._change.call_async(_change_request(transition))
            assert spin_until(ex, fut.done, timeout=60)
            assert fut.result().success
        assert node.active and node.last_error == ''
        assert spin_until(ex, camera.connected)
        camera.publish(20_000_000_000)
        assert spin_until(ex, lambda: camera.detections, timeout=30)
    finally:
        ex.shutdown()
        node.destroy_node()
        camera.node.destroy_node()


def _change_request(transition):
    req = ChangeState.Request()
    req.transition.id = TRANSITIONS[transition]
    return req


def test_parameter_changes_are_validated_with_reasons():
    node = _make('/t4')
    try:
        bad = node.set_parameters([Parameter('confidence_threshold', value=1.5)])[0]
        assert not bad.successful
        bad = node.set_parameters([Parameter('depth_source', value='none')])[0]
        assert not bad.successful and 'not active' in bad.reason
        bad = node.set_parameters([Parameter('classes', value=['x' * 100])])[0]
        assert not bad.successful and 'longer than' in bad.reason
        good = node.set_parameters([Parameter('confidence_threshold', value=0.6)])[0]
        assert good.successful
        assert node.config.detector.confidence_threshold == pytest.approx(0.6)
        assert node.pipeline.detector.confidence_threshold == pytest.approx(0.6)
        good = node.set_parameters([Parameter('classes', value=['bus'])])[0]
        assert good.successful and node.config.detector.classes == ('bus',)
        dets = node.pipeline.detector.detect(read_image_file(BUS))
        assert {d.class_name for d in dets} == {'bus'}
    finally:
        node.destroy_node()


def test_latest_only_input_counts_dropped_frames():
    node = _make('/t5')
    try:
        node.worker.stop()                  # nothing takes frames: they pile into the slot
        for i in range(5):
            if node.worker.submit(i):
                node.counters.dropped_stale += 1
        assert node.counters.dropped_stale == 4
        assert node.worker.slot.take(0) == 4          # only the newest is kept
    finally:
        node.destroy_node()


def test_no_camera_info_means_no_invented_metres():
    node = _make('/t6')
    try:
        image = read_image_file(BUS)
        result = node.pipeline.process(image, FrameHeader(1, 'c'), None)
        assert not result.has_camera_info
        assert all(o.position is None and np.isnan(o.distance) for o in result.objects)
        assert any('no camera_info' in n for n in result.notes)
    finally:
        node.destroy_node()


def test_messages_replaced_before_the_callback_are_counted_not_lost():
    node = _make('/t7', input_qos='sensor_data')     # newest-only, as for a camera
    camera = Camera('/t7')
    ex = MultiThreadedExecutor()
    ex.add_node(node)
    ex.add_node(camera.node)
    try:
        assert spin_until(ex, camera.connected)
        tiny = Image(height=2, width=2, encoding='rgb8', step=6, data=bytes(12))
        snap = node.counters.snapshot
        camera.image_pub.publish(tiny)      # the first message sets the publisher's baseline
        assert spin_until(ex, lambda: snap()['received'] == 1)
        for i in range(30):                  # a burst, with nobody spinning the executor
            tiny.header.stamp.sec = 100 + i
            camera.image_pub.publish(tiny)
        assert spin_until(ex, lambda: snap()['received'] + snap()['superseded'] == 31)
        assert snap()['superseded'] > 0 and snap()['superseded.image'] == snap()['superseded']
    finally:
        ex.shutdown()
        node.destroy_node()
        camera.node.destroy_node()
